//! Timeliness: the cohort of a period as rows, and the trigger-kept
//! roll-ups (counts by `due_at`, latency histograms) that the fast path of
//! `stats::timeliness` reads; keying the months by the node's timezone.

use super::{Dialect, Result, Store, StoreError, code, from_micros, micros};
use crate::domain::{Direction, NoticeKind, NoticeStatus, ReplySort};
use sqlx::Row;
use time::OffsetDateTime;
use time_tz::{OffsetDateTimeExt, PrimitiveDateTimeExt, TimeZone, Tz};

/// What the timeliness figures need of one notice of a cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortRow {
    pub peer: String,
    pub kind: NoticeKind,
    pub reply_required: ReplySort,
    pub created_at: OffsetDateTime,
    pub received_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub answered_at: Option<OffsetDateTime>,
}

/// The counts of SPEC.md section 4 for one group of a cohort at a report
/// time (the rates are quotients of these; `stats` does the arithmetic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub received: u64,
    pub receipt_expected: u64,
    pub acknowledged: u64,
    pub acknowledged_timely: u64,
    pub feedback_expected: u64,
    pub answered: u64,
    pub answered_timely: u64,
    pub overdue_open: u64,
    pub not_yet_due: u64,
}

/// The roll-up counts of one (month, peer, kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupCounts {
    /// The cohort's local month, YYYYMM.
    pub month: i64,
    pub peer: String,
    pub kind: NoticeKind,
    pub counts: Counts,
}

/// The two latencies the roll-ups keep histograms of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// From `received_at` to the reply, in tenths of a day.
    ReplyLatency = 1,
    /// From creation at the origin to `received_at`, in milliseconds to two
    /// significant digits.
    DeliveryLag = 2,
}

impl TryFrom<i32> for Metric {
    type Error = ();
    fn try_from(v: i32) -> std::result::Result<Self, ()> {
        match v {
            1 => Ok(Metric::ReplyLatency),
            2 => Ok(Metric::DeliveryLag),
            _ => Err(()),
        }
    }
}

/// How many cohort notices of a group fall in each latency bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    pub peer: String,
    pub kind: NoticeKind,
    pub metric: Metric,
    /// (bucket, notices).
    pub buckets: Vec<(i64, i64)>,
}

