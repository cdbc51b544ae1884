//! Items this node forwards as the directory's relay (中转) for other
//! districts: the record of each one accepted (`relayed`, kept after it was
//! forwarded, so that an item handed over again is answered as the first
//! time and forwarded once), written in the same transaction as its outbox
//! row, and the relay's queues by where they go.

use super::{ItemKind, NewOutboxItem, Result, Store, Tx, from_micros, micros};
use sqlx::{QueryBuilder, Row};
use std::collections::HashMap;
use time::OffsetDateTime;

/// An item accepted for forwarding.
pub struct RelayItem<'a> {
    /// `ItemKind::RelayNotice` or `ItemKind::RelayReply`.
    pub kind: ItemKind,
    pub notice_id: &'a str,
    pub reply_id: Option<&'a str>,
    pub content_hash: &'a [u8],
    /// The district whose node handed it over.
    pub source: &'a str,
    /// The notice's origin, the reply's author.
    pub author: &'a str,
    pub target: &'a str,
    pub route: &'a str,
    /// The item as it came, encoded.
    pub payload: Vec<u8>,
}

impl RelayItem<'_> {
    fn id(&self) -> &str {
        self.reply_id.unwrap_or(self.notice_id)
    }
}

/// The relay's queue towards one district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayQueue {
    pub target: String,
    pub waiting: i64,
    /// Refused for good by the next node; they stay, with the reason.
    pub refused: i64,
    pub oldest_waiting: Option<OffsetDateTime>,
}

/// Rows per multi-row statement.
const CHUNK: usize = 500;

/// The sort stored in `relayed.item`: what was relayed, not how it waits.
fn sort(kind: ItemKind) -> i32 {
    match kind {
        ItemKind::Notice | ItemKind::RelayNotice => 1,
        ItemKind::Reply | ItemKind::RelayReply => 2,
    }
}

impl Tx {
    /// The content hashes of items of `kind` already accepted for
    /// forwarding, by id.
    pub async fn relayed_hashes(
        &mut self,
        kind: ItemKind,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<u8>>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            with_tx!(self, |conn, Db| {
                let mut q =
                    QueryBuilder::<Db>::new("SELECT id, content_hash FROM relayed WHERE item = ");
                q.push_bind(sort(kind)).push(" AND id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                for r in q.build().fetch_all(&mut *conn).await? {
                    out.insert(r.get(0), r.get(1));
                }
            });
        }
        Ok(out)
    }

    /// Accepts `items` for forwarding: the record of each, and its outbox
    /// row under its route, in order.
    pub async fn accept_relayed(
        &mut self,
        items: &[RelayItem<'_>],
        now: OffsetDateTime,
    ) -> Result<()> {
        for chunk in items.chunks(CHUNK / 8) {
            with_tx!(self, |conn, Db| {
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO relayed (item, id, content_hash, source, author, target, accepted_at) ",
                );
                q.push_values(chunk, |mut b, i| {
                    b.push_bind(sort(i.kind))
                        .push_bind(i.id())
                        .push_bind(i.content_hash)
                        .push_bind(i.source)
                        .push_bind(i.author)
                        .push_bind(i.target)
                        .push_bind(micros(now));
                });
                q.build().execute(&mut *conn).await?;
            });
        }
        let queued: Vec<NewOutboxItem> = items
            .iter()
            .map(|i| NewOutboxItem {
                route: i.route,
                target: i.target,
                kind: i.kind,
                notice_id: i.notice_id,
                reply_id: i.reply_id,
                payload: i.payload.clone(),
            })
            .collect();
        self.enqueue_all(&queued, now).await
    }

    /// Notes that the next node acknowledged relayed items (by kind and id).
    pub(super) async fn relayed_forwarded(
        &mut self,
        items: &[(ItemKind, &str)],
        now: OffsetDateTime,
    ) -> Result<()> {
        for kind in [ItemKind::RelayNotice, ItemKind::RelayReply] {
            let ids: Vec<&str> = items
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| *id)
                .collect();
            for chunk in ids.chunks(CHUNK) {
                with_tx!(self, |conn, Db| {
                    let mut q = QueryBuilder::<Db>::new("UPDATE relayed SET forwarded_at = ");
                    q.push_bind(micros(now))
                        .push(" WHERE item = ")
                        .push_bind(sort(kind))
                        .push(" AND id IN (");
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    q.push(")");
                    q.build().execute(&mut *conn).await?;
                });
            }
        }
        Ok(())
    }
}

impl Store {
    /// The relay's queues: relayed items waiting in the outbox, by where
    /// they go.
    pub async fn relay_queues(&self) -> Result<Vec<RelayQueue>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT target, \
                   CAST(SUM(CASE WHEN refused = 0 THEN 1 ELSE 0 END) AS BIGINT), \
                   CAST(SUM(CASE WHEN refused = 0 THEN 0 ELSE 1 END) AS BIGINT), \
                   MIN(CASE WHEN refused = 0 THEN created_at END) \
                 FROM outbox WHERE item >= $1 GROUP BY target ORDER BY target",
            )
            .bind(ItemKind::RelayNotice as i32)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| RelayQueue {
                    target: r.get(0),
                    waiting: r.get(1),
                    refused: r.get(2),
                    oldest_waiting: r.get::<Option<i64>, _>(3).map(from_micros),
                })
                .collect())
        })
    }
}
