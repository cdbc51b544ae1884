//! Console accounts and sessions: users with an argon2id password hash and
//! a count of failed logins, and sessions stored by the hash of their cookie.

use super::{Result, Store, StoreError, from_micros, micros};
use sqlx::Row;
use time::OffsetDateTime;

/// A console account as stored (the hash, never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub failed_logins: i64,
    pub locked_until: Option<OffsetDateTime>,
}

/// A console session as stored, with its user's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_name: String,
    pub role: String,
    /// The password was reset: the holder must change it before anything else.
    pub must_change_password: bool,
    pub csrf: String,
    pub created_at: OffsetDateTime,
    pub seen_at: OffsetDateTime,
}

impl Store {
    /// Adds an account; `Conflict` when the name is taken.
    pub async fn insert_user(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            let taken = sqlx::query("SELECT 1 FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?;
            if taken.is_some() {
                return Err(StoreError::Conflict(name.to_string()));
            }
            sqlx::query(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(role)
            .bind(password_hash)
            .bind(micros(now))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn find_user(&self, name: &str) -> Result<Option<UserRecord>> {
        with_pool!(self, write, |pool, Db| {
            let row = sqlx::query(
                "SELECT name, role, password_hash, failed_logins, locked_until FROM users WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| UserRecord {
                name: r.get(0),
                role: r.get(1),
                password_hash: r.get(2),
                failed_logins: r.get(3),
                locked_until: r.get::<Option<i64>, _>(4).map(from_micros),
            }))
        })
    }

    /// Claims one login attempt for `name` at `now`, in one statement: the
    /// attempt counts as a failure until it is known to have succeeded, and
    /// the attempt that reaches `max` failures in a row (and each one after)
    /// locks the account at once for `wait` × 1, 2, 4, 8, then 15 (so the
    /// waits grow and never pass 15 × `wait`), lifted by a success or an
    /// administrator's unlock. However many arrive at once, only those
    /// before the lock reach the password check. None: no such account, it
    /// is disabled, or it is locked now.
    pub async fn claim_login(
        &self,
        name: &str,
        now: OffsetDateTime,
        max: i64,
        wait: time::Duration,
    ) -> Result<Option<UserRecord>> {
        with_pool!(self, write, |pool, Db| {
            let row = sqlx::query(
                "UPDATE users SET \
                 failed_logins = failed_logins + 1, \
                 locked_until = CASE WHEN failed_logins + 1 < $3 THEN NULL \
                 ELSE $2 + $4 * CASE failed_logins + 1 - $3 \
                 WHEN 0 THEN 1 WHEN 1 THEN 2 WHEN 2 THEN 4 WHEN 3 THEN 8 ELSE 15 END END \
                 WHERE name = $1 AND disabled = 0 AND (locked_until IS NULL OR locked_until <= $2) \
                 RETURNING name, role, password_hash, failed_logins, locked_until",
            )
            .bind(name)
            .bind(micros(now))
            .bind(max)
            .bind(i64::try_from(wait.whole_microseconds()).unwrap_or(i64::MAX / 16))
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| UserRecord {
                name: r.get(0),
                role: r.get(1),
                password_hash: r.get(2),
                failed_logins: r.get(3),
                locked_until: r.get::<Option<i64>, _>(4).map(from_micros),
            }))
        })
    }

    /// Clears the failed logins of an account after a successful one.
    pub async fn login_succeeded(&self, name: &str) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Replaces an account's password hash and ends its sessions.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE users SET password_hash = $2, must_change_password = 0 WHERE name = $1",
            )
            .bind(name)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores a login form's pre-session (the hash of its cookie's value,
    /// its form token, the address it is shown to) in one transaction that
    /// first drops the forms made before `expired_before` and this
    /// address's oldest beyond `per_address - 1`, so an address holds at
    /// most `per_address` and nothing outlives its expiry.
    pub async fn open_login_form(
        &self,
        token_hash: &str,
        csrf: &str,
        address: &str,
        now: OffsetDateTime,
        expired_before: OffsetDateTime,
        per_address: i64,
    ) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM login_forms WHERE created_at < $1")
                .bind(micros(expired_before))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM login_forms WHERE address = $1 AND token_hash NOT IN \
                 (SELECT token_hash FROM login_forms WHERE address = $1 \
                  ORDER BY created_at DESC, token_hash LIMIT $2)",
            )
            .bind(address)
            .bind((per_address - 1).max(0))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO login_forms (token_hash, csrf, address, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(csrf)
            .bind(address)
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Takes (deletes) the login form whose cookie hashes to `token_hash`:
    /// its form token, if it was made at or after `expired_before`.
    pub async fn take_login_form(
        &self,
        token_hash: &str,
        expired_before: OffsetDateTime,
    ) -> Result<Option<String>> {
        with_pool!(self, write, |pool, Db| {
            let row = sqlx::query(
                "DELETE FROM login_forms WHERE token_hash = $1 RETURNING csrf, created_at",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            Ok(row
                .filter(|r| r.get::<i64, _>(1) >= micros(expired_before))
                .map(|r| r.get::<String, _>(0)))
        })
    }

    pub async fn insert_session(
        &self,
        token_hash: &str,
        user_name: &str,
        csrf: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_name, csrf, created_at, seen_at) VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(token_hash)
            .bind(user_name)
            .bind(csrf)
            .bind(micros(now))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn find_session(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        with_pool!(self, write, |pool, Db| {
            let row = sqlx::query(
                "SELECT s.user_name, u.role, s.csrf, s.created_at, s.seen_at, u.must_change_password \
                 FROM sessions s JOIN users u ON u.name = s.user_name \
                 WHERE s.token_hash = $1 AND u.disabled = 0",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|r| SessionRecord {
                user_name: r.get(0),
                role: r.get(1),
                csrf: r.get(2),
                created_at: from_micros(r.get(3)),
                seen_at: from_micros(r.get(4)),
                must_change_password: r.get::<i64, _>(5) != 0,
            }))
        })
    }

    /// Notes that a session was used at `now` (its idle time starts again).
    pub async fn touch_session(&self, token_hash: &str, now: OffsetDateTime) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query("UPDATE sessions SET seen_at = $2 WHERE token_hash = $1")
                .bind(token_hash)
                .bind(micros(now))
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        with_pool!(self, write, |pool, Db| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Removes the sessions idle since before `idle_before` or opened
    /// before `opened_before`; returns how many.
    pub async fn delete_expired_sessions(
        &self,
        idle_before: OffsetDateTime,
        opened_before: OffsetDateTime,
    ) -> Result<u64> {
        with_pool!(self, write, |pool, Db| {
            let done = sqlx::query("DELETE FROM sessions WHERE seen_at < $1 OR created_at < $2")
                .bind(micros(idle_before))
                .bind(micros(opened_before))
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Changes an account as an administrator asks; every change but
    /// `Unlock` ends the account's sessions in the same transaction. False:
    /// no account has that name.
    pub async fn change_user(&self, name: &str, change: &UserChange) -> Result<bool> {
        with_pool!(self, write, |pool, Db| {
            let mut tx = pool.begin().await?;
            let (sql, value): (&str, Option<&str>) = match change {
                UserChange::Disable => ("UPDATE users SET disabled = 1 WHERE name = $1", None),
                UserChange::Enable => (
                    "UPDATE users SET disabled = 0, failed_logins = 0, locked_until = NULL WHERE name = $1",
                    None,
                ),
                UserChange::Delete => ("DELETE FROM users WHERE name = $1", None),
                UserChange::SetRole(role) => {
                    ("UPDATE users SET role = $2 WHERE name = $1", Some(role))
                }
                UserChange::Unlock => (
                    "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = $1",
                    None,
                ),
                UserChange::ResetPassword(hash) => (
                    "UPDATE users SET password_hash = $2, must_change_password = 1, \
                     failed_logins = 0, locked_until = NULL WHERE name = $1",
                    Some(hash),
                ),
            };
            if !matches!(change, UserChange::Unlock) {
                sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut q = sqlx::query(sql).bind(name);
            if let Some(v) = value {
                q = q.bind(v);
            }
            let done = q.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(done > 0)
        })
    }

    /// Every account, by name (without password hashes).
    pub async fn list_users(&self) -> Result<Vec<UserSummary>> {
        with_pool!(self, read, |pool, Db| {
            let rows = sqlx::query(
                "SELECT name, role, created_at, locked_until, disabled, must_change_password \
                 FROM users ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| UserSummary {
                    name: r.get("name"),
                    role: r.get("role"),
                    created_at: from_micros(r.get("created_at")),
                    locked_until: r.get::<Option<i64>, _>("locked_until").map(from_micros),
                    disabled: r.get::<i64, _>("disabled") != 0,
                    must_change_password: r.get::<i64, _>("must_change_password") != 0,
                })
                .collect())
        })
    }
}

/// An account as the admin page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub role: String,
    pub created_at: OffsetDateTime,
    pub locked_until: Option<OffsetDateTime>,
    pub disabled: bool,
    pub must_change_password: bool,
}

/// What an administrator does to an account (`Store::change_user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    Disable,
    Enable,
    Delete,
    SetRole(String),
    Unlock,
    /// A new password hash that its holder must change at the next login.
    ResetPassword(String),
}
