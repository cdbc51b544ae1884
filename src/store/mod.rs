//! The store: all SQL of the node lives here, behind `Store` and `Tx`.
//!
//! The exchange and desk code only call these methods, so a PostgreSQL
//! backend can join by giving the same methods a second implementation.
//! SQLite runs in WAL mode with `synchronous=FULL`: a commit that returned
//! is on disk, which is what "commit before acknowledge" relies on. Writes go
//! through a single-connection pool so that write transactions never race
//! for the lock; reads use a separate pool.

use crate::calendar::month_key;
use crate::domain::{
    Direction, Lifecycle, NoticeContent, NoticeStatus, Reply, ReplySort, ts_to_pb,
};
use crate::pb;
use prost::Message;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use time_tz::{OffsetDateTimeExt, PrimitiveDateTimeExt, TimeZone, Tz};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Runs `$body` once per backend with `$pool` the pool to use (`read`: the
/// read pool; `write`: the single-writer pool on SQLite, the pool on
/// PostgreSQL) and `$db` naming the sqlx database type, so that one piece of
/// code, written once, is compiled for both stores.
macro_rules! with_pool {
    ($store:expr, $which:ident, |$pool:ident, $db:ident| $body:expr) => {{
        match &$store.backend {
            $crate::store::Backend::Sqlite {
                writer: _writer,
                reader: _reader,
            } => {
                #[allow(unused)]
                type $db = sqlx::Sqlite;
                let $pool = with_pool!(@pick $which, _writer, _reader);
                $body
            }
            $crate::store::Backend::Postgres { pool } => {
                #[allow(unused)]
                type $db = sqlx::Postgres;
                let $pool = pool;
                $body
            }
        }
    }};
    (@pick read, $w:ident, $r:ident) => {
        $r
    };
    (@pick write, $w:ident, $r:ident) => {
        $w
    };
}

/// Like `with_pool!`, on the connection of a write transaction.
macro_rules! with_tx {
    ($tx:expr, |$conn:ident, $db:ident| $body:expr) => {{
        match &mut $tx.inner {
            $crate::store::TxInner::Sqlite(t) => {
                #[allow(unused)]
                type $db = sqlx::Sqlite;
                let $conn = &mut **t;
                $body
            }
            $crate::store::TxInner::Postgres(t) => {
                #[allow(unused)]
                type $db = sqlx::Postgres;
                let $conn = &mut **t;
                $body
            }
        }
    }};
}

/// What differs between the two SQL dialects, beyond what both accept.
trait Dialect {
    /// The larger of two values.
    const GREATEST: &'static str;
    /// The notices table read for replies stamped after a report time.
    const BY_LAST_REPLY: &'static str;
}

impl Dialect for Sqlite {
    const GREATEST: &'static str = "max";
    // Left to itself the planner reads the whole cohort by received_at.
    const BY_LAST_REPLY: &'static str = "notices INDEXED BY notices_last_reply";
}

impl Dialect for Postgres {
    const GREATEST: &'static str = "GREATEST";
    const BY_LAST_REPLY: &'static str = "notices";
}

/// Column access by name on either backend's rows.
trait Cols {
    fn int(&self, col: &str) -> i64;
    fn opt_int(&self, col: &str) -> Option<i64>;
    fn text(&self, col: &str) -> String;
    fn opt_text(&self, col: &str) -> Option<String>;
    fn bytes(&self, col: &str) -> Vec<u8>;
    fn opt_bytes(&self, col: &str) -> Option<Vec<u8>>;
}

macro_rules! cols_for {
    ($row:ty) => {
        impl Cols for $row {
            fn int(&self, col: &str) -> i64 {
                self.get(col)
            }
            fn opt_int(&self, col: &str) -> Option<i64> {
                self.get(col)
            }
            fn text(&self, col: &str) -> String {
                self.get(col)
            }
            fn opt_text(&self, col: &str) -> Option<String> {
                self.get(col)
            }
            fn bytes(&self, col: &str) -> Vec<u8> {
                self.get(col)
            }
            fn opt_bytes(&self, col: &str) -> Option<Vec<u8>> {
                self.get(col)
            }
        }
    };
}

cols_for!(SqliteRow);
cols_for!(PgRow);

mod copy;
pub use copy::TableCopy;

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
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("the target store is not empty: it holds {0}; copy only into an empty database")]
    NotEmpty(String),
    /// A conditional update found the notice changed since it was read
    /// (another replica, another request): nothing was written.
    #[error("notice {0} changed meanwhile")]
    Stale(String),
}