impl Store {
    /// The peers this node exchanged notices with, either way, in the
    /// months from `since` (YYYYMM, local), at most `limit` of them: whom a
    /// node that starts tells it is back (their roll-up rows, not the
    /// notices, are read).
    pub async fn recent_peers(&self, since: i32, limit: i64) -> Result<Vec<String>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT DISTINCT peer FROM timeliness_counts WHERE month >= $1 ORDER BY peer LIMIT $2",
            )
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Sets `received_month` of every received notice to its local month in
    /// `tz` unless the store already records `tz`; the triggers move the
    /// roll-ups along. One transaction: a crash leaves the old keys and the
    /// old recorded timezone, and the next start does it again.
    pub(super) async fn key_months_by(&self, tz: &'static Tz) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            let recorded: Option<String> =
                sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'timezone'")
                    .fetch_optional(pool)
                    .await?;
            if recorded.as_deref() == Some(tz.name()) {
                return Ok(());
            }
            let mut tx = pool.begin().await?;
            let span: (Option<i64>, Option<i64>) =
                sqlx::query_as("SELECT MIN(received_at), MAX(received_at) FROM notices")
                    .fetch_one(&mut *tx)
                    .await?;
            if let (Some(lo), Some(hi)) = span {
                let (first, last) = (
                    from_micros(lo).to_timezone(tz),
                    from_micros(hi).to_timezone(tz),
                );
                let mut month = first.date().replace_day(1).expect("day 1 exists");
                let midnight = |d: time::Date| {
                    d.midnight()
                        .assume_timezone(tz)
                        .take_first()
                        .expect("midnight exists in every supported timezone")
                };
                while month <= last.date() {
                    let next = month
                        .checked_add(time::Duration::days(31))
                        .and_then(|d| d.replace_day(1).ok())
                        .expect("months after a stored instant exist");
                    let key = i64::from(month.year()) * 100 + i64::from(u8::from(month.month()));
                    for direction in [Direction::Outbound, Direction::Inbound] {
                        sqlx::query(
                            "UPDATE notices SET received_month = $1 WHERE direction = $2 \
                             AND received_at >= $3 AND received_at < $4 AND received_month IS DISTINCT FROM $1",
                        )
                        .bind(key)
                        .bind(direction as i32)
                        .bind(micros(midnight(month)))
                        .bind(micros(midnight(next)))
                        .execute(&mut *tx)
                        .await?;
                    }
                    month = next;
                }
            }
            sqlx::query(
                "INSERT INTO store_meta (key, value) VALUES ('timezone', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(tz.name())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The notices of `direction` received in `[from, to)`, withdrawn ones excluded.
    pub async fn cohort(
        &self,
        direction: Direction,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<CohortRow>> {
        self.cohort_where(direction, from, to, None).await
    }

    /// The cohort notices with a receipt or feedback stamped after `t`.
    pub async fn replied_after(
        &self,
        direction: Direction,
        from: OffsetDateTime,
        to: OffsetDateTime,
        t: OffsetDateTime,
    ) -> Result<Vec<CohortRow>> {
        self.cohort_where(direction, from, to, Some(t)).await
    }

    async fn cohort_where(
        &self,
        direction: Direction,
        from: OffsetDateTime,
        to: OffsetDateTime,
        replied_after: Option<OffsetDateTime>,
    ) -> Result<Vec<CohortRow>> {
        with_pool!(self, read, |pool, Db| {
            // The expression index notices_last_reply finds the (normally no)
            // notices with a reply stamped after the report time.
            let (table, and) = match replied_after {
                None => ("notices", String::new()),
                Some(_) => (
                    <Db as Dialect>::BY_LAST_REPLY,
                    format!(
                        "AND {}(COALESCE(acknowledged_at, 0), COALESCE(answered_at, 0)) > $4",
                        <Db as Dialect>::GREATEST
                    ),
                ),
            };
            let sql = format!(
                "SELECT peer, kind, reply_required, created_at, received_at, due_at, acknowledged_at, answered_at \
                 FROM {table} WHERE direction = $1 AND received_at >= $2 AND received_at < $3 AND status <> $5 {and}"
            );
            let q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(direction as i32)
                .bind(micros(from))
                .bind(micros(to))
                .bind(micros(replied_after.unwrap_or(from)))
                .bind(NoticeStatus::Withdrawn as i32);
            let rows = q.fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(CohortRow {
                        peer: r.get("peer"),
                        kind: code(r.get("kind"), "notices.kind")?,
                        reply_required: code(r.get("reply_required"), "notices.reply_required")?,
                        created_at: from_micros(r.get("created_at")),
                        received_at: from_micros(r.get("received_at")),
                        due_at: from_micros(r.get("due_at")),
                        acknowledged_at: r
                            .get::<Option<i64>, _>("acknowledged_at")
                            .map(from_micros),
                        answered_at: r.get::<Option<i64>, _>("answered_at").map(from_micros),
                    })
                })
                .collect()
        })
    }

    /// The roll-up counts of the cohorts of the local months `first..=last`
    /// (YYYYMM) at report time `t`, as if every stored reply had been made
    /// by `t`; a row per (month, peer, kind), latencies left empty. Grouped
    /// in the order of the primary key, so SQLite streams instead of sorting.
    pub async fn rollup_counts(
        &self,
        direction: Direction,
        first: i64,
        last: i64,
        t: OffsetDateTime,
    ) -> Result<Vec<RollupCounts>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT peer, kind, CAST(SUM(received) AS BIGINT), \
                   CAST(SUM(CASE WHEN due_at <= $4 THEN received ELSE acknowledged END) AS BIGINT), \
                   CAST(SUM(acknowledged) AS BIGINT), CAST(SUM(acknowledged_timely) AS BIGINT), \
                   CAST(SUM(CASE WHEN due_at <= $4 THEN needs_feedback ELSE needs_feedback_answered END) AS BIGINT), \
                   CAST(SUM(answered) AS BIGINT), CAST(SUM(answered_timely) AS BIGINT), \
                   CAST(SUM(CASE WHEN due_at <= $4 THEN received - replied ELSE 0 END) AS BIGINT), \
                   CAST(SUM(CASE WHEN due_at <= $4 THEN 0 ELSE received - replied END) AS BIGINT), month \
                 FROM timeliness_counts WHERE direction = $1 AND month >= $2 AND month <= $3 \
                 GROUP BY month, peer, kind",
            )
            .bind(direction as i32)
            .bind(first)
            .bind(last)
            .bind(micros(t))
            .fetch_all(pool)
            .await?;
            let n = |r: &<Db as sqlx::Database>::Row, i: usize| r.get::<i64, _>(i) as u64;
            rows.iter()
                .map(|r| {
                    Ok(RollupCounts {
                        month: r.get(11),
                        peer: r.get(0),
                        kind: code(r.get(1), "timeliness_counts.kind")?,
                        counts: Counts {
                            received: n(r, 2),
                            receipt_expected: n(r, 3),
                            acknowledged: n(r, 4),
                            acknowledged_timely: n(r, 5),
                            feedback_expected: n(r, 6),
                            answered: n(r, 7),
                            answered_timely: n(r, 8),
                            overdue_open: n(r, 9),
                            not_yet_due: n(r, 10),
                        },
                    })
                })
                .collect()
        })
    }

    /// The latency histograms of the cohorts of the local months
    /// `first..=last`, every stored reply counted; one per (month, peer,
    /// kind, metric). A histogram travels as one text ("bucket count bucket
    /// count …"): a row per bucket would cost more to decode than the query.
    /// On PostgreSQL a bucket may come once per shard of the counters
    /// (PostgreSQL migration 7), some negative: the caller adds them up.
    pub async fn rollup_latency(
        &self,
        direction: Direction,
        first: i64,
        last: i64,
    ) -> Result<Vec<LatencyHistogram>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT peer, kind, metric, string_agg(CAST(bucket AS TEXT) || ' ' || CAST(n AS TEXT), ' ') FROM timeliness_latency \
                 WHERE direction = $1 AND month >= $2 AND month <= $3 AND n <> 0 \
                 GROUP BY month, peer, kind, metric",
            )
            .bind(direction as i32)
            .bind(first)
            .bind(last)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let text: String = r.get(3);
                    let numbers = text
                        .split(' ')
                        .map(|v| v.parse::<i64>())
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|_| StoreError::Corrupt("timeliness_latency".into()))?;
                    Ok(LatencyHistogram {
                        peer: r.get(0),
                        kind: code(r.get(1), "timeliness_latency.kind")?,
                        metric: code(r.get(2), "timeliness_latency.metric")?,
                        buckets: numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
                    })
                })
                .collect()
        })
    }
}
