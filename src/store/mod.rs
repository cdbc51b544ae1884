//! The store: all SQL of the node lives here, behind `Store` and `Tx`.
//!
//! The exchange and desk code only call these methods, so a PostgreSQL
//! backend can join by giving the same methods a second implementation.
//! SQLite runs in WAL mode with `synchronous=FULL`: a commit that returned
//! is on disk, which is what "commit before acknowledge" relies on. Writes go
//! through a single-connection pool so that write transactions never race
//! for the lock; reads use a separate pool.

use crate::domain::{Direction, NoticeContent, NoticeStatus, Reply, ReplySort, ts_to_pb};
use crate::pb;
use prost::Message;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("notice {0} already exists")]
    Conflict(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, StoreError>;

pub fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub fn from_micros(m: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1000)
        .expect("stored instants are in range")
}

/// Which of the two things an outbox row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Notice = 1,
    Reply = 2,
}

/// A notice as stored, with the state both sides track.
#[derive(Debug, Clone)]
pub struct NoticeRecord {
    pub content: pb::Notice,
    pub direction: Direction,
    pub status: NoticeStatus,
    pub peer: String,
    pub reply_required: ReplySort,
    pub received_at: Option<OffsetDateTime>,
    pub due_at: Option<OffsetDateTime>,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub acknowledged_by: Option<String>,
    pub answered_at: Option<OffsetDateTime>,
    pub feedback: Option<pb::Feedback>,
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdraw_reason: Option<String>,
    pub duplicate_of: Option<String>,
    pub delivery_attempts: u32,
    pub last_error: Option<String>,
}

impl NoticeRecord {
    pub fn id(&self) -> &str {
        &self.content.id
    }

    /// When the reply this notice needs was made, if it was.
    pub fn replied_at(&self) -> Option<OffsetDateTime> {
        match self.reply_required {
            ReplySort::Feedback => self.answered_at,
            _ => self.acknowledged_at.or(self.answered_at),
        }
    }

    /// Replied no later than `due_at`; `None` while there is no reply.
    pub fn timely(&self) -> Option<bool> {
        Some(self.replied_at()? <= self.due_at?)
    }

    /// Without its reply and past `due_at` (withdrawn notices are never overdue).
    pub fn overdue(&self, now: OffsetDateTime) -> bool {
        self.status != NoticeStatus::Withdrawn
            && self.replied_at().is_none()
            && self.due_at.is_some_and(|d| d <= now)
    }

    pub fn to_pb(&self, now: OffsetDateTime) -> pb::Notice {
        let mut n = self.content.clone();
        n.direction = self.direction as i32;
        n.status = self.status as i32;
        n.received_at = self.received_at.map(ts_to_pb);
        n.due_at = self.due_at.map(ts_to_pb);
        n.acknowledged_at = self.acknowledged_at.map(ts_to_pb);
        n.acknowledged_by = self.acknowledged_by.clone().unwrap_or_default();
        n.feedback = self.feedback.clone();
        n.timely = self.timely();
        n.overdue = self.overdue(now);
        n.withdrawn_at = self.withdrawn_at.map(ts_to_pb);
        n.withdraw_reason = self.withdraw_reason.clone().unwrap_or_default();
        n.duplicate_of = self.duplicate_of.clone().unwrap_or_default();
        n.delivery_attempts = self.delivery_attempts;
        n.last_error = self.last_error.clone().unwrap_or_default();
        n
    }

