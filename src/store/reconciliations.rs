//! Reconciliation's rows (对账, docs/protocol.md §8): one side's month of
//! facts with a peer, the record of each check per peer and month (when
//! both sides last agreed), and the repair — this node's own replies that
//! the peer lacks, queued again.

use super::{ItemKind, NewOutboxItem, Result, Store, from_micros, micros};
use crate::domain::Direction;
use sqlx::Row;
use time::OffsetDateTime;

/// The last check with one peer for one month.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reconciled {
    pub peer: String,
    /// YYYY-MM.
    pub period: String,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Notices of the month on this side.
    pub notices: u64,
    /// Notices on which the sides differed at that check.
    pub divergent: u64,
    /// The last check that found no difference.
    #[serde(with = "time::serde::rfc3339::option")]
    pub agreed_at: Option<OffsetDateTime>,
}

impl Store {
    /// The facts of every notice exchanged with `peer` (either way) that
    /// arrived in [from, to) (microseconds): one side's month for
    /// reconciliation (`reconcile::Month`).
    pub async fn month_facts(
        &self,
        peer: &str,
        (from, to): (i64, i64),
    ) -> Result<Vec<crate::reconcile::Facts>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT id, received_at, due_at, acknowledged_at, answered_at, feedback, withdrawn_at \
                 FROM notices WHERE direction IN (1, 2) AND received_at >= $1 AND received_at < $2 AND peer = $3",
            )
            .bind(from)
            .bind(to)
            .bind(peer)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let feedback: Option<Vec<u8>> = r.get(5);
                    let feedback = feedback.and_then(|b| {
                        <crate::pb::Feedback as prost::Message>::decode(b.as_slice()).ok()
                    });
                    crate::reconcile::Facts {
                        notice_id: r.get(0),
                        received_at: r.get(1),
                        due_at: r.get(2),
                        acknowledged_at: r.get(3),
                        answered_at: r.get(4),
                        feedback: crate::reconcile::Facts::feedback_digest(feedback.as_ref()),
                        withdrawn_at: r.get(6),
                    }
                })
                .collect())
        })
    }

    /// Records a check with `peer` for `period` at `at`: `agreed_at`
    /// moves only when nothing differed.
    pub async fn record_reconciliation(
        &self,
        peer: &str,
        period: &str,
        notices: usize,
        divergent: usize,
        at: OffsetDateTime,
    ) -> Result<()> {
        let agreed = (divergent == 0).then(|| micros(at));
        with_pool!(self, write, |pool, Db| {
            sqlx::query(
                "INSERT INTO reconciliations (key, peer, period, checked_at, notices, divergent, agreed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (key) DO UPDATE SET checked_at = excluded.checked_at, \
                 notices = excluded.notices, divergent = excluded.divergent, \
                 agreed_at = COALESCE(excluded.agreed_at, reconciliations.agreed_at)",
            )
            .bind(format!("{peer} {period}"))
            .bind(peer)
            .bind(period)
            .bind(micros(at))
            .bind(notices as i64)
            .bind(divergent as i64)
            .bind(agreed)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The last check of every peer for the months `periods` (YYYY-MM),
    /// by month then peer.
    pub async fn reconciliations(&self, periods: &[String]) -> Result<Vec<Reconciled>> {
        let mut out = Vec::new();
        for period in periods {
            with_pool!(self, read, |pool, Db| {
                let rows = sqlx::query(
                    "SELECT peer, period, checked_at, notices, divergent, agreed_at \
                     FROM reconciliations WHERE period = $1 ORDER BY peer",
                )
                .bind(period)
                .fetch_all(pool)
                .await?;
                out.extend(rows.into_iter().map(|r| Reconciled {
                    peer: r.get(0),
                    period: r.get(1),
                    checked_at: from_micros(r.get(2)),
                    notices: r.get::<i64, _>(3).max(0) as u64,
                    divergent: r.get::<i64, _>(4).max(0) as u64,
                    agreed_at: r.get::<Option<i64>, _>(5).map(from_micros),
                }));
            });
        }
        Ok(out)
    }

    /// Queues again, for `target` through `route`, this node's own replies
    /// to notice `notice_id` of the sorts `sorts` (`ReplyBody::sort_code`)
    /// that are not waiting in the outbox already: a reply the peer lacks,
    /// sent again (the peer takes a reply it holds as a duplicate). Returns
    /// the ids queued.
    pub async fn requeue_own_replies(
        &self,
        notice_id: &str,
        sorts: &[i64],
        (route, target): (&str, &str),
        now: OffsetDateTime,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let rows: Vec<(String, i64, Vec<u8>)> = with_tx!(tx, |conn, Db| {
            sqlx::query_as(
                "SELECT r.reply_id, r.sort, r.content FROM replies r WHERE r.notice_id = $1 \
                 AND r.direction = $2 AND NOT EXISTS \
                 (SELECT 1 FROM outbox o WHERE o.notice_id = r.notice_id AND o.reply_id = r.reply_id) \
                 ORDER BY r.created_at, r.reply_id",
            )
            .bind(notice_id)
            .bind(Direction::Outbound as i32)
            .fetch_all(&mut *conn)
            .await?
        });
        let items: Vec<NewOutboxItem> = rows
            .iter()
            .filter(|(_, sort, _)| sorts.contains(sort))
            .map(|(id, _, content)| NewOutboxItem {
                route,
                target,
                kind: ItemKind::Reply,
                notice_id,
                reply_id: Some(id),
                payload: content.clone(),
            })
            .collect();
        tx.enqueue_all(&items, now).await?;
        tx.commit().await?;
        Ok(items
            .iter()
            .filter_map(|i| i.reply_id.map(str::to_string))
            .collect())
    }
}
