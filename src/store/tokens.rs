//! Staff tokens: stored as SHA-256 hashes with an id, a name, a role and
//! an optional expiry.

use super::{Result, Store, micros};
use sqlx::Row;
use std::str::FromStr;
use time::OffsetDateTime;

/// A staff token's record (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub expires_at: Option<OffsetDateTime>,
}

impl Store {
    /// Stores a token's hash; returns its id.
    pub async fn insert_token(
        &self,
        name: &str,
        role: &str,
        token_hash: &str,
        now: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<i64> {
        with_pool!(self, write, |pool, Db| {
            let row = sqlx::query(
                "INSERT INTO tokens (name, role, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(role)
            .bind(token_hash)
            .bind(micros(now))
            .bind(expires_at.map(micros))
            .fetch_one(pool)
            .await?;
            Ok(row.get::<i64, _>("id"))
        })
    }

    /// Revokes the token with id `id` if it is active; whether it was.
    pub async fn revoke_token_id(&self, id: i64, now: OffsetDateTime) -> Result<bool> {
        with_pool!(self, write, |pool, Db| {
            let done = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(micros(now))
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
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

    /// How many tokens were ever revoked: grows with every revocation
    /// (tokens are never deleted), so a node sees one made elsewhere.
    pub async fn revoked_token_count(&self) -> Result<i64> {
        with_pool!(self, read, |pool, Db| {
            Ok(sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM tokens WHERE revoked_at IS NOT NULL",
            )
            .fetch_one(pool)
            .await?)
        })
    }

    /// The active token with this hash: not revoked, not expired at `now`.
    pub async fn find_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>> {
        with_pool!(self, read, |pool, Db| {
            let row = sqlx::query(
                "SELECT id, name, role, expires_at FROM tokens WHERE token_hash = $1 \
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(token_hash)
            .bind(micros(now))
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| TokenRecord {
                id: r.get("id"),
                name: r.get("name"),
                role: r.get("role"),
                expires_at: r
                    .get::<Option<i64>, _>("expires_at")
                    .map(super::from_micros),
            }))
        })
    }

    /// Every token's name, role and dates (never the token), newest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenSummary>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT id, name, role, created_at, revoked_at, expires_at FROM tokens \
                 ORDER BY created_at DESC, id DESC",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| TokenSummary {
                    id: r.get("id"),
                    expires_at: r
                        .get::<Option<i64>, _>("expires_at")
                        .map(super::from_micros),
                    name: r.get("name"),
                    role: r.get("role"),
                    created_at: super::from_micros(r.get("created_at")),
                    revoked_at: r
                        .get::<Option<i64>, _>("revoked_at")
                        .map(super::from_micros),
                })
                .collect())
        })
    }
}

/// A token as the admin page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
}

/// How many staff tokens the database at `location` holds, looked at
/// without changing it (no migration, no file created, no re-keying):
/// `None` when it holds no node at all (no file, or no `tokens` table).
/// Every node has its admin token from `migrex init` on, so this is how
/// `init` tells a database that already serves a node.
pub async fn existing_node_tokens(location: &str) -> Result<Option<i64>> {
    use sqlx::Connection;
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        let opts = sqlx::postgres::PgConnectOptions::from_str(location)?;
        let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
        let has: bool = sqlx::query_scalar("SELECT to_regclass('tokens') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
        let count = if has {
            Some(
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tokens")
                    .fetch_one(&mut conn)
                    .await?,
            )
        } else {
            None
        };
        conn.close().await?;
        return Ok(count);
    }
    let opts = if location.starts_with("sqlite:") {
        sqlx::sqlite::SqliteConnectOptions::from_str(location)?
    } else {
        sqlx::sqlite::SqliteConnectOptions::new().filename(location)
    };
    if !opts.get_filename().exists() {
        return Ok(None);
    }
    let mut conn = sqlx::SqliteConnection::connect_with(&opts.read_only(true)).await?;
    let has: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tokens')",
    )
    .fetch_one(&mut conn)
    .await?;
    let count = if has {
        Some(
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tokens")
                .fetch_one(&mut conn)
                .await?,
        )
    } else {
        None
    };
    conn.close().await?;
    Ok(count)
}
