//! Staff tokens: stored as SHA-256 hashes with a name and a role.

use super::{Result, Store, micros};
use sqlx::Row;
use time::OffsetDateTime;

/// A staff token's record (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub name: String,
    pub role: String,
}

impl Store {
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

    /// Every token's name, role and dates (never the token), newest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenSummary>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT name, role, created_at, revoked_at FROM tokens ORDER BY created_at DESC",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| TokenSummary {
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
    pub name: String,
    pub role: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}