    fn from_row(row: &SqliteRow) -> Result<Self> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!("notice {}: {what}", row.get::<String, _>("id")))
        };
        let content = pb::Notice::decode(row.get::<Vec<u8>, _>("content").as_slice())
            .map_err(|_| corrupt("content"))?;
        let feedback = row
            .get::<Option<Vec<u8>>, _>("feedback")
            .map(|b| pb::Feedback::decode(b.as_slice()))
            .transpose()
            .map_err(|_| corrupt("feedback"))?;
        let ts = |col: &str| row.get::<Option<i64>, _>(col).map(from_micros);
        Ok(NoticeRecord {
            content,
            direction: Direction::try_from(row.get::<i32, _>("direction"))
                .map_err(|_| corrupt("direction"))?,
            status: NoticeStatus::try_from(row.get::<i32, _>("status"))
                .map_err(|_| corrupt("status"))?,
            peer: row.get("peer"),
            reply_required: ReplySort::try_from(row.get::<i32, _>("reply_required"))
                .map_err(|_| corrupt("reply_required"))?,
            received_at: ts("received_at"),
            due_at: ts("due_at"),
            acknowledged_at: ts("acknowledged_at"),
            acknowledged_by: row.get("acknowledged_by"),
            answered_at: ts("answered_at"),
            feedback,
            withdrawn_at: ts("withdrawn_at"),
            withdraw_reason: row.get("withdraw_reason"),
            duplicate_of: row.get("duplicate_of"),
            delivery_attempts: row.get::<Option<i64>, _>("attempts").unwrap_or(0) as u32,
            last_error: row.get("last_error"),
        })
    }
}

const NOTICE_COLUMNS: &str = "SELECT n.*, o.attempts, o.last_error FROM notices n \
     LEFT JOIN outbox o ON o.notice_id = n.id AND o.item = 1";

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

/// Filters of `Desk.ListPending`.
#[derive(Debug, Clone, Default)]
pub struct PendingFilter {
    pub kind: Option<i32>,
    pub category: Option<i32>,
    pub urgency: Option<i32>,
    pub overdue_only: bool,
    pub due_before: Option<OffsetDateTime>,
    pub limit: u32,
    pub offset: u64,
}

/// Filters of `Desk.ListNotices`.
#[derive(Debug, Clone, Default)]
pub struct NoticeFilter {
    pub direction: Option<i32>,
    pub status: Option<i32>,
    pub kind: Option<i32>,
    pub peer_prefix: Option<String>,
    pub subject_id: Option<String>,
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
    pub limit: u32,
    pub offset: u64,
}

/// What the timeliness figures need of one notice of a cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortRow {
    pub peer: String,
    pub kind: i32,
    pub reply_required: ReplySort,
    pub created_at: OffsetDateTime,
    pub received_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub answered_at: Option<OffsetDateTime>,
}

/// The timeliness counts of one group (peer and/or kind) of a cohort, and
/// the nearest-rank percentiles (50th, 90th) of reply latency and delivery
/// lag in microseconds. Computed in SQL by `Store::timeliness` and in Rust
/// by `stats::Figures`; the two agree exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupCounts {
    pub peer: String,
    pub kind: i32,
    pub received: u64,
    pub receipt_expected: u64,
    pub acknowledged: u64,
    pub acknowledged_timely: u64,
    pub feedback_expected: u64,
    pub answered: u64,
    pub answered_timely: u64,
    pub overdue_open: u64,
    pub not_yet_due: u64,
    pub reply_latency_us: [Option<i64>; 2],
    pub delivery_lag_us: [Option<i64>; 2],
}

/// The cohort of a timeliness report with each notice's replies as they
/// stood at ?4 (T), and its grouping columns g1 (peer) and g2 (kind).
/// Parameters: ?1 direction, ?2 and ?3 the received_at range, ?4 T.
fn cohort_sql(by_peer: bool, by_kind: bool) -> String {
    format!(
        "WITH c0 AS (SELECT {g1} AS g1, {g2} AS g2, reply_required AS rr, created_at, received_at, due_at, \
           CASE WHEN acknowledged_at <= ?4 THEN acknowledged_at END AS ack, \
           CASE WHEN answered_at <= ?4 THEN answered_at END AS ans \
         FROM notices INDEXED BY notices_cohort WHERE direction = ?1 AND received_at >= ?2 AND received_at < ?3 AND status <> 6), \
         c AS (SELECT *, COALESCE(ack, ans) AS acked, CASE WHEN rr = 2 THEN ans ELSE COALESCE(ack, ans) END AS reply FROM c0)",
        g1 = if by_peer { "peer" } else { "''" },
        g2 = if by_kind { "kind" } else { "0" },
    )
}

