//! Replies: the copy of every receipt, feedback and withdrawal (ours and
//! our peers'), and the updates that record them on their notice. The
//! updates are conditional on the state the reply rules
//! (`domain::Lifecycle::check`) accepted: a concurrent change leaves them
//! `Stale` instead of overwriting an answer.

use super::{Result, StoreError, Tx, micros};
use crate::calendar::month_key;
use crate::domain::{Delivery, Direction, NoticeStatus, Reply, ReplyBody, ReplySort};
use crate::pb;
use prost::Message;
use sqlx::Row;
use time::OffsetDateTime;

impl Tx {
    /// The stored hash of a reply, if this reply id is known.
    pub async fn reply_hash(&mut self, reply_id: &str) -> Result<Option<Vec<u8>>> {
        with_tx!(self, |conn, Db| {
            let row = sqlx::query("SELECT content_hash FROM replies WHERE reply_id = $1")
                .bind(reply_id)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Records a reply written here (`Direction::Outbound`) or received.
    pub async fn insert_reply(
        &mut self,
        reply: &Reply,
        direction: Direction,
        now: OffsetDateTime,
    ) -> Result<()> {
        with_tx!(self, |conn, Db| {
            sqlx::query(
                "INSERT INTO replies (reply_id, notice_id, direction, sort, content, content_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(reply.reply_id.to_string())
            .bind(reply.notice_id.to_string())
            .bind(direction as i32)
            .bind(reply.body.sort_code())
            .bind(reply.to_wire().encode_to_vec())
            .bind(reply.content_hash())
            .bind(micros(now))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    /// Records an accepted reply on its notice (receipt, feedback,
    /// withdrawal or deadline change), conditional on the state the rules
    /// accepted.
    pub async fn record_reply(&mut self, notice_id: &str, body: &ReplyBody) -> Result<()> {
        match body {
            ReplyBody::Receipt {
                acknowledged_at,
                acknowledged_by,
            } => {
                self.set_acknowledged(notice_id, *acknowledged_at, acknowledged_by)
                    .await
            }
            ReplyBody::Feedback(f) => {
                self.set_answered(notice_id, &f.to_wire(), f.answered_at)
                    .await
            }
            ReplyBody::Withdrawal {
                withdrawn_at,
                reason,
            } => self.set_withdrawn(notice_id, *withdrawn_at, reason).await,
            ReplyBody::DeadlineChange(c) => self.set_due(notice_id, c).await,
            ReplyBody::Delivery(d) => self.set_delivered(notice_id, d).await,
            ReplyBody::Reminder(r) => self.set_reminded(notice_id, r).await,
        }
    }

    /// Counts a reminder (催办), only when it is newer than those held
    /// (`Lifecycle::check` judged the number and, on the origin, the day;
    /// two clerks reminding at once: the second finds it `Stale`).
    pub async fn set_reminded(&mut self, id: &str, r: &crate::domain::Reminder) -> Result<()> {
        let done = with_tx!(self, |conn, Db| {
            sqlx::query(
                "UPDATE notices SET reminders = $1, reminded_at = $2 WHERE id = $3 AND reminders < $4",
            )
            .bind(i64::from(r.number))
            .bind(micros(r.reminded_at))
            .bind(id)
            .bind(i64::from(r.number))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        stale_unless_one(done, id)
    }

    /// Records when a notice reached its destination through a relay, as
    /// its direct ack would have (`Store::settle`), only while no arrival
    /// is recorded.
    pub async fn set_delivered(&mut self, id: &str, d: &Delivery) -> Result<()> {
        let month = month_key(self.tz, d.received_at);
        let done = with_tx!(self, |conn, Db| {
            sqlx::query(
                "UPDATE notices SET received_at = $1, due_at = $2, due_provisional = $3, received_month = $4, \
                 status = CASE WHEN status = $5 THEN $6 ELSE status END \
                 WHERE id = $7 AND received_at IS NULL",
            )
            .bind(micros(d.received_at))
            .bind(micros(d.due_at))
            .bind(i32::from(d.provisional))
            .bind(month)
            .bind(NoticeStatus::Queued as i32)
            .bind(NoticeStatus::Delivered as i32)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        stale_unless_one(done, id)
    }

    /// Records a receipt, only while the notice has none and is not
    /// withdrawn here at the destination (the state `Lifecycle::check`
    /// accepted; the origin takes one that crossed its withdrawal and stays
    /// withdrawn): a concurrent change makes it `Stale` instead of
    /// overwriting.
    pub async fn set_acknowledged(&mut self, id: &str, at: OffsetDateTime, by: &str) -> Result<()> {
        let done = with_tx!(self, |conn, Db| {
            sqlx::query(
                "UPDATE notices SET acknowledged_at = $1, acknowledged_by = $2, \
                 status = CASE WHEN status IN ($3, $4, $5) THEN $6 ELSE status END \
                 WHERE id = $7 AND acknowledged_at IS NULL AND (status <> $8 OR direction = $9)",
            )
            .bind(micros(at))
            .bind(by)
            .bind(NoticeStatus::Queued as i32)
            .bind(NoticeStatus::Delivered as i32)
            .bind(NoticeStatus::Pending as i32)
            .bind(NoticeStatus::Acknowledged as i32)
            .bind(id)
            .bind(NoticeStatus::Withdrawn as i32)
            .bind(Direction::Outbound as i32)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        stale_unless_one(done, id)
    }

    /// Stores feedback (it also counts as receipt when none came before),
    /// only on a notice that needs feedback, has none and is not withdrawn
    /// here at the destination (at the origin, an answer that crossed its
    /// withdrawal makes the notice answered: docs/protocol.md §6).
    pub async fn set_answered(
        &mut self,
        id: &str,
        feedback: &pb::Feedback,
        at: OffsetDateTime,
    ) -> Result<()> {
        let done = with_tx!(self, |conn, Db| {
            sqlx::query(
                "UPDATE notices SET answered_at = $1, feedback = $2, status = $3, \
                 acknowledged_at = COALESCE(acknowledged_at, $1), acknowledged_by = COALESCE(acknowledged_by, $4) \
                 WHERE id = $5 AND answered_at IS NULL AND reply_required = $6 AND (status <> $7 OR direction = $8)",
            )
            .bind(micros(at))
            .bind(feedback.encode_to_vec())
            .bind(NoticeStatus::Answered as i32)
            .bind(&feedback.answered_by)
            .bind(id)
            .bind(ReplySort::Feedback as i32)
            .bind(NoticeStatus::Withdrawn as i32)
            .bind(Direction::Outbound as i32)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        stale_unless_one(done, id)
    }

    /// Withdraws a notice, only while it is neither answered nor withdrawn.
    pub async fn set_withdrawn(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        reason: &str,
    ) -> Result<()> {
        let done = with_tx!(self, |conn, Db| {
            sqlx::query(
                "UPDATE notices SET status = $1, withdrawn_at = $2, withdraw_reason = $3 \
                 WHERE id = $4 AND answered_at IS NULL AND status NOT IN ($5, $1)",
            )
            .bind(NoticeStatus::Withdrawn as i32)
            .bind(micros(at))
            .bind(reason)
            .bind(id)
            .bind(NoticeStatus::Answered as i32)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        stale_unless_one(done, id)
    }
}

impl Tx {
    /// Whether the destination said it took this (outbound) notice's
    /// withdrawal: delivered, and not as too late.
    pub async fn withdrawal_taken(&mut self, notice_id: &str) -> Result<bool> {
        with_tx!(self, |conn, Db| {
            Ok(sqlx::query(
                "SELECT 1 FROM replies WHERE notice_id = $1 AND direction = $2 AND sort = $3 \
                 AND delivered_at IS NOT NULL AND late = 0",
            )
            .bind(notice_id)
            .bind(Direction::Outbound as i32)
            .bind(3_i64)
            .fetch_optional(&mut *conn)
            .await?
            .is_some())
        })
    }

    /// Keeps a withdrawal that reached the destination after the answer
    /// (`Verdict::TooLate`) on the notice, which stays answered: both
    /// sides then hold the same facts (docs/protocol.md §6).
    pub async fn set_withdrawn_late(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        reason: &str,
    ) -> Result<()> {
        with_tx!(self, |conn, Db| {
            sqlx::query(
                "UPDATE notices SET withdrawn_at = $1, withdraw_reason = $2 \
                 WHERE id = $3 AND withdrawn_at IS NULL",
            )
            .bind(micros(at))
            .bind(reason)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }
}

/// An update that had to change exactly one row.
fn stale_unless_one(rows: u64, id: &str) -> Result<()> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::Stale(id.to_string()))
    }
}
