//! The transactional outbox: items (notices and replies) waiting for a
//! peer, written in the same transaction as the change they announce and
//! removed in the one that records the peer's acknowledgement.

use super::{Result, Store, Tx, code, from_micros, micros};
use crate::calendar::month_key;
use crate::domain::NoticeStatus;
use sqlx::Row;
use time::OffsetDateTime;

/// Which of the two things an outbox row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Notice = 1,
    Reply = 2,
}

impl TryFrom<i32> for ItemKind {
    type Error = ();
    fn try_from(v: i32) -> std::result::Result<Self, ()> {
        match v {
            1 => Ok(ItemKind::Notice),
            2 => Ok(ItemKind::Reply),
            _ => Err(()),
        }
    }
}

/// An item waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub seq: i64,
    pub kind: ItemKind,
    pub target: String,
    pub notice_id: String,
    pub reply_id: Option<String>,
    pub payload: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub attempts: u32,
    /// When the next attempt is due (kept across restarts).
    pub next_attempt_at: OffsetDateTime,
}

/// A destination with items waiting, and the route they are queued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub target: String,
    pub route: String,
}

/// What became of one delivered outbox item.
#[derive(Debug, Clone)]
pub enum Settled {
    NoticeDelivered {
        seq: i64,
        notice_id: String,
        received_at: OffsetDateTime,
        due_at: OffsetDateTime,
    },
    ReplyDelivered {
        seq: i64,
        reply_id: String,
    },
    /// The peer refused it for good (invalid, conflicting, not permitted).
    Refused {
        seq: i64,
        error: String,
    },
}

impl Store {
    /// The oldest items waiting for `route`, in order of creation.
    pub async fn outbox_batch(&self, route: &str, limit: usize) -> Result<Vec<OutboxItem>> {
        with_pool!(self, write, |pool, Db| {
            let rows = sqlx::query(
                "SELECT seq, item, target, notice_id, reply_id, payload, created_at, attempts, next_attempt_at FROM outbox \
                 WHERE route = $1 AND refused = 0 ORDER BY seq LIMIT $2",
            )
            .bind(route)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(OutboxItem {
                        seq: r.get("seq"),
                        kind: code(r.get("item"), "outbox.item")?,
                        target: r.get("target"),
                        notice_id: r.get("notice_id"),
                        reply_id: r.get("reply_id"),
                        payload: r.get("payload"),
                        created_at: from_micros(r.get("created_at")),
                        attempts: r.get::<i64, _>("attempts") as u32,
                        next_attempt_at: from_micros(r.get("next_attempt_at")),
                    })
                })
                .collect()
        })
    }

    /// Records a peer's answers: delivered items leave the outbox in the same
    /// transaction that stores their acknowledgement.
    pub async fn settle(&self, outcomes: &[Settled], now: OffsetDateTime) -> Result<()> {
        let mut tx = self.begin().await?;
        for o in outcomes {
            match o {
                Settled::NoticeDelivered {
                    seq,
                    notice_id,
                    received_at,
                    due_at,
                } => {
                    with_tx!(tx, |conn, Db| {
                        sqlx::query(
                        "UPDATE notices SET received_at = $1, due_at = $2, received_month = $3, \
                         status = CASE WHEN status = $4 THEN $5 ELSE status END WHERE id = $6",
                    )
                    .bind(micros(*received_at))
                    .bind(micros(*due_at))
                    .bind(month_key(self.tz, *received_at))
                    .bind(NoticeStatus::Queued as i32)
                    .bind(NoticeStatus::Delivered as i32)
                    .bind(notice_id)
                    .execute(&mut *conn)
                    .await?;
                    });
                    tx.delete_outbox(*seq).await?;
                }
                Settled::ReplyDelivered { seq, reply_id } => {
                    with_tx!(tx, |conn, Db| {
                        sqlx::query("UPDATE replies SET delivered_at = $1 WHERE reply_id = $2")
                            .bind(micros(now))
                            .bind(reply_id)
                            .execute(&mut *conn)
                            .await?;
                    });
                    tx.delete_outbox(*seq).await?;
                }
                Settled::Refused { seq, error } => {
                    with_tx!(tx, |conn, Db| {
                        sqlx::query("UPDATE outbox SET refused = 1, attempts = attempts + 1, last_error = $1 WHERE seq = $2")
                        .bind(error)
                        .bind(seq)
                        .execute(&mut *conn)
                        .await?;
                    });
                }
            }
        }
        tx.commit().await
    }

    /// Notes a failed attempt on each of `seqs`; they stay in the outbox.
    pub async fn outbox_failed(
        &self,
        seqs: &[i64],
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for seq in seqs {
            with_tx!(tx, |conn, Db| {
                sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE seq = $3")
                .bind(error)
                .bind(micros(next_attempt_at))
                .bind(seq)
                .execute(&mut *conn)
                .await?;
            });
        }
        tx.commit().await
    }

    /// Destinations with items waiting, and the route each is queued for.
    pub async fn outbox_targets(&self) -> Result<Vec<Waiting>> {
        with_pool!(self, write, |pool, Db| {
            let rows = sqlx::query("SELECT DISTINCT target, route FROM outbox WHERE refused = 0")
                .fetch_all(pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| Waiting {
                    target: r.get("target"),
                    route: r.get("route"),
                })
                .collect())
        })
    }

    /// Moves the waiting items for `target` to another route (routes changed in the config).
    pub async fn reroute(&self, target: &str, route: &str) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query("UPDATE outbox SET route = $1 WHERE target = $2 AND refused = 0")
                .bind(route)
                .bind(target)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Creation time of the oldest item still waiting for `route`.
    pub async fn oldest_waiting(&self, route: &str) -> Result<Option<OffsetDateTime>> {
        with_pool!(self, write, |pool, Db| {
            let row =
                sqlx::query("SELECT MIN(created_at) FROM outbox WHERE route = $1 AND refused = 0")
                    .bind(route)
                    .fetch_one(pool)
                    .await?;
            Ok(row.get::<Option<i64>, _>(0).map(from_micros))
        })
    }
}

impl Tx {
    #[allow(clippy::too_many_arguments)]
    pub async fn enqueue(
        &mut self,
        route: &str,
        target: &str,
        kind: ItemKind,
        notice_id: &str,
        reply_id: Option<&str>,
        payload: &[u8],
        now: OffsetDateTime,
    ) -> Result<()> {
        with_tx!(self, |conn, Db| {
            sqlx::query(
                "INSERT INTO outbox (route, target, item, notice_id, reply_id, payload, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(route)
            .bind(target)
            .bind(kind as i32)
            .bind(notice_id)
            .bind(reply_id)
            .bind(payload)
            .bind(micros(now))
            .bind(micros(now))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    async fn delete_outbox(&mut self, seq: i64) -> Result<()> {
        with_tx!(self, |conn, Db| {
            sqlx::query("DELETE FROM outbox WHERE seq = $1")
                .bind(seq)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }
}
