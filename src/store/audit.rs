//! The access audit's entries (`crate::audit` has the chain rule): appended
//! in the transaction of the operation they record, read back in order for
//! `migrex audit verify`, and by subject or actor for an inquiry.

use super::{Result, Store, Tx, from_micros, micros};
use crate::audit::checkpoint::Checkpoint;
use crate::audit::{Access, Entry, GENESIS, chain_hash};
use sqlx::{QueryBuilder, Row};
use time::OffsetDateTime;

/// What an inquiry looks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// The keyed hash of a subject's ID number.
    pub subject: Option<String>,
    /// A token holder's or account's name.
    pub actor: Option<String>,
    /// A token's id.
    pub token: Option<i64>,
    /// Entries after this sequence number.
    pub after: i64,
    pub limit: u32,
}

/// The most signed heads kept per witnessed district.
const KEPT_HEADS: i64 = 64;

const COLUMNS: &str =
    "seq, at, actor, token_id, operation, notice_id, subject, address, prev_hash, hash";

fn entry<R: Row>(r: &R) -> Entry
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    Entry {
        seq: r.get("seq"),
        at: from_micros(r.get("at")),
        actor: r.get("actor"),
        token: r.get("token_id"),
        operation: r.get("operation"),
        notice_id: r.get("notice_id"),
        subject: r.get("subject"),
        address: r.get("address"),
        prev_hash: r.get("prev_hash"),
        hash: r.get("hash"),
    }
}

