//! `migrex store copy`: a node's whole state from one store into an empty
//! other one (the way a district moves from the embedded SQLite file to
//! PostgreSQL), verified by row counts and a checksum per table.
//!
//! Copied: notices, replies, outbox, tokens, the reference counters, the proofs of each journey and
//! their signers' certificates, the access audit (its chain
//! intact: same sequence numbers and hashes) and the store's own records
//! (`store_meta`). Not copied: what the target's triggers rebuild from the
//! notices as they arrive (notice counts, timeliness roll-ups), delivery
//! leases (they belong to running processes), and console sessions and
//! login forms (short-lived: staff log in again after the move).

use super::{Result, Store, StoreError, TxInner};
use sha2::{Digest, Sha256};
use sqlx::{QueryBuilder, Row};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Text,
    Bytes,
}

/// A table to copy: its name, its key (the copy's and the checksum's
/// order), and its stored columns (generated ones are left to the target).
struct Table {
    name: &'static str,
    key: &'static str,
    columns: &'static [(&'static str, Kind)],
}

use Kind::{Bytes, Int, Text};

const TABLES: &[Table] = &[
    Table {
        name: "notices",
        key: "id",
        columns: &[
            ("id", Text),
            ("direction", Int),
            ("peer", Text),
            ("origin", Text),
            ("destination", Text),
            ("kind", Int),
            ("category", Int),
            ("urgency", Int),
            ("reply_required", Int),
            ("subject_id", Text),
            ("event_date", Text),
            ("content", Bytes),
            ("content_hash", Bytes),
            ("status", Int),
            ("created_at", Int),
            ("received_at", Int),
            ("due_at", Int),
            ("acknowledged_at", Int),
            ("acknowledged_by", Text),
            ("answered_at", Int),
            ("feedback", Bytes),
            ("withdrawn_at", Int),
            ("withdraw_reason", Text),
            ("duplicate_of", Text),
            ("received_month", Int),
            ("due_provisional", Int),
            ("due_working_days", Int),
            ("notice_proof", Bytes),
            ("ack_proof", Bytes),
            ("relayed_by", Text),
            ("relayed_at", Int),
            ("reference", Text),
            ("subject_name", Text),
            ("reminders", Int),
            ("reminded_at", Int),
        ],
    },
    Table {
        name: "reference_counters",
        key: "key",
        columns: &[("key", Text), ("last", Int)],
    },
    Table {
        name: "replies",
        key: "reply_id",
        columns: &[
            ("reply_id", Text),
            ("notice_id", Text),
            ("direction", Int),
            ("sort", Int),
            ("content", Bytes),
            ("content_hash", Bytes),
            ("created_at", Int),
            ("delivered_at", Int),
            ("late", Int),
            ("proof", Bytes),
        ],
    },
    Table {
        name: "outbox",
        key: "seq",
        columns: &[
            ("seq", Int),
            ("route", Text),
            ("target", Text),
            ("item", Int),
            ("notice_id", Text),
            ("reply_id", Text),
            ("payload", Bytes),
            ("created_at", Int),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_error", Text),
            ("refused", Int),
        ],
    },
    Table {
        name: "tokens",
        key: "id",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("role", Text),
            ("token_hash", Text),
            ("created_at", Int),
            ("revoked_at", Int),
            ("expires_at", Int),
        ],
    },
    Table {
        name: "access_audit",
        key: "seq",
        columns: &[
            ("seq", Int),
            ("at", Int),
            ("actor", Text),
            ("token_id", Int),
            ("operation", Text),
            ("notice_id", Text),
            ("subject", Text),
            ("address", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
    },
    Table {
        name: "users",
        key: "name",
        columns: &[
            ("name", Text),
            ("role", Text),
            ("password_hash", Text),
            ("created_at", Int),
            ("failed_logins", Int),
            ("locked_until", Int),
            ("disabled", Int),
            ("must_change_password", Int),
        ],
    },
    Table {
        name: "signed_batches",
        key: "id",
        columns: &[
            ("id", Int),
            ("signer", Text),
            ("size", Int),
            ("signature", Bytes),
            ("cert", Text),
            ("leaves", Bytes),
        ],
    },
    Table {
        name: "certificates",
        key: "fingerprint",
        columns: &[("fingerprint", Text), ("district", Text), ("der", Bytes)],
    },
    Table {
        name: "reconciliations",
        key: "key",
        columns: &[
            ("key", Text),
            ("peer", Text),
            ("period", Text),
            ("checked_at", Int),
            ("notices", Int),
            ("divergent", Int),
            ("agreed_at", Int),
        ],
    },
    Table {
        name: "witnessed_heads",
        key: "id",
        columns: &[
            ("id", Int),
            ("district", Text),
            ("seq", Int),
            ("hash", Text),
            ("keyed_from", Int),
            ("at_micros", Int),
            ("signature", Text),
            ("received_at", Int),
        ],
    },
    Table {
        name: "store_meta",
        key: "key",
        columns: &[("key", Text), ("value", Text)],
    },
];

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    /// A canonical, unambiguous encoding for the checksum.
    fn digest(&self, h: &mut Sha256) {
        let (tag, body): (u8, Option<Vec<u8>>) = match self {
            Value::Int(v) => (1, v.map(|v| v.to_be_bytes().to_vec())),
            Value::Text(v) => (2, v.as_ref().map(|v| v.as_bytes().to_vec())),
            Value::Bytes(v) => (3, v.clone()),
        };
        h.update([tag]);
        match body {
            None => h.update([0]),
            Some(b) => {
                h.update([1]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
}

/// What was copied of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub rows: u64,
    /// SHA-256 over the rows in key order, equal on both sides.
    pub checksum: String,
}

const PAGE: i64 = 500;

impl Store {
    /// Up to `PAGE` rows of `t` in key order, after the key `after`.
    async fn page(&self, t: &Table, after: Option<&Value>) -> Result<Vec<Vec<Value>>> {
        let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
        let sql = format!(
            "SELECT {} FROM {} {} ORDER BY {} LIMIT {PAGE}",
            cols.join(", "),
            t.name,
            if after.is_some() {
                format!("WHERE {} > $1", t.key)
            } else {
                String::new()
            },
            t.key
        );
        with_pool!(self, read, |pool, Db| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            q = match after {
                None => q,
                Some(Value::Int(v)) => q.bind(*v),
                Some(Value::Text(v)) => q.bind(v.clone()),
                Some(Value::Bytes(v)) => q.bind(v.clone()),
            };
            let rows = q.fetch_all(pool).await?;
            Ok(rows
                .iter()
                .map(|r| {
                    t.columns
                        .iter()
                        .enumerate()
                        .map(|(i, (_, kind))| match kind {
                            Int => Value::Int(r.get(i)),
                            Text => Value::Text(r.get(i)),
                            Bytes => Value::Bytes(r.get(i)),
                        })
                        .collect()
                })
                .collect())
        })
    }

    /// Row count and checksum of `table`, read in key order.
    async fn table_sum(&self, t: &Table) -> Result<(u64, String)> {
        let mut h = Sha256::new();
        let mut rows = 0u64;
        let mut after: Option<Value> = None;
        loop {
            let page = self.page(t, after.as_ref()).await?;
            for row in &page {
                for v in row {
                    v.digest(&mut h);
                }
            }
            rows += page.len() as u64;
            if (page.len() as i64) < PAGE {
                return Ok((rows, hex::encode(h.finalize())));
            }
            after = page.last().map(|r| r[key_index(t)].clone());
        }
    }

    /// Copies this store's whole state into `target`, which must hold no
    /// notices, replies, outbox items or tokens; one transaction on the
    /// target, so a failed copy leaves it empty. Then compares row counts
    /// and checksums of every table on both sides. `progress` hears each
    /// table's name and rows copied so far.
    pub async fn copy_into(
        &self,
        target: &Store,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<Vec<TableCopy>> {
        for t in TABLES.iter().filter(|t| t.name != "store_meta") {
            let n = target.count_rows(t.name).await?;
            if n > 0 {
                return Err(StoreError::NotEmpty(format!("{} {}", n, t.name)));
            }
        }
        let mut tx = target.begin().await?;
        for t in TABLES {
            let mut copied = 0u64;
            let mut after: Option<Value> = None;
            loop {
                let page = self.page(t, after.as_ref()).await?;
                if !page.is_empty() {
                    insert_page(&mut tx, t, &page).await?;
                }
                copied += page.len() as u64;
                progress(t.name, copied);
                if (page.len() as i64) < PAGE {
                    break;
                }
                after = page.last().map(|r| r[key_index(t)].clone());
            }
        }
        // Identity columns continue after the copied values.
        if let TxInner::Postgres(c) = &mut tx.inner {
            for (table, col) in [
                ("outbox", "seq"),
                ("tokens", "id"),
                ("signed_batches", "id"),
                ("witnessed_heads", "id"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), \
                     GREATEST((SELECT MAX({col}) FROM {table}), 1))"
                )))
                .execute(&mut **c)
                .await?;
            }
        }
        tx.commit().await?;
        let mut report = Vec::new();
        for t in TABLES {
            let (rows, checksum) = self.table_sum(t).await?;
            let (rows_there, sum_there) = target.table_sum(t).await?;
            if (rows, &checksum) != (rows_there, &sum_there) {
                return Err(StoreError::Corrupt(format!(
                    "the copy of {} differs: {rows} rows ({checksum}) here, {rows_there} ({sum_there}) there",
                    t.name
                )));
            }
            report.push(TableCopy {
                table: t.name,
                rows,
                checksum,
            });
        }
        Ok(report)
    }

    async fn count_rows(&self, table: &str) -> Result<i64> {
        with_pool!(self, read, |pool, Db| {
            Ok(
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(pool)
                    .await?
                    .get::<i64, _>(0),
            )
        })
    }
}

