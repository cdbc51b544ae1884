//! Staff authentication and roles: bearer tokens (only their SHA-256 hash
//! is stored), console accounts and sessions (`accounts`), the caller
//! either stands for, and what each role may do.
//! Every interface (gRPC desk, web console) asks `Authenticator::caller`
//! and hands the `Caller` to the service layer, which checks the role.

pub mod accounts;
pub mod throttle;

use crate::domain::{DomainError, FieldError, Refused};
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Clerk,
    Supervisor,
    Monitor,
    Admin,
}

impl Role {
    pub const NAMES: [&'static str; 4] = ["clerk", "supervisor", "monitor", "admin"];

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "clerk" => Ok(Role::Clerk),
            "supervisor" => Ok(Role::Supervisor),
            "monitor" => Ok(Role::Monitor),
            "admin" => Ok(Role::Admin),
            _ => Err(FieldError::new(
                "role",
                format!(
                    "{} is not one of clerk, supervisor, monitor, admin",
                    crate::domain::quoted(s)
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether the role may change things (monitors only read).
    pub fn may_write(self) -> bool {
        self != Role::Monitor
    }

    /// Whether the role may withdraw a notice this node sent (撤回) and
    /// read the access audit: supervisors and administrators.
    pub fn supervises(self) -> bool {
        matches!(self, Role::Supervisor | Role::Admin)
    }
}

/// Who is calling, from their token: the name signs their replies.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The token's id when the caller came with a token (None: a console
    /// account, by its name).
    pub token: Option<i64>,
    /// The client's address as the listener saw it (for the access audit).
    pub address: String,
}

impl Caller {
    /// Whether this caller may see a person's details (every role but monitor).
    pub fn sees_personal_data(&self) -> bool {
        self.role != Role::Monitor
    }

    /// Refuses a caller who is not a supervisor or administrator.
    pub fn require_supervisor(&self) -> Result<(), DomainError> {
        if self.role.supervises() {
            Ok(())
        } else {
            Err(DomainError::new(
                Refused::NotPermitted,
                "role",
                format!(
                    "role {} may not do this: withdrawals and the access audit are for supervisors",
                    self.role.as_str()
                ),
            ))
        }
    }

    /// Refuses a caller whose role may not see a person's details (monitors
    /// read figures and lists, SPEC.md section 5).
    pub fn require_personal_data(&self) -> Result<(), DomainError> {
        if !self.sees_personal_data() {
            Err(DomainError::new(
                Refused::NotPermitted,
                "role",
                "role monitor reads figures, not a person's details",
            ))
        } else {
            Ok(())
        }
    }

    /// Refuses a caller who is not an administrator (accounts, tokens, peers).
    pub fn require_admin(&self) -> Result<(), DomainError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(DomainError::new(
                Refused::NotPermitted,
                "role",
                format!(
                    "role {} may not manage accounts, tokens or peers",
                    self.role.as_str()
                ),
            ))
        }
    }

    /// Refuses a caller whose role only reads.
    pub fn require_write(&self) -> Result<(), DomainError> {
        if self.role.may_write() {
            Ok(())
        } else {
            Err(DomainError::new(
                Refused::NotPermitted,
                "role",
                format!("role {} may only read", self.role.as_str()),
            ))
        }
    }
}

/// A new random staff token. Only its hash is stored.
pub fn new_token() -> String {
    format!("mgx_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authorization: unknown or revoked token")]
    Unknown,
    #[error("stored token has an unknown role")]
    BadRole,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a looked-up token is trusted before the store is asked again.
const TOKEN_RECHECK: time::Duration = time::Duration::minutes(1);

/// Turns tokens into callers, remembering what it looked up until a
/// revocation is seen (`watch_revocations`, every half second) or for a
/// minute by the node's clock, whichever comes first.
pub struct Authenticator {
    store: Store,
    known: Mutex<HashMap<String, Known>>,
}

/// A token looked up: who it stands for, when it was looked up, and when it expires.
struct Known {
    caller: Caller,
    seen: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
}

impl Authenticator {
    pub fn new(store: Store) -> Self {
        Authenticator {
            store,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The caller a bearer token stands for, at `now`.
    pub async fn caller(&self, token: &str, now: OffsetDateTime) -> Result<Caller, AuthError> {
        let hash = hash_token(token.trim());
        let cached = self
            .known
            .lock()
            .expect("token cache")
            .get(&hash)
            .filter(|k| now - k.seen < TOKEN_RECHECK && k.expires_at.is_none_or(|e| now < e))
            .map(|k| k.caller.clone());
        if let Some(c) = cached {
            return Ok(c);
        }
        let rec = self
            .store
            .find_token(&hash, now)
            .await?
            .ok_or(AuthError::Unknown)?;
        let caller = Caller {
            name: rec.name,
            role: Role::parse(&rec.role).map_err(|_| AuthError::BadRole)?,
            token: Some(rec.id),
            address: String::new(),
        };
        self.known.lock().expect("token cache").insert(
            hash,
            Known {
                caller: caller.clone(),
                seen: now,
                expires_at: rec.expires_at,
            },
        );
        Ok(caller)
    }

    /// Forgets every token looked up: the next call of each asks the store
    /// (after a revocation through this node, so it takes effect at once).
    pub fn forget(&self) {
        self.known.lock().expect("token cache").clear();
    }

    /// Until `stop`: every `every`, asks the store how many tokens were
    /// ever revoked and forgets what it looked up when that grew, so that a
    /// token revoked by `migrex token revoke` or on another replica is
    /// refused within `every` (a store that does not answer is asked again
    /// at the next tick; the one-minute recheck still holds).
    pub async fn watch_revocations(
        &self,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut seen = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.store.revoked_token_count().await {
                Ok(n) if seen.is_some_and(|s| s != n) => {
                    tracing::info!(revoked = n, "a token was revoked; looking tokens up again");
                    self.forget();
                    seen = Some(n);
                }
                Ok(n) if seen.is_none() => {
                    // The first count may already hold a revocation made
                    // after a token was looked up (a slow first query on a
                    // node just started): forget once, so nothing looked
                    // up before the first count outlives it.
                    self.forget();
                    seen = Some(n);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "cannot count revoked tokens; asking again"),
            }
        }
    }
}