/// An update that had to change exactly one row.
fn stale_unless_one(rows: u64, id: &str) -> Result<()> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::Stale(id.to_string()))
    }
}

type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// A transaction that lost to a concurrent one: the same key inserted
    /// by another replica, or a deadlock or serialization failure that
    /// PostgreSQL resolved by aborting this one. Worth running again.
    pub fn is_race(&self) -> bool {
        match self {
            StoreError::Conflict(_) | StoreError::Stale(_) => true,
            StoreError::Db(sqlx::Error::Database(e)) => {
                e.is_unique_violation()
                    || matches!(e.code().as_deref(), Some("40P01") | Some("40001"))
            }
            _ => false,
        }
    }
}

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

/// A notice as stored: its content, its life cycle, and what the node
/// keeps beside them.
#[derive(Debug, Clone)]
pub struct NoticeRecord {
    pub content: pb::Notice,
    pub life: Lifecycle,
    pub peer: String,
    pub acknowledged_by: Option<String>,
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

    pub fn to_pb(&self, now: OffsetDateTime) -> pb::Notice {
        let life = &self.life;
        let mut n = self.content.clone();
        n.direction = life.direction as i32;
        n.status = life.status as i32;
        n.received_at = life.received_at.map(ts_to_pb);
        n.due_at = life.due_at.map(ts_to_pb);
        n.acknowledged_at = life.acknowledged_at.map(ts_to_pb);
        n.acknowledged_by = self.acknowledged_by.clone().unwrap_or_default();
        n.feedback = self.feedback.clone();
        n.timely = life.timely();
        n.overdue = life.overdue(now);
        n.withdrawn_at = self.withdrawn_at.map(ts_to_pb);
        n.withdraw_reason = self.withdraw_reason.clone().unwrap_or_default();
        n.duplicate_of = self.duplicate_of.clone().unwrap_or_default();
        n.delivery_attempts = self.delivery_attempts;
        n.last_error = self.last_error.clone().unwrap_or_default();
        n
    }

