//! What `/metrics` reads of the store at each scrape: notices per state,
//! overdue notices per peer, the outbox per route.

use super::notices::overdue_sql;
use super::{Result, Store, code, from_micros, micros};
use crate::domain::{Direction, NoticeKind, NoticeStatus};
use sqlx::Row;
use time::OffsetDateTime;

/// Notices of one (direction, kind, peer, status), from the trigger-kept table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeCount {
    pub direction: Direction,
    pub kind: NoticeKind,
    pub peer: String,
    pub status: NoticeStatus,
    pub notices: i64,
}

/// Overdue notices of one (direction, peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueCount {
    pub direction: Direction,
    pub peer: String,
    pub notices: i64,
}

/// The outbox of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxCount {
    pub route: String,
    /// Items waiting for delivery.
    pub waiting: i64,
    /// Items the peer refused for good.
    pub refused: i64,
    /// When the oldest waiting item was created.
    pub oldest_waiting: Option<OffsetDateTime>,
}

impl Store {
    /// Notices per (direction, kind, peer, status), from the trigger-kept table
    /// (on PostgreSQL split into shards per writing connection: added up here).
    pub async fn notice_counts(&self) -> Result<Vec<NoticeCount>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT direction, kind, peer, status, CAST(SUM(n) AS BIGINT) FROM notice_counts \
                 GROUP BY direction, kind, peer, status HAVING SUM(n) > 0",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(NoticeCount {
                        direction: code(r.get(0), "notice_counts.direction")?,
                        kind: code(r.get(1), "notice_counts.kind")?,
                        peer: r.get(2),
                        status: code(r.get(3), "notice_counts.status")?,
                        notices: r.get(4),
                    })
                })
                .collect()
        })
    }

    /// Notices without their reply past their deadline at `now`, per (direction, peer).
    pub async fn overdue_counts(&self, now: OffsetDateTime) -> Result<Vec<OverdueCount>> {
        with_pool!(self, read, |pool, Db| {
            let sql = format!(
                "SELECT direction, peer, COUNT(*) FROM notices WHERE {}$1 GROUP BY direction, peer",
                overdue_sql("")
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(micros(now))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(OverdueCount {
                        direction: code(r.get(0), "notices.direction")?,
                        peer: r.get(1),
                        notices: r.get(2),
                    })
                })
                .collect()
        })
    }

    /// The outbox per route.
    pub async fn outbox_counts(&self) -> Result<Vec<OutboxCount>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT route, CAST(SUM(CASE WHEN refused = 0 THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(SUM(CASE WHEN refused = 1 THEN 1 ELSE 0 END) AS BIGINT), \
                 MIN(CASE WHEN refused = 0 THEN created_at END) FROM outbox GROUP BY route",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| OutboxCount {
                    route: r.get(0),
                    waiting: r.get(1),
                    refused: r.get(2),
                    oldest_waiting: r.get::<Option<i64>, _>(3).map(from_micros),
                })
                .collect())
        })
    }
}
