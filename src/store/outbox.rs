//! The transactional outbox: items (notices and replies) waiting for a
//! peer, written in the same transaction as the change they announce and
//! removed in the one that records the peer's acknowledgement.

use super::{Result, Store, Tx, code, from_micros, micros};
use crate::calendar::month_key;
use crate::domain::NoticeStatus;
use sqlx::{QueryBuilder, Row};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// What an outbox row carries: a notice or reply of this node's, or one
/// this node forwards as a relay (`store::relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Notice = 1,
    Reply = 2,
    RelayNotice = 3,
    RelayReply = 4,
}

impl ItemKind {
    /// Whether it travels in `DeliverNotices` (else `DeliverReplies`).
    pub fn is_notice(self) -> bool {
        matches!(self, ItemKind::Notice | ItemKind::RelayNotice)
    }

    /// An item this node forwards as a relay (its author signed it).
    pub fn is_relayed(self) -> bool {
        matches!(self, ItemKind::RelayNotice | ItemKind::RelayReply)
    }
}

impl TryFrom<i32> for ItemKind {
    type Error = ();
    fn try_from(v: i32) -> std::result::Result<Self, ()> {
        match v {
            1 => Ok(ItemKind::Notice),
            2 => Ok(ItemKind::Reply),
            3 => Ok(ItemKind::RelayNotice),
            4 => Ok(ItemKind::RelayReply),
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
        /// The destination counted `due_at` past its holiday schedule.
        due_provisional: bool,
    },
    ReplyDelivered {
        seq: i64,
        reply_id: String,
        /// The peer kept it but it changed nothing (a withdrawal that
        /// reached an answered notice).
        late: bool,
    },
    /// A relay took this node's notice and forwards it; the destination's
    /// acknowledgement comes back as a `Delivery` reply.
    HandedOn {
        seq: i64,
        notice_id: String,
        /// The route (the relay's code) it went to.
        relay: String,
    },
    /// The next node took an item this node relays.
    Forwarded {
        seq: i64,
        kind: ItemKind,
        id: String,
    },
    /// The peer refused it for good (invalid, conflicting, not permitted).
    Refused { seq: i64, error: String },
}

impl Store {
    /// The oldest items waiting for `route` after item `after` (0: from
    /// the head), in order of creation. Read through the read pool, so that
    /// the next batch is read while the last one's acks are being written.
    pub async fn outbox_batch(
        &self,
        route: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT seq, item, target, notice_id, reply_id, payload, created_at, attempts, next_attempt_at FROM outbox \
                 WHERE route = $1 AND refused = 0 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(route)
            .bind(after)
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
    /// transaction that stores their acknowledgement. Notices acknowledged
    /// with the same instants (a batch's) are updated by one statement,
    /// delivered rows deleted by one per chunk.
    pub async fn settle(
        &self,
        outcomes: &[Settled],
        proven: &super::Proven,
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut by_instants: BTreeMap<(i64, i64, bool), Vec<&str>> = BTreeMap::new();
        let mut replies = Vec::new();
        let mut late_replies = Vec::new();
        let mut delivered = Vec::new();
        let mut refused = Vec::new();
        let mut forwarded = Vec::new();
        let mut handed = Vec::new();
        for o in outcomes {
            match o {
                Settled::NoticeDelivered {
                    seq,
                    notice_id,
                    received_at,
                    due_at,
                    due_provisional,
                } => {
                    by_instants
                        .entry((micros(*received_at), micros(*due_at), *due_provisional))
                        .or_default()
                        .push(notice_id);
                    delivered.push(*seq);
                }
                Settled::ReplyDelivered {
                    seq,
                    reply_id,
                    late,
                } => {
                    replies.push(reply_id.as_str());
                    if *late {
                        late_replies.push(reply_id.as_str());
                    }
                    delivered.push(*seq);
                }
                Settled::HandedOn {
                    seq,
                    notice_id,
                    relay,
                } => {
                    handed.push((relay.as_str(), notice_id.as_str()));
                    delivered.push(*seq);
                }
                Settled::Forwarded { seq, kind, id } => {
                    forwarded.push((*kind, id.as_str()));
                    delivered.push(*seq);
                }
                Settled::Refused { seq, error } => refused.push((*seq, error)),
            }
        }
        let mut tx = self.begin().await?;
        // The batches first; the references of delivered notices go with
        // their instants below, one UPDATE per row.
        let mut refs = tx.keep_batches(proven).await?;
        tx.relayed_forwarded(&forwarded, now).await?;
        for chunk in handed.chunks(CHUNK) {
            with_tx!(tx, |conn, Db| {
                let mut q = QueryBuilder::<Db>::new("UPDATE notices SET relayed_by = CASE id ");
                for (relay, id) in chunk {
                    q.push("WHEN ")
                        .push_bind(*id)
                        .push(" THEN ")
                        .push_bind(*relay)
                        .push(" ");
                }
                q.push("END, relayed_at = ")
                    .push_bind(micros(now))
                    .push(" WHERE received_at IS NULL AND id IN (");
                let mut list = q.separated(", ");
                for (_, id) in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                q.build().execute(&mut *conn).await?;
            });
        }
        for ((received_at, due_at, provisional), ids) in &by_instants {
            let rows: Vec<(&str, super::proofs::NoticeRefs)> =
                ids.iter().map(|id| (*id, refs.take_notice(id))).collect();
            for chunk in rows.chunks(CHUNK) {
                with_tx!(tx, |conn, Db| {
                    let mut q = QueryBuilder::<Db>::new("UPDATE notices SET received_at = ");
                    q.push_bind(*received_at)
                        .push(", due_at = ")
                        .push_bind(*due_at)
                        .push(", due_provisional = ")
                        .push_bind(i32::from(*provisional))
                        .push(", received_month = ")
                        .push_bind(month_key(self.tz, from_micros(*received_at)))
                        .push(", status = CASE WHEN status = ")
                        .push_bind(NoticeStatus::Queued as i32)
                        .push(" THEN ")
                        .push_bind(NoticeStatus::Delivered as i32)
                        .push(
                            " ELSE status END, \
                             notice_proof = COALESCE(notices.notice_proof, v.column2), \
                             ack_proof = COALESCE(notices.ack_proof, v.column3) FROM (",
                        );
                    q.push_values(chunk, |mut b, (id, (notice, ack))| {
                        b.push_bind(*id).push_bind(notice).push_bind(ack);
                    });
                    q.push(") AS v WHERE notices.id = v.column1");
                    q.build().execute(&mut *conn).await?;
                });
            }
        }
        tx.write_refs(&refs).await?;
        for chunk in replies.chunks(CHUNK) {
            with_tx!(tx, |conn, Db| {
                let mut q = QueryBuilder::<Db>::new("UPDATE replies SET delivered_at = ");
                q.push_bind(micros(now)).push(" WHERE reply_id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                q.build().execute(&mut *conn).await?;
            });
        }
        for chunk in late_replies.chunks(CHUNK) {
            with_tx!(tx, |conn, Db| {
                let mut q =
                    QueryBuilder::<Db>::new("UPDATE replies SET late = 1 WHERE reply_id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                q.build().execute(&mut *conn).await?;
            });
        }
        for chunk in delivered.chunks(CHUNK) {
            with_tx!(tx, |conn, Db| {
                let mut q = QueryBuilder::<Db>::new("DELETE FROM outbox WHERE seq IN (");
                let mut list = q.separated(", ");
                for seq in chunk {
                    list.push_bind(*seq);
                }
                q.push(")");
                q.build().execute(&mut *conn).await?;
            });
        }
        for (seq, error) in refused {
            with_tx!(tx, |conn, Db| {
                sqlx::query("UPDATE outbox SET refused = 1, attempts = attempts + 1, last_error = $1 WHERE seq = $2")
                    .bind(error)
                    .bind(seq)
                    .execute(&mut *conn)
                    .await?;
            });
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
        for chunk in seqs.chunks(CHUNK) {
            with_tx!(tx, |conn, Db| {
                let mut q = QueryBuilder::<Db>::new(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ",
                );
                q.push_bind(error)
                    .push(", next_attempt_at = ")
                    .push_bind(micros(next_attempt_at))
                    .push(" WHERE seq IN (");
                let mut list = q.separated(", ");
                for seq in chunk {
                    list.push_bind(*seq);
                }
                q.push(")");
                q.build().execute(&mut *conn).await?;
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

    /// The routes with items waiting (not refused), walked through the
    /// `(route, refused, seq)` index one route at a time (a loose index
    /// scan: a few look-ups per route, however many items wait).
    pub async fn waiting_routes(&self) -> Result<Vec<String>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "WITH RECURSIVE r(route) AS ( \
                   SELECT (SELECT MIN(route) FROM outbox) \
                   UNION ALL \
                   SELECT (SELECT MIN(o.route) FROM outbox o WHERE o.route > r.route) FROM r WHERE r.route IS NOT NULL) \
                 SELECT route FROM r WHERE route IS NOT NULL \
                   AND EXISTS (SELECT 1 FROM outbox w WHERE w.route = r.route AND w.refused = 0)",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
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

/// An item to queue: where it goes and what it carries.
pub struct NewOutboxItem<'a> {
    pub route: &'a str,
    pub target: &'a str,
    pub kind: ItemKind,
    pub notice_id: &'a str,
    pub reply_id: Option<&'a str>,
    pub payload: Vec<u8>,
}

/// Rows per multi-row statement (SQLite allows 32,766 values in all).
const CHUNK: usize = 900;

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
        self.enqueue_all(
            &[NewOutboxItem {
                route,
                target,
                kind,
                notice_id,
                reply_id,
                payload: payload.to_vec(),
            }],
            now,
        )
        .await
    }

    /// Queues `items` in their order, a multi-row insert per chunk.
    pub async fn enqueue_all(
        &mut self,
        items: &[NewOutboxItem<'_>],
        now: OffsetDateTime,
    ) -> Result<()> {
        for chunk in items.chunks(CHUNK / 8) {
            with_tx!(self, |conn, Db| {
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO outbox (route, target, item, notice_id, reply_id, payload, created_at, next_attempt_at) ",
                );
                q.push_values(chunk, |mut b, i| {
                    b.push_bind(i.route)
                        .push_bind(i.target)
                        .push_bind(i.kind as i32)
                        .push_bind(i.notice_id)
                        .push_bind(i.reply_id)
                        .push_bind(i.payload.as_slice())
                        .push_bind(micros(now))
                        .push_bind(micros(now));
                });
                q.build().execute(&mut *conn).await?;
            });
        }
        Ok(())
    }
}