    fn from_row<R: Cols>(row: &R) -> Result<Self> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("notice {}: {what}", row.text("id")));
        let content =
            pb::Notice::decode(row.bytes("content").as_slice()).map_err(|_| corrupt("content"))?;
        let feedback = row
            .opt_bytes("feedback")
            .map(|b| pb::Feedback::decode(b.as_slice()))
            .transpose()
            .map_err(|_| corrupt("feedback"))?;
        let ts = |col: &str| row.opt_int(col).map(from_micros);
        let code = |col: &str| row.int(col) as i32;
        Ok(NoticeRecord {
            content,
            life: Lifecycle {
                direction: Direction::try_from(code("direction"))
                    .map_err(|_| corrupt("direction"))?,
                status: NoticeStatus::try_from(code("status")).map_err(|_| corrupt("status"))?,
                reply_required: ReplySort::try_from(code("reply_required"))
                    .map_err(|_| corrupt("reply_required"))?,
                created_at: from_micros(row.int("created_at")),
                received_at: ts("received_at"),
                due_at: ts("due_at"),
                acknowledged_at: ts("acknowledged_at"),
                answered_at: ts("answered_at"),
            },
            peer: row.text("peer"),
            acknowledged_by: row.opt_text("acknowledged_by"),
            feedback,
            withdrawn_at: ts("withdrawn_at"),
            withdraw_reason: row.opt_text("withdraw_reason"),
            duplicate_of: row.opt_text("duplicate_of"),
            delivery_attempts: row.opt_int("attempts").unwrap_or(0) as u32,
            last_error: row.opt_text("last_error"),
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
/// lag in microseconds, at the resolution of `stats::buckets`. Assembled
/// from the roll-ups by `stats::timeliness` and counted notice by notice by
/// `stats::Figures`; the two agree exactly.
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

impl GroupCounts {
    /// Adds the counts of `other` (latencies are not added).
    pub fn absorb(&mut self, other: &GroupCounts) {
        for (mine, more) in [
            (&mut self.received, other.received),
            (&mut self.receipt_expected, other.receipt_expected),
            (&mut self.acknowledged, other.acknowledged),
            (&mut self.acknowledged_timely, other.acknowledged_timely),
            (&mut self.feedback_expected, other.feedback_expected),
            (&mut self.answered, other.answered),
            (&mut self.answered_timely, other.answered_timely),
            (&mut self.overdue_open, other.overdue_open),
            (&mut self.not_yet_due, other.not_yet_due),
        ] {
            *mine += more;
        }
    }

    /// Replaces the `assumed` contribution of some notices by their `truth`.
    pub fn swap(&mut self, truth: &GroupCounts, assumed: &GroupCounts) {
        for (mine, plus, minus) in [
            (
                &mut self.receipt_expected,
                truth.receipt_expected,
                assumed.receipt_expected,
            ),
            (
                &mut self.acknowledged,
                truth.acknowledged,
                assumed.acknowledged,
            ),
            (
                &mut self.acknowledged_timely,
                truth.acknowledged_timely,
                assumed.acknowledged_timely,
            ),
            (
                &mut self.feedback_expected,
                truth.feedback_expected,
                assumed.feedback_expected,
            ),
            (&mut self.answered, truth.answered, assumed.answered),
            (
                &mut self.answered_timely,
                truth.answered_timely,
                assumed.answered_timely,
            ),
            (
                &mut self.overdue_open,
                truth.overdue_open,
                assumed.overdue_open,
            ),
            (
                &mut self.not_yet_due,
                truth.not_yet_due,
                assumed.not_yet_due,
            ),
        ] {
            *mine = *mine + plus - minus;
        }
    }
}

/// A notice to insert, with what is already known of its life.
pub struct NewNotice<'a> {
    pub content: &'a NoticeContent,
    pub direction: Direction,
    pub status: NoticeStatus,
    /// received_at and due_at, once delivered.
    pub received: Option<(OffsetDateTime, OffsetDateTime)>,
    pub duplicate_of: Option<String>,
    /// Receipt: when and by whom.
    pub acknowledged: Option<(OffsetDateTime, &'a str)>,
    pub answered: Option<(OffsetDateTime, &'a pb::Feedback)>,
}

/// How many cohort notices of a group fall in each latency bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    pub peer: String,
    pub kind: i32,
    /// 1: reply latency in tenths of a day; 2: delivery lag in milliseconds, two significant digits.
    pub metric: i32,
    /// (bucket, notices).
    pub buckets: Vec<(i64, i64)>,
}

/// A staff token's record (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub name: String,
    pub role: String,
}

#[derive(Clone, Debug)]
enum Backend {
    /// The embedded default: one writer connection, a pool of readers.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    /// A PostgreSQL server, shared by every replica of the node.
    Postgres { pool: PgPool },
}

#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// The node's timezone: it decides the local month of `received_at`
    /// that the timeliness roll-ups are keyed by.
    tz: &'static Tz,
}

