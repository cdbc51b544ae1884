//! The store: all SQL of the node lives here, behind `Store` (reads and
//! one-statement writes) and `Tx` (one write transaction), over either
//! backend: an embedded SQLite file or a PostgreSQL server.
//!
//! This file is the plumbing (backends, the macros that compile one body
//! per backend, errors, opening); the methods live by subject: `notices`,
//! `replies`, `outbox`, `leases`, `tokens`, `rollups` (timeliness), `gauges`
//! (what `/metrics` counts), `copy` (`migrex store copy`).
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: a commit that returned
//! is on disk, which is what "commit before acknowledge" relies on. Writes go
//! through a single-connection pool so that write transactions never race
//! for the lock; reads use a separate pool.

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, Row, Sqlite};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use time_tz::Tz;

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
    /// The notices table read for the open notices about given subjects.
    const BY_EVENT: &'static str;
    /// The notices table, as `n`, read for 已办 (latest reply first).
    const BY_HANDLED: &'static str;
    /// The notices table, as `n`, read for one person's notices.
    const BY_SUBJECT: &'static str;
    /// Ends a subquery that the planner must run as written, without
    /// pushing the outer query's conditions into it.
    const FENCE: &'static str;
    /// Statements around a look-up by the event index that the planner
    /// must not turn into a table scan (none where `BY_EVENT` names the
    /// index).
    const INDEX_ONLY: [&'static str; 2];
}

impl Dialect for Sqlite {
    const GREATEST: &'static str = "max";
    // Left to itself the planner reads the whole cohort by received_at.
    const BY_LAST_REPLY: &'static str = "notices INDEXED BY notices_last_reply";
    // Left to itself (no statistics) the planner prefers notices_pending
    // for `direction = ? AND status IN (…)` and walks every open inbound
    // notice for each received batch: a backlog of a million then drained
    // at 2,300/s, slower with every notice stored.
    const BY_EVENT: &'static str = "notices INDEXED BY notices_event";
    // Left to itself the planner walks every inbound notice by direction
    // and sorts them (1.3 s at a million stored, against 4 ms).
    const BY_HANDLED: &'static str = "notices AS n INDEXED BY notices_handled";
    // Without statistics the planner walks a direction's notices for one
    // person's few (notices_last_reply, then a sort).
    const BY_SUBJECT: &'static str = "notices AS n INDEXED BY notices_subject";
    const FENCE: &'static str = "LIMIT -1 OFFSET 0";
    const INDEX_ONLY: [&'static str; 2] = ["", ""];
}

impl Dialect for Postgres {
    const GREATEST: &'static str = "GREATEST";
    const BY_LAST_REPLY: &'static str = "notices";
    const BY_EVENT: &'static str = "notices";
    const BY_HANDLED: &'static str = "notices AS n";
    const BY_SUBJECT: &'static str = "notices AS n";
    const FENCE: &'static str = "OFFSET 0";
    // With the statistics of a young, fast-growing table PostgreSQL
    // estimated a tenth of it for 500 subjects and scanned it all for each
    // batch (auto_explain); the event index is always right here.
    const INDEX_ONLY: [&'static str; 2] = [
        "SET LOCAL enable_seqscan = off",
        "SET LOCAL enable_seqscan = on",
    ];
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

mod accounts;
mod audit;
mod copy;
mod deadlines;
mod events;
mod gauges;
mod leases;
mod lists;
mod nodelay;
mod notices;
mod outbox;
mod paging;
mod proofs;
mod reconciliations;
mod relay;
mod replies;
mod rollups;
mod tokens;

pub use accounts::{SessionRecord, UserChange, UserRecord, UserSummary};
pub use audit::AuditQuery;
pub use copy::{TableCopy, sqlite_in_use};
pub use deadlines::ProvisionalDeadline;
pub use events::EventKey;
pub use gauges::{NoticeCount, OutboxCount, OverdueCount};
pub use leases::Lease;
pub use lists::{NoticeFilter, PendingCounts, PendingFilter};
pub use notices::{NewNotice, NoticeRecord, StoredReceipt};
pub use outbox::{ItemKind, NewOutboxItem, OutboxItem, Settled, Waiting};
pub use paging::Cursor;
pub use proofs::{ACK, NOTICE, Proven, Refs, SignerCert, StepProof};
pub use reconciliations::Reconciled;
pub use relay::{RelayItem, RelayQueue};
pub use rollups::{CohortRow, Counts, LatencyHistogram, Metric, RollupCounts};
pub use tokens::{TokenRecord, TokenSummary, existing_node_tokens};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
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

/// A stored enum code as its domain enum; `what` names the column if the
/// code is unknown (damaged data).
fn code<E: TryFrom<i32>>(v: i64, what: &str) -> Result<E> {
    i32::try_from(v)
        .ok()
        .and_then(|v| E::try_from(v).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: unknown code {v}")))
}

pub fn from_micros(m: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1000)
        .expect("stored instants are in range")
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
    /// The key the access audit's chain is hashed with (the node's; None
    /// for a store opened without it, whose entries are plain SHA-256).
    audit_chain: Option<crate::audit::ChainKey>,
}

impl Store {
    /// This store, appending to the access audit under the node's chain key.
    pub fn with_audit_chain(mut self, key: crate::audit::ChainKey) -> Store {
        self.audit_chain = Some(key);
        self
    }