/// A staff token's record (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub name: String,
    pub role: String,
}

#[derive(Clone, Debug)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) the database at a file path or
    /// `sqlite://` URL and applies the migrations.
    pub async fn open(location: &str) -> Result<Self> {
        let opts = if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location)?
        } else {
            SqliteConnectOptions::new().filename(location)
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        // 64 MiB of page cache per connection (the default is 2 MiB) and
        // in-memory sorting: reports and bulk receipt stay off the disk.
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Store { writer, reader })
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Writes a consistent copy of the whole database to `path` while the
    /// node keeps running (SQLite `VACUUM INTO`); `path` must not exist.
    pub async fn backup(&self, path: &str) -> Result<()> {
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(&self.reader)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            tx: self.writer.begin().await?,
        })
    }

    // --- tokens ---

    pub async fn insert_token(
        &self,
        name: &str,
        role: &str,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("INSERT INTO tokens (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)")
            .bind(name)
            .bind(role)
            .bind(token_hash)
            .bind(micros(now))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT name, role FROM tokens WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| TokenRecord {
            name: r.get("name"),
            role: r.get("role"),
        }))
    }

    // --- notices ---

    /// Commits new outbound notices and their outbox rows in one
    /// transaction: all of them or none.
    pub async fn insert_outbound(
        &self,
        notices: &[(NoticeContent, String)],
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for (content, route) in notices {
            tx.insert_notice(content, Direction::Outbound, NoticeStatus::Queued, None)
                .await?;
            tx.enqueue(
                route,
                content.destination.as_str(),
                ItemKind::Notice,
                &content.id.to_string(),
                None,
                &content.to_wire().encode_to_vec(),
                now,
            )
            .await?;
        }
        tx.commit().await
    }

    pub async fn get_notice(&self, id: &str) -> Result<Option<NoticeRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{NOTICE_COLUMNS} WHERE n.id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(NoticeRecord::from_row).transpose()
    }

    /// Inbound notices still waiting for their reply, oldest deadline first.
    pub async fn list_pending(
        &self,
        f: &PendingFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<NoticeRecord>> {
        let mut q = QueryBuilder::<Sqlite>::new(NOTICE_COLUMNS);
        q.push(
            " WHERE n.direction = 2 AND (n.status = 3 OR (n.status = 4 AND n.reply_required = 2))",
        );
        if let Some(k) = f.kind {
            q.push(" AND n.kind = ").push_bind(k);
        }
        if let Some(c) = f.category {
            q.push(" AND n.category = ").push_bind(c);
        }
        if let Some(u) = f.urgency {
            q.push(" AND n.urgency = ").push_bind(u);
        }
        if f.overdue_only {
            q.push(" AND n.due_at <= ").push_bind(micros(now));
        }
        if let Some(before) = f.due_before {
            q.push(" AND n.due_at <= ").push_bind(micros(before));
        }
        q.push(" ORDER BY n.due_at, n.id LIMIT ")
            .push_bind(i64::from(f.limit));
        q.push(" OFFSET ").push_bind(f.offset as i64);
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(NoticeRecord::from_row).collect()
    }

    /// Notices of both directions, newest first.
    pub async fn list_notices(&self, f: &NoticeFilter) -> Result<Vec<NoticeRecord>> {
        let mut q = QueryBuilder::<Sqlite>::new(NOTICE_COLUMNS);
        q.push(" WHERE 1 = 1");
        if let Some(d) = f.direction {
            q.push(" AND n.direction = ").push_bind(d);
        }
        if let Some(s) = f.status {
            q.push(" AND n.status = ").push_bind(s);
        }
        if let Some(k) = f.kind {
            q.push(" AND n.kind = ").push_bind(k);
        }
        if let Some(p) = &f.peer_prefix {
            q.push(" AND n.peer LIKE ").push_bind(format!("{p}%"));
        }
        if let Some(s) = &f.subject_id {
            q.push(" AND n.subject_id = ").push_bind(s.clone());
        }
        if let Some(t) = f.created_from {
            q.push(" AND n.created_at >= ").push_bind(micros(t));
        }
        if let Some(t) = f.created_to {
            q.push(" AND n.created_at < ").push_bind(micros(t));
        }
        q.push(" ORDER BY n.created_at DESC, n.id LIMIT ")
            .push_bind(i64::from(f.limit));
        q.push(" OFFSET ").push_bind(f.offset as i64);
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(NoticeRecord::from_row).collect()
    }

    /// How many notices of a direction are stored (tests and the demo count rows).
    pub async fn count_notices(&self, direction: Direction) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM notices WHERE direction = ?")
                .bind(direction as i32)
                .fetch_one(&self.reader)
                .await?
                .get(0),
        )
    }

    pub async fn count_notices_with_status(
        &self,
        direction: Direction,
        status: NoticeStatus,
    ) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM notices WHERE direction = ? AND status = ?")
                .bind(direction as i32)
                .bind(status as i32)
                .fetch_one(&self.reader)
                .await?
                .get(0),
        )
    }

    // --- statistics ---

    /// The notices of `direction` received in `[from, to)`, withdrawn ones excluded.
    pub async fn cohort(
        &self,
        direction: Direction,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<CohortRow>> {
        let rows = sqlx::query(
            "SELECT peer, kind, reply_required, created_at, received_at, due_at, acknowledged_at, answered_at FROM notices \
             WHERE direction = ? AND received_at >= ? AND received_at < ? AND status <> 6",
        )
        .bind(direction as i32)
        .bind(micros(from))
        .bind(micros(to))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CohortRow {
                    peer: r.get("peer"),
                    kind: r.get("kind"),
                    reply_required: ReplySort::try_from(r.get::<i32, _>("reply_required"))
                        .map_err(|_| StoreError::Corrupt("reply_required".into()))?,
                    created_at: from_micros(r.get("created_at")),
                    received_at: from_micros(r.get("received_at")),
                    due_at: from_micros(r.get("due_at")),
                    acknowledged_at: r.get::<Option<i64>, _>("acknowledged_at").map(from_micros),
                    answered_at: r.get::<Option<i64>, _>("answered_at").map(from_micros),
                })
            })
            .collect()
    }

    /// Notices still without the reply they need at `now`, past their
    /// deadline, oldest deadline first; `direction` None means both.
    pub async fn overdue(
        &self,
        direction: Option<Direction>,
        now: OffsetDateTime,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<NoticeRecord>> {
        let mut q = QueryBuilder::<Sqlite>::new(NOTICE_COLUMNS);
        q.push(" WHERE n.status <> 6 AND n.due_at <= ")
            .push_bind(micros(now));
        q.push(
            " AND n.answered_at IS NULL AND (n.reply_required = 2 OR n.acknowledged_at IS NULL)",
        );
        if let Some(d) = direction {
            q.push(" AND n.direction = ").push_bind(d as i32);
        }
        q.push(" ORDER BY n.due_at, n.id LIMIT ")
            .push_bind(i64::from(limit));
        q.push(" OFFSET ").push_bind(offset as i64);
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(NoticeRecord::from_row).collect()
    }

    /// The timeliness counts and percentiles of the notices of `direction`
    /// received in `[from, to)` (withdrawn excluded), as they stand at `t`,
    /// grouped by peer and/or kind, in order of peer then kind. Reads only
    /// the covering index `notices_cohort`: its cost follows the period,
    /// not the history.
    pub async fn timeliness(
        &self,
        direction: Direction,
        from: OffsetDateTime,
        to: OffsetDateTime,
        t: OffsetDateTime,
        by_peer: bool,
        by_kind: bool,
    ) -> Result<Vec<GroupCounts>> {
        let counts = format!(
            "{} SELECT g1, g2, COUNT(*), \
               SUM(acked IS NOT NULL OR due_at <= ?4), SUM(acked IS NOT NULL), SUM(acked <= due_at), \
               SUM(rr = 2 AND (ans IS NOT NULL OR due_at <= ?4)), SUM(ans IS NOT NULL), SUM(ans <= due_at), \
               SUM(reply IS NULL AND due_at <= ?4), SUM(reply IS NULL AND due_at > ?4) \
             FROM c GROUP BY g1, g2 ORDER BY g1, g2",
            cohort_sql(by_peer, by_kind)
        );
        let bind = |sql: String| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(direction as i32)
                .bind(micros(from))
                .bind(micros(to))
                .bind(micros(t))
        };
        let n = |r: &SqliteRow, i: usize| r.get::<Option<i64>, _>(i).unwrap_or(0) as u64;
        let mut groups: Vec<GroupCounts> = bind(counts)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| GroupCounts {
                peer: r.get(0),
                kind: r.get(1),
                received: n(r, 2),
                receipt_expected: n(r, 3),
                acknowledged: n(r, 4),
                acknowledged_timely: n(r, 5),
                feedback_expected: n(r, 6),
                answered: n(r, 7),
                answered_timely: n(r, 8),
                overdue_open: n(r, 9),
                not_yet_due: n(r, 10),
                ..Default::default()
            })
            .collect();
        // Percentiles: the values in order, per group; the nearest rank is picked here
        // (SQLite's window functions were four times slower than this).
        for (metric, value) in [(0, "reply - received_at"), (1, "received_at - created_at")] {
            let sql = format!(
                "{} SELECT g1, g2, {value} AS v FROM c WHERE v IS NOT NULL ORDER BY g1, g2, v",
                cohort_sql(by_peer, by_kind)
            );
            let rows = bind(sql).fetch_all(&self.reader).await?;
            let mut i = 0;
            while i < rows.len() {
                let (peer, kind): (String, i32) = (rows[i].get(0), rows[i].get(1));
                let end = i + rows[i..]
                    .iter()
                    .take_while(|r| r.get::<String, _>(0) == peer && r.get::<i32, _>(1) == kind)
                    .count();
                let n = (end - i) as i64;
                let pick = |num: i64, den: i64| {
                    rows[i + (((n * num + den - 1) / den).clamp(1, n) - 1) as usize]
                        .get::<i64, _>(2)
                };
                if let Some(g) = groups.iter_mut().find(|g| g.peer == peer && g.kind == kind) {
                    let slot = if metric == 0 {
                        &mut g.reply_latency_us
                    } else {
                        &mut g.delivery_lag_us
                    };
                    *slot = [Some(pick(1, 2)), Some(pick(9, 10))];
                }
                i = end;
            }
        }
        Ok(groups)
    }

    // --- metrics ---

    /// Notices per (direction, kind, peer, status), from the trigger-kept table.
    pub async fn notice_counts(&self) -> Result<Vec<(i32, i32, String, i32, i64)>> {
        let rows =
            sqlx::query("SELECT direction, kind, peer, status, n FROM notice_counts WHERE n > 0")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect())
    }

    /// Notices without their reply past their deadline at `now`, per (direction, peer).
    pub async fn overdue_counts(&self, now: OffsetDateTime) -> Result<Vec<(i32, String, i64)>> {
        let rows = sqlx::query(
            "SELECT direction, peer, COUNT(*) FROM notices WHERE status IN (1, 2, 3, 4) AND due_at <= ? \
             AND answered_at IS NULL AND (reply_required = 2 OR acknowledged_at IS NULL) GROUP BY direction, peer",
        )
        .bind(micros(now))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Per route: items waiting, items refused for good, creation time of the oldest waiting.
    pub async fn outbox_stats(&self) -> Result<Vec<(String, i64, i64, Option<OffsetDateTime>)>> {
        let rows = sqlx::query(
            "SELECT route, SUM(refused = 0), SUM(refused = 1), MIN(CASE WHEN refused = 0 THEN created_at END) FROM outbox GROUP BY route",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get::<Option<i64>, _>(3).map(from_micros),
                )
            })
            .collect())
    }

    // --- outbox ---

    /// The oldest items waiting for `route`, in order of creation.
    pub async fn outbox_batch(&self, route: &str, limit: usize) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT seq, item, target, notice_id, reply_id, payload, created_at, attempts FROM outbox \
             WHERE route = ? AND refused = 0 ORDER BY seq LIMIT ?",
        )
        .bind(route)
        .bind(limit as i64)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxItem {
                    seq: r.get("seq"),
                    kind: if r.get::<i32, _>("item") == 1 {
                        ItemKind::Notice
                    } else {
                        ItemKind::Reply
                    },
                    target: r.get("target"),
                    notice_id: r.get("notice_id"),
                    reply_id: r.get("reply_id"),
                    payload: r.get("payload"),
                    created_at: from_micros(r.get("created_at")),
                    attempts: r.get::<i64, _>("attempts") as u32,
                })
            })
            .collect()
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
                    sqlx::query(
                        "UPDATE notices SET received_at = ?, due_at = ?, \
                         status = CASE WHEN status = 1 THEN 2 ELSE status END WHERE id = ?",
                    )
                    .bind(micros(*received_at))
                    .bind(micros(*due_at))
                    .bind(notice_id)
                    .execute(&mut *tx.tx)
                    .await?;
                    tx.delete_outbox(*seq).await?;
                }
                Settled::ReplyDelivered { seq, reply_id } => {
                    sqlx::query("UPDATE replies SET delivered_at = ? WHERE reply_id = ?")
                        .bind(micros(now))
                        .bind(reply_id)
                        .execute(&mut *tx.tx)
                        .await?;
                    tx.delete_outbox(*seq).await?;
                }
                Settled::Refused { seq, error } => {
                    sqlx::query("UPDATE outbox SET refused = 1, attempts = attempts + 1, last_error = ? WHERE seq = ?")
                        .bind(error)
                        .bind(seq)
                        .execute(&mut *tx.tx)
                        .await?;
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
            sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE seq = ?")
                .bind(error)
                .bind(micros(next_attempt_at))
                .bind(seq)
                .execute(&mut *tx.tx)
                .await?;
        }
        tx.commit().await
    }

    /// Destinations with items waiting, and the route each is queued for.
    pub async fn outbox_targets(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT DISTINCT target, route FROM outbox WHERE refused = 0")
            .fetch_all(&self.writer)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("target"), r.get("route")))
            .collect())
    }

    /// Moves the waiting items for `target` to another route (routes changed in the config).
    pub async fn reroute(&self, target: &str, route: &str) -> Result<()> {
        sqlx::query("UPDATE outbox SET route = ? WHERE target = ? AND refused = 0")
            .bind(route)
            .bind(target)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Creation time of the oldest item still waiting for `route`.
    pub async fn oldest_waiting(&self, route: &str) -> Result<Option<OffsetDateTime>> {
        let row = sqlx::query("SELECT MIN(created_at) FROM outbox WHERE route = ? AND refused = 0")
            .bind(route)
            .fetch_one(&self.writer)
            .await?;
        Ok(row.get::<Option<i64>, _>(0).map(from_micros))
    }
}