fn key_index(t: &Table) -> usize {
    t.columns
        .iter()
        .position(|c| c.0 == t.key)
        .expect("the key is a column")
}

async fn insert_page(tx: &mut super::Tx, t: &Table, page: &[Vec<Value>]) -> Result<()> {
    let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    // store_meta: the target's own migration may have written its keys.
    let upsert = if t.name == "store_meta" {
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    } else {
        ""
    };
    with_tx!(tx, |conn, Db| {
        let mut q =
            QueryBuilder::<Db>::new(format!("INSERT INTO {} ({}) ", t.name, cols.join(", ")));
        q.push_values(page, |mut b, row| {
            for v in row {
                match v {
                    Value::Int(x) => b.push_bind(*x),
                    Value::Text(x) => b.push_bind(x.clone()),
                    Value::Bytes(x) => b.push_bind(x.clone()),
                };
            }
        });
        q.push(upsert);
        q.build().execute(&mut *conn).await?;
        Ok(())
    })
}

/// The SQLite file a location names (a path, `sqlite://PATH` or
/// `sqlite:PATH`, query dropped); `None` for another kind of store.
fn sqlite_file(location: &str) -> Option<std::path::PathBuf> {
    if location.contains("://") && !location.starts_with("sqlite:") {
        return None;
    }
    let path = location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or(location);
    Some(path.split('?').next().unwrap_or(path).into())
}

/// Whether another process has the SQLite database at `location` open (a
/// running node): every connection to a database in WAL mode holds a
/// shared POSIX lock on byte 128 of its `-shm` file (SQLite's "DMS" slot)
/// for as long as it is open, which a probe for a write lock on that byte
/// sees. No `-shm` file: nobody has it open. Our own process holds no
/// connection to it when this is asked (POSIX locks of one's own process
/// are not reported, and closing a probe's descriptor would drop them).
pub fn sqlite_in_use(location: &str) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let Some(db) = sqlite_file(location) else {
        return Ok(false);
    };
    let mut shm = db.clone().into_os_string();
    shm.push("-shm");
    let file = match std::fs::File::open(&shm) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // SAFETY: a plain struct for fcntl, zeroed then filled in.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as _;
    probe.l_whence = libc::SEEK_SET as _;
    probe.l_start = 128;
    probe.l_len = 1;
    // SAFETY: F_GETLK only reads the lock table into `probe`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
}