impl Store {
    /// Opens (creating if missing) the database at a file path or
    /// `sqlite://` URL, applies the migrations, and keys the timeliness
    /// roll-ups by local months in `tz` (recomputing them when the database
    /// was last opened with another timezone).
    pub async fn open(location: &str, tz: &'static Tz) -> Result<Self> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(30))
                .connect(location)
                .await?;
            // sqlx holds an advisory lock while migrating: replicas starting
            // together apply each migration once.
            POSTGRES_MIGRATOR.run(&pool).await?;
            let store = Store {
                backend: Backend::Postgres { pool },
                tz,
            };
            store.key_months_by(tz).await?;
            return Ok(store);
        }
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
        SQLITE_MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        let store = Store {
            backend: Backend::Sqlite { writer, reader },
            tz,
        };
        store.key_months_by(tz).await?;
        Ok(store)
    }

    /// The timezone the roll-ups are keyed by.
    pub fn timezone(&self) -> &'static Tz {
        self.tz
    }

    /// Sets `received_month` of every received notice to its local month in
    /// `tz` unless the store already records `tz`; the triggers move the
    /// roll-ups along. One transaction: a crash leaves the old keys and the
    /// old recorded timezone, and the next start does it again.
    async fn key_months_by(&self, tz: &'static Tz) -> Result<()> {
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

    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, read, |pool, Db| {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }

    /// Writes a consistent copy of the whole database to `path` while the
    /// node keeps running (SQLite `VACUUM INTO`); `path` must not exist.
    pub async fn backup(&self, path: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite { reader, .. } => {
                sqlx::query("VACUUM INTO $1")
                    .bind(path)
                    .execute(reader)
                    .await?;
                Ok(())
            }
            Backend::Postgres { .. } => Err(StoreError::Unsupported(
                "this node's store is PostgreSQL: back it up with pg_dump or pg_basebackup (deploy/README.md)",
            )),
        }
    }

    /// Whether the store is a PostgreSQL server (else the embedded SQLite file).
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Backend::Postgres { pool } => pool.close().await,
        }
    }

    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.backend {
            Backend::Sqlite { writer, .. } => TxInner::Sqlite(writer.begin().await?),
            Backend::Postgres { pool } => TxInner::Postgres(pool.begin().await?),
        };
        Ok(Tx { inner, tz: self.tz })
    }

    // --- tokens ---

    pub async fn insert_token(
        &self,
        name: &str,
        role: &str,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query(
                "INSERT INTO tokens (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(role)
            .bind(token_hash)
            .bind(micros(now))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Revokes every active token named `name`; returns how many.
    pub async fn revoke_tokens(&self, name: &str, now: OffsetDateTime) -> Result<u64> {
        with_pool!(self, write, |pool, Db| {
            let done = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
            )
            .bind(micros(now))
            .bind(name)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    pub async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        with_pool!(self, read, |pool, Db| {
            let row = sqlx::query(
                "SELECT name, role FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| TokenRecord {
                name: r.get("name"),
                role: r.get("role"),
            }))
        })
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
        with_pool!(self, read, |pool, Db| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{NOTICE_COLUMNS} WHERE n.id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(NoticeRecord::from_row).transpose()
        })
    }

    /// Inbound notices still waiting for their reply, oldest deadline first.
    pub async fn list_pending(
        &self,
        f: &PendingFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<NoticeRecord>> {
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new(NOTICE_COLUMNS);
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
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(NoticeRecord::from_row).collect()
        })
    }

    /// Notices of both directions, newest first.
    pub async fn list_notices(&self, f: &NoticeFilter) -> Result<Vec<NoticeRecord>> {
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new(NOTICE_COLUMNS);
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
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(NoticeRecord::from_row).collect()
        })
    }

    /// How many notices of a direction are stored (tests and the demo count rows).
    pub async fn count_notices(&self, direction: Direction) -> Result<i64> {
        with_pool!(self, read, |pool, Db| {
            Ok(
                sqlx::query("SELECT COUNT(*) FROM notices WHERE direction = $1")
                    .bind(direction as i32)
                    .fetch_one(pool)
                    .await?
                    .get(0),
            )
        })
    }

    pub async fn count_notices_with_status(
        &self,
        direction: Direction,
        status: NoticeStatus,
    ) -> Result<i64> {
        with_pool!(self, read, |pool, Db| {
            Ok(
                sqlx::query("SELECT COUNT(*) FROM notices WHERE direction = $1 AND status = $2")
                    .bind(direction as i32)
                    .bind(status as i32)
                    .fetch_one(pool)
                    .await?
                    .get(0),
            )
        })
    }

    // --- statistics ---

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
                 FROM {table} WHERE direction = $1 AND received_at >= $2 AND received_at < $3 AND status <> 6 {and}"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(direction as i32)
                .bind(micros(from))
                .bind(micros(to));
            if let Some(t) = replied_after {
                q = q.bind(micros(t));
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(CohortRow {
                        peer: r.get("peer"),
                        kind: r.get::<i64, _>("kind") as i32,
                        reply_required: ReplySort::try_from(
                            r.get::<i64, _>("reply_required") as i32
                        )
                        .map_err(|_| StoreError::Corrupt("reply_required".into()))?,
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

    /// Notices still without the reply they need at `now`, past their
    /// deadline, oldest deadline first; `direction` None means both.
    pub async fn overdue(
        &self,
        direction: Option<Direction>,
        now: OffsetDateTime,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<NoticeRecord>> {
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new(NOTICE_COLUMNS);
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
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(NoticeRecord::from_row).collect()
        })
    }

    /// The timeliness counts and percentiles of the notices of `direction`
    /// received in `[from, to)` (withdrawn excluded), as they stand at `t`,
    /// grouped by peer and/or kind, in order of peer then kind. Reads only
    /// the covering index `notices_cohort`: its cost follows the period,
    /// not the history.
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
    ) -> Result<Vec<GroupCounts>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT peer, kind, CAST(SUM(received) AS BIGINT), \
                   CAST(SUM(CASE WHEN due_at <= $4 THEN received ELSE acknowledged END) AS BIGINT), \
                   CAST(SUM(acknowledged) AS BIGINT), CAST(SUM(acknowledged_timely) AS BIGINT), \
                   CAST(SUM(CASE WHEN due_at <= $4 THEN needs_feedback ELSE needs_feedback_answered END) AS BIGINT), \
                   CAST(SUM(answered) AS BIGINT), CAST(SUM(answered_timely) AS BIGINT), \
                   CAST(SUM(CASE WHEN due_at <= $4 THEN received - replied ELSE 0 END) AS BIGINT), \
                   CAST(SUM(CASE WHEN due_at <= $4 THEN 0 ELSE received - replied END) AS BIGINT) \
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
            Ok(rows
                .iter()
                .map(|r| GroupCounts {
                    peer: r.get(0),
                    kind: r.get::<i64, _>(1) as i32,
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
                .collect())
        })
    }

    /// The latency histograms of the cohorts of the local months
    /// `first..=last`, every stored reply counted; one per (month, peer,
    /// kind, metric). A histogram travels as one text ("bucket count bucket
    /// count …"): a row per bucket would cost more to decode than the query.
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
                        kind: r.get::<i64, _>(1) as i32,
                        metric: r.get::<i64, _>(2) as i32,
                        buckets: numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
                    })
                })
                .collect()
        })
    }

    // --- metrics ---

    /// Notices per (direction, kind, peer, status), from the trigger-kept table.
    pub async fn notice_counts(&self) -> Result<Vec<(i32, i32, String, i32, i64)>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT direction, kind, peer, status, n FROM notice_counts WHERE n > 0",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    let int = |i| r.get::<i64, _>(i) as i32;
                    (int(0), int(1), r.get(2), int(3), r.get(4))
                })
                .collect())
        })
    }

    /// Notices without their reply past their deadline at `now`, per (direction, peer).
    pub async fn overdue_counts(&self, now: OffsetDateTime) -> Result<Vec<(i32, String, i64)>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT direction, peer, COUNT(*) FROM notices WHERE status IN (1, 2, 3, 4) AND due_at <= $1 \
                 AND answered_at IS NULL AND (reply_required = 2 OR acknowledged_at IS NULL) GROUP BY direction, peer",
            )
            .bind(micros(now))
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<i64, _>(0) as i32, r.get(1), r.get(2)))
                .collect())
        })
    }

    /// Per route: items waiting, items refused for good, creation time of the oldest waiting.
    pub async fn outbox_stats(&self) -> Result<Vec<(String, i64, i64, Option<OffsetDateTime>)>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT route, CAST(SUM(CASE WHEN refused = 0 THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM(CASE WHEN refused = 1 THEN 1 ELSE 0 END) AS BIGINT), MIN(CASE WHEN refused = 0 THEN created_at END) FROM outbox GROUP BY route",
            )
            .fetch_all(pool)
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
        })
    }

    // --- outbox ---

    /// The oldest items waiting for `route`, in order of creation.
    pub async fn outbox_batch(&self, route: &str, limit: usize) -> Result<Vec<OutboxItem>> {
        with_pool!(self, write, |pool, Db| {
            let rows = sqlx::query(
                "SELECT seq, item, target, notice_id, reply_id, payload, created_at, attempts FROM outbox \
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
                        kind: if r.get::<i64, _>("item") == 1 {
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
                         status = CASE WHEN status = 1 THEN 2 ELSE status END WHERE id = $4",
                    )
                    .bind(micros(*received_at))
                    .bind(micros(*due_at))
                    .bind(month_key(self.tz, *received_at))
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
    pub async fn outbox_targets(&self) -> Result<Vec<(String, String)>> {
        with_pool!(self, write, |pool, Db| {
            let rows = sqlx::query("SELECT DISTINCT target, route FROM outbox WHERE refused = 0")
                .fetch_all(pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get("target"), r.get("route")))
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

    /// Takes or renews the delivery lease of `route` for `holder` until
    /// `until`; false while another holder's lease runs.
    pub async fn claim_route(
        &self,
        route: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool> {
        with_pool!(self, write, |pool, Db| {
            let row = sqlx::query(
                "INSERT INTO route_leases (route, holder, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (route) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE route_leases.holder = excluded.holder OR route_leases.until < $4 \
                 RETURNING holder",
            )
            .bind(route)
            .bind(holder)
            .bind(micros(until))
            .bind(micros(now))
            .fetch_optional(pool)
            .await?;
            Ok(row.is_some())
        })
    }

    /// Who delivers each route, and until when.
    pub async fn route_leases(&self) -> Result<Vec<(String, String, OffsetDateTime)>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query("SELECT route, holder, until FROM route_leases ORDER BY route")
                .fetch_all(pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), from_micros(r.get(2))))
                .collect())
        })
    }

    /// Gives up `holder`'s leases (a replica stopping cleanly).
    pub async fn release_routes(&self, holder: &str) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query("DELETE FROM route_leases WHERE holder = $1")
                .bind(holder)
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

/// One write transaction. Nothing in it is visible, or acknowledged to
/// anyone, before `commit` returns.
pub struct Tx {
    inner: TxInner,
    tz: &'static Tz,
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// The stored content hash, received_at and due_at of a notice, if known.
    pub async fn notice_receipt(
        &mut self,
        id: &str,
    ) -> Result<Option<(Vec<u8>, Option<OffsetDateTime>, Option<OffsetDateTime>)>> {
        with_tx!(self, |conn, Db| {
            let row =
                sqlx::query("SELECT content_hash, received_at, due_at FROM notices WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(row.map(|r| {
                (
                    r.get("content_hash"),
                    r.get::<Option<i64>, _>("received_at").map(from_micros),
                    r.get::<Option<i64>, _>("due_at").map(from_micros),
                )
            }))
        })
    }

    /// The earliest still-open inbound notice about the same event. (The
    /// `+` keeps SQLite on the event index: ordering by the received_at
    /// index instead scanned every inbound notice, once per notice received.)
    pub async fn open_event(&mut self, content: &NoticeContent) -> Result<Option<String>> {
        with_tx!(self, |conn, Db| {
            let row = sqlx::query(
                "SELECT id FROM notices WHERE subject_id = $1 AND kind = $2 AND event_date = $3 AND direction = 2 \
                 AND status IN (3, 4) AND id <> $4 ORDER BY +received_at LIMIT 1",
            )
            .bind(content.subject.id_number.as_str())
            .bind(content.kind() as i32)
            .bind(crate::domain::format_date(content.event_date()))
            .bind(content.id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
            Ok(row.map(|r| r.get("id")))
        })
    }

    pub async fn insert_notice(
        &mut self,
        c: &NoticeContent,
        direction: Direction,
        status: NoticeStatus,
        received: Option<(OffsetDateTime, OffsetDateTime, Option<String>)>,
    ) -> Result<()> {
        let (received, duplicate_of) = match received {
            Some((r, d, dup)) => (Some((r, d)), dup),
            None => (None, None),
        };
        self.insert_notices(&[NewNotice {
            content: c,
            direction,
            status,
            received,
            duplicate_of,
            acknowledged: None,
            answered: None,
        }])
        .await
    }

    /// Inserts notices with multi-row statements; an id already stored
    /// fails the call with `Conflict` naming that id.
    pub async fn insert_notices(&mut self, rows: &[NewNotice<'_>]) -> Result<()> {
        with_tx!(self, |conn, Db| {
            // SQLite allows 32,766 parameters per statement; a row binds 23.
            for chunk in rows.chunks(1000) {
                // Checked before inserting: on PostgreSQL a failed statement
                // spoils the whole transaction.
                let mut seen = std::collections::HashSet::new();
                if let Some(n) = chunk.iter().find(|n| !seen.insert(n.content.id)) {
                    return Err(StoreError::Conflict(n.content.id.to_string()));
                }
                let mut find = QueryBuilder::<Db>::new("SELECT id FROM notices WHERE id IN (");
                let mut ids = find.separated(", ");
                for n in chunk {
                    ids.push_bind(n.content.id.to_string());
                }
                find.push(") LIMIT 1");
                let stored: Option<String> =
                    find.build_query_scalar().fetch_optional(&mut *conn).await?;
                if let Some(id) = stored {
                    return Err(StoreError::Conflict(id));
                }
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO notices (id, direction, peer, origin, destination, kind, category, urgency, \
                     reply_required, subject_id, event_date, content, content_hash, status, created_at, \
                     received_at, due_at, duplicate_of, received_month, acknowledged_at, acknowledged_by, \
                     answered_at, feedback) ",
                );
                q.push_values(chunk, |mut b, n| {
                    let c = n.content;
                    let peer = match n.direction {
                        Direction::Inbound => c.origin.as_str(),
                        _ => c.destination.as_str(),
                    };
                    b.push_bind(c.id.to_string())
                        .push_bind(n.direction as i32)
                        .push_bind(peer.to_string())
                        .push_bind(c.origin.as_str().to_string())
                        .push_bind(c.destination.as_str().to_string())
                        .push_bind(c.kind() as i32)
                        .push_bind(c.category as i32)
                        .push_bind(c.urgency as i32)
                        .push_bind(c.reply_required as i32)
                        .push_bind(c.subject.id_number.as_str().to_string())
                        .push_bind(crate::domain::format_date(c.event_date()))
                        .push_bind(c.to_wire().encode_to_vec())
                        .push_bind(c.content_hash())
                        .push_bind(n.status as i32)
                        .push_bind(micros(c.created_at))
                        .push_bind(n.received.map(|(r, _)| micros(r)))
                        .push_bind(n.received.map(|(_, d)| micros(d)))
                        .push_bind(n.duplicate_of.clone())
                        .push_bind(n.received.map(|(r, _)| month_key(self.tz, r)))
                        .push_bind(n.acknowledged.map(|(at, _)| micros(at)))
                        .push_bind(n.acknowledged.map(|(_, by)| by.to_string()))
                        .push_bind(n.answered.map(|(at, _)| micros(at)))
                        .push_bind(n.answered.map(|(_, fb)| fb.encode_to_vec()));
                });
                match q.build().execute(&mut *conn).await {
                    // Another replica stored one of them since the check above.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(StoreError::Conflict(chunk[0].content.id.to_string()));
                    }
                    Err(e) => return Err(e.into()),
                    Ok(_) => {}
                }
            }
            Ok(())
        })
    }

    pub async fn get_notice(&mut self, id: &str) -> Result<Option<NoticeRecord>> {
        with_tx!(self, |conn, Db| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{NOTICE_COLUMNS} WHERE n.id = $1"
            )))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(NoticeRecord::from_row).transpose()
        })
    }

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

    /// Records a receipt, only while the notice has none and is not
    /// withdrawn (the state `Lifecycle::check` accepted): a concurrent
    /// change makes it `Stale` instead of overwriting.
    pub async fn set_acknowledged(&mut self, id: &str, at: OffsetDateTime, by: &str) -> Result<()> {
        let done = with_tx!(self, |conn, Db| {
            sqlx::query(
                "UPDATE notices SET acknowledged_at = $1, acknowledged_by = $2, \
                 status = CASE WHEN status IN ($3, $4, $5) THEN $6 ELSE status END \
                 WHERE id = $7 AND acknowledged_at IS NULL AND status <> $8",
            )
            .bind(micros(at))
            .bind(by)
            .bind(NoticeStatus::Queued as i32)
            .bind(NoticeStatus::Delivered as i32)
            .bind(NoticeStatus::Pending as i32)
            .bind(NoticeStatus::Acknowledged as i32)
            .bind(id)
            .bind(NoticeStatus::Withdrawn as i32)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        stale_unless_one(done, id)
    }

    /// Stores feedback (it also counts as receipt when none came before),
    /// only on a notice that needs feedback, has none and is not withdrawn.
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
                 WHERE id = $5 AND answered_at IS NULL AND reply_required = $6 AND status <> $7",
            )
            .bind(micros(at))
            .bind(feedback.encode_to_vec())
            .bind(NoticeStatus::Answered as i32)
            .bind(&feedback.answered_by)
            .bind(id)
            .bind(ReplySort::Feedback as i32)
            .bind(NoticeStatus::Withdrawn as i32)
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