impl Tx {
    /// Appends `accesses` at `at` to the chain, in this transaction (they
    /// commit or vanish with the operation they record). On PostgreSQL the
    /// table is locked against other appenders (replicas) until commit, so
    /// the chain has one order.
    pub async fn append_audit(&mut self, accesses: &[Access], at: OffsetDateTime) -> Result<()> {
        if accesses.is_empty() {
            return Ok(());
        }
        let postgres = matches!(self.inner, super::TxInner::Postgres(_));
        let key = self.audit_chain;
        with_tx!(self, |conn, Db| {
            if postgres {
                sqlx::query("LOCK TABLE access_audit IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *conn)
                    .await?;
            }
            let head = sqlx::query("SELECT seq, hash FROM access_audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?;
            let (mut seq, mut prev) = match head {
                Some(r) => (r.get::<i64, _>("seq"), r.get::<String, _>("hash")),
                None => (0, GENESIS.to_string()),
            };
            let at = micros(at);
            // Several hundred rows per statement at most (bind limits).
            for chunk in accesses.chunks(400) {
                let mut rows = Vec::with_capacity(chunk.len());
                for a in chunk {
                    seq += 1;
                    let hash = chain_hash(key.as_ref(), &prev, seq, at, a);
                    rows.push((seq, a, std::mem::replace(&mut prev, hash.clone()), hash));
                }
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO access_audit (seq, at, actor, token_id, operation, notice_id, subject, address, prev_hash, hash) ",
                );
                q.push_values(rows, |mut b, (seq, a, prev_hash, hash)| {
                    b.push_bind(seq)
                        .push_bind(at)
                        .push_bind(a.actor.clone())
                        .push_bind(a.token)
                        .push_bind(a.operation.clone())
                        .push_bind(a.notice_id.clone())
                        .push_bind(a.subject.clone())
                        .push_bind(a.address.clone())
                        .push_bind(prev_hash)
                        .push_bind(hash);
                });
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        })
    }
}

impl Store {
    /// Appends `accesses` in a transaction of their own (reads).
    pub async fn append_audit(&self, accesses: &[Access], at: OffsetDateTime) -> Result<()> {
        if accesses.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.append_audit(accesses, at).await?;
        tx.commit().await
    }

    /// Keeps a peer's signed audit head (witnessing), at most `KEPT_HEADS`
    /// per district: the oldest go first, never the longest.
    pub async fn keep_witnessed_head(&self, head: &Checkpoint, now: OffsetDateTime) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query(
                "INSERT INTO witnessed_heads (district, seq, hash, keyed_from, at_micros, signature, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&head.district)
            .bind(head.seq)
            .bind(&head.hash)
            .bind(head.keyed_from)
            .bind(head.at_micros)
            .bind(&head.signature)
            .bind(super::micros(now))
            .execute(pool)
            .await?;
            sqlx::query(
                "DELETE FROM witnessed_heads WHERE district = $1 AND id NOT IN \
                 (SELECT id FROM witnessed_heads WHERE district = $1 ORDER BY id DESC LIMIT $2) \
                 AND id NOT IN (SELECT id FROM witnessed_heads WHERE district = $1 ORDER BY seq DESC, id DESC LIMIT 1)",
            )
            .bind(&head.district)
            .bind(KEPT_HEADS)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The heads kept of `district`'s audit: the longest, then the latest
    /// when it is another.
    pub async fn witnessed_heads(&self, district: &str) -> Result<Vec<Checkpoint>> {
        with_pool!(self, read, |pool, Db| {
            let mut out: Vec<Checkpoint> = Vec::new();
            for sql in [
                "SELECT district, seq, hash, keyed_from, at_micros, signature \
                 FROM witnessed_heads WHERE district = $1 ORDER BY seq DESC, id DESC LIMIT 1",
                "SELECT district, seq, hash, keyed_from, at_micros, signature \
                 FROM witnessed_heads WHERE district = $1 ORDER BY id DESC LIMIT 1",
            ] {
                let row = sqlx::query(sql).bind(district).fetch_optional(pool).await?;
                if let Some(r) = row {
                    let c = Checkpoint {
                        district: r.get(0),
                        seq: r.get(1),
                        hash: r.get(2),
                        keyed_from: r.get(3),
                        at_micros: r.get(4),
                        signature: r.get(5),
                    };
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
            }
            Ok(out)
        })
    }

    /// The chain's head: its last entry's number and hash (None: empty).
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        with_pool!(self, read, |pool, Db| {
            let row = sqlx::query("SELECT seq, hash FROM access_audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|r| (r.get::<i64, _>("seq"), r.get::<String, _>("hash"))))
        })
    }

    /// The hash of entry `seq`, if there is one.
    pub async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        with_pool!(self, read, |pool, Db| {
            let mut q = QueryBuilder::<Db>::new("SELECT hash FROM access_audit WHERE seq = ");
            q.push_bind(seq);
            let row = q.build().fetch_optional(pool).await?;
            Ok(row.map(|r| r.get::<String, _>("hash")))
        })
    }

    /// The first entry hashed under a chain key (`audit::KEYED`).
    pub async fn first_keyed_audit(&self) -> Result<Option<i64>> {
        with_pool!(self, read, |pool, Db| {
            let mut q =
                QueryBuilder::<Db>::new("SELECT MIN(seq) FROM access_audit WHERE hash LIKE ");
            q.push_bind(format!("{}%", crate::audit::KEYED));
            let row = q.build().fetch_one(pool).await?;
            Ok(row.get::<Option<i64>, _>(0))
        })
    }

    /// Entries in order of `seq` that match `q`, at most `q.limit`.
    pub async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<Entry>> {
        with_pool!(self, read, |pool, Db| {
            let mut b =
                QueryBuilder::<Db>::new(format!("SELECT {COLUMNS} FROM access_audit WHERE seq > "));
            b.push_bind(q.after);
            if let Some(s) = &q.subject {
                b.push(" AND subject = ").push_bind(s.clone());
            }
            match (&q.actor, q.token) {
                (Some(a), Some(t)) => {
                    b.push(" AND (actor = ")
                        .push_bind(a.clone())
                        .push(" OR token_id = ")
                        .push_bind(t)
                        .push(")");
                }
                (Some(a), None) => {
                    b.push(" AND actor = ").push_bind(a.clone());
                }
                (None, Some(t)) => {
                    b.push(" AND token_id = ").push_bind(t);
                }
                (None, None) => {}
            }
            b.push(" ORDER BY seq LIMIT ")
                .push_bind(i64::from(q.limit.max(1)));
            let rows = b.build().fetch_all(pool).await?;
            Ok(rows.iter().map(entry).collect())
        })
    }
}