/// One write transaction. Nothing in it is visible, or acknowledged to
/// anyone, before `commit` returns.
pub struct Tx {
    tx: sqlx::Transaction<'static, Sqlite>,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The stored content hash, received_at and due_at of a notice, if known.
    pub async fn notice_receipt(
        &mut self,
        id: &str,
    ) -> Result<Option<(Vec<u8>, Option<OffsetDateTime>, Option<OffsetDateTime>)>> {
        let row = sqlx::query("SELECT content_hash, received_at, due_at FROM notices WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| {
            (
                r.get("content_hash"),
                r.get::<Option<i64>, _>("received_at").map(from_micros),
                r.get::<Option<i64>, _>("due_at").map(from_micros),
            )
        }))
    }

    /// The earliest still-open inbound notice about the same event.
    pub async fn open_event(&mut self, content: &NoticeContent) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT id FROM notices WHERE subject_id = ? AND kind = ? AND event_date = ? AND direction = 2 \
             AND status IN (3, 4) AND id <> ? ORDER BY received_at LIMIT 1",
        )
        .bind(content.subject.id_number.as_str())
        .bind(content.kind() as i32)
        .bind(crate::domain::format_date(content.event_date()))
        .bind(content.id.to_string())
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| r.get("id")))
    }

    pub async fn insert_notice(
        &mut self,
        c: &NoticeContent,
        direction: Direction,
        status: NoticeStatus,
        received: Option<(OffsetDateTime, OffsetDateTime, Option<String>)>,
    ) -> Result<()> {
        let peer = match direction {
            Direction::Inbound => c.origin.as_str(),
            _ => c.destination.as_str(),
        };
        let (received_at, due_at, duplicate_of) = match received {
            Some((r, d, dup)) => (Some(micros(r)), Some(micros(d)), dup),
            None => (None, None, None),
        };
        let id = c.id.to_string();
        let res = sqlx::query(
            "INSERT INTO notices (id, direction, peer, origin, destination, kind, category, urgency, reply_required, \
             subject_id, event_date, content, content_hash, status, created_at, received_at, due_at, duplicate_of) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(direction as i32)
        .bind(peer)
        .bind(c.origin.as_str())
        .bind(c.destination.as_str())
        .bind(c.kind() as i32)
        .bind(c.category as i32)
        .bind(c.urgency as i32)
        .bind(c.reply_required as i32)
        .bind(c.subject.id_number.as_str())
        .bind(crate::domain::format_date(c.event_date()))
        .bind(c.to_wire().encode_to_vec())
        .bind(c.content_hash())
        .bind(status as i32)
        .bind(micros(c.created_at))
        .bind(received_at)
        .bind(due_at)
        .bind(duplicate_of)
        .execute(&mut *self.tx)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(id))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    pub async fn get_notice(&mut self, id: &str) -> Result<Option<NoticeRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{NOTICE_COLUMNS} WHERE n.id = ?"
        )))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(NoticeRecord::from_row).transpose()
    }

    /// The stored hash of a reply, if this reply id is known.
    pub async fn reply_hash(&mut self, reply_id: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT content_hash FROM replies WHERE reply_id = ?")
            .bind(reply_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Records a reply written here (`Direction::Outbound`) or received.
    pub async fn insert_reply(
        &mut self,
        reply: &Reply,
        direction: Direction,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO replies (reply_id, notice_id, direction, sort, content, content_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(reply.reply_id.to_string())
        .bind(reply.notice_id.to_string())
        .bind(direction as i32)
        .bind(reply.body.sort_code())
        .bind(reply.to_wire().encode_to_vec())
        .bind(reply.content_hash())
        .bind(micros(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn set_acknowledged(&mut self, id: &str, at: OffsetDateTime, by: &str) -> Result<()> {
        sqlx::query(
            "UPDATE notices SET acknowledged_at = COALESCE(acknowledged_at, ?), acknowledged_by = COALESCE(acknowledged_by, ?), \
             status = CASE WHEN status IN (1, 2, 3) THEN 4 ELSE status END WHERE id = ?",
        )
        .bind(micros(at))
        .bind(by)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Stores feedback; it also counts as receipt when none came before.
    pub async fn set_answered(
        &mut self,
        id: &str,
        feedback: &pb::Feedback,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notices SET answered_at = ?, feedback = ?, status = 5, \
             acknowledged_at = COALESCE(acknowledged_at, ?), acknowledged_by = COALESCE(acknowledged_by, ?) WHERE id = ?",
        )
        .bind(micros(at))
        .bind(feedback.encode_to_vec())
        .bind(micros(at))
        .bind(&feedback.answered_by)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn set_withdrawn(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        reason: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notices SET status = 6, withdrawn_at = ?, withdraw_reason = ? WHERE id = ?",
        )
        .bind(micros(at))
        .bind(reason)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

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
        sqlx::query(
            "INSERT INTO outbox (route, target, item, notice_id, reply_id, payload, created_at, next_attempt_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(route)
        .bind(target)
        .bind(kind as i32)
        .bind(notice_id)
        .bind(reply_id)
        .bind(payload)
        .bind(micros(now))
        .bind(micros(now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn delete_outbox(&mut self, seq: i64) -> Result<()> {
        sqlx::query("DELETE FROM outbox WHERE seq = ?")
            .bind(seq)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