    /// Opens (creating if missing) the database at a file path or
    /// `sqlite://` URL, applies the migrations, and keys the timeliness
    /// roll-ups by local months in `tz` (recomputing them when the database
    /// was last opened with another timezone).
    pub async fn open(location: &str, tz: &'static Tz) -> Result<Self> {
        Self::open_with(location, tz, crate::config::DEFAULT_DATABASE_CONNECTIONS).await
    }

    /// `open`, holding at most `connections` PostgreSQL connections.
    pub async fn open_with(location: &str, tz: &'static Tz, connections: u32) -> Result<Self> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            // Every statement planned for its own values: a plan cached
            // while `notices` was empty (a new node) would go on scanning
            // the whole table for each batch's list of ids once it is not.
            let opts = sqlx::postgres::PgConnectOptions::from_str(location)?
                .options([("plan_cache_mode", "force_custom_plan")]);
            let pool = PgPoolOptions::new()
                .max_connections(connections.max(1))
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(|_, _| {
                    Box::pin(async {
                        nodelay::set_on_all_sockets();
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await?;
            // sqlx holds an advisory lock while migrating: replicas starting
            // together apply each migration once.
            POSTGRES_MIGRATOR.run(&pool).await?;
            let store = Store {
                backend: Backend::Postgres { pool },
                tz,
                audit_chain: None,
            };
            store.key_months_by(tz).await?;
            store.backfill_names().await?;
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
        // Page cache: 32 MiB for the writer (bulk receipt and submits touch
        // the same index pages again and again), 4 MiB for each of the four
        // readers (the default is 2 MiB); pages beyond come from the kernel's
        // file cache, which a process does not hold. Bounded in total
        // (48 MiB), however large the store grows (issue 20: memory; it was
        // 64 MiB each, 320 MiB in all).
        .pragma("cache_size", "-32768")
        .pragma("temp_store", "memory");
        // The database file is made private before SQLite opens it; its
        // WAL and shared-memory files take the database file's mode.
        let file = opts.get_filename();
        if !file.as_os_str().is_empty() && file != std::path::Path::new(":memory:") {
            crate::files::create_empty(file).map_err(|source| StoreError::File {
                path: file.display().to_string(),
                source,
            })?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        SQLITE_MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true).pragma("cache_size", "-4096"))
            .await?;
        let store = Store {
            backend: Backend::Sqlite { writer, reader },
            tz,
            audit_chain: None,
        };
        store.key_months_by(tz).await?;
        store.backfill_names().await?;
        Ok(store)
    }

    /// The timezone the roll-ups are keyed by.
    pub fn timezone(&self) -> &'static Tz {
        self.tz
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
                // Made private and empty first (VACUUM INTO fills an empty file).
                crate::files::create_empty(std::path::Path::new(path)).map_err(|source| {
                    StoreError::File {
                        path: path.to_string(),
                        source,
                    }
                })?;
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
        Ok(Tx {
            inner,
            tz: self.tz,
            audit_chain: self.audit_chain,
        })
    }
}

/// One write transaction. Nothing in it is visible, or acknowledged to
/// anyone, before `commit` returns.
pub struct Tx {
    inner: TxInner,
    tz: &'static Tz,
    audit_chain: Option<crate::audit::ChainKey>,
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
}

/// Creates the empty PostgreSQL database `name` (letters, digits and `_`)
/// through the maintenance database at `admin_url`; returns its URL.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Unsupported(
            "a database name is made of letters, digits and _",
        ));
    }
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let server = base
        .rsplit_once('/')
        .filter(|(head, _)| head.contains("//") && !head.ends_with('/'))
        .map(|(head, _)| head)
        .unwrap_or(base);
    Ok(format!("{server}/{name}{query}"))
}
