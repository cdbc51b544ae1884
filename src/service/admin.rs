//! What administrators manage (SPEC.md section 5): staff accounts, staff
//! tokens, and the peers this node delivers to with their delivery state.
//! Every operation here requires the admin role; changing one's own
//! password is open to every account.

use super::{Result, ServiceError};
use crate::auth::accounts::{self, AccountError};
use crate::auth::{Caller, Role};
use crate::context::NodeCtx;
use crate::store::{TokenSummary, UserSummary};
use time::OffsetDateTime;

impl From<AccountError> for ServiceError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Refused(r) => ServiceError::Refused(r),
            AccountError::Store(s) => s.into(),
        }
    }
}

pub async fn users(ctx: &NodeCtx, caller: &Caller) -> Result<Vec<UserSummary>> {
    caller.require_admin()?;
    Ok(ctx.store.list_users().await?)
}

/// Creates a staff account.
pub async fn add_user(
    ctx: &NodeCtx,
    caller: &Caller,
    name: &str,
    role: Role,
    password: &str,
) -> Result<()> {
    caller.require_admin()?;
    accounts::create_user(&ctx.store, name, role, password, ctx.now()).await?;
    tracing::info!(user = %name.trim(), role = role.as_str(), by = %caller.name, "console account created");
    Ok(())
}

pub async fn tokens(ctx: &NodeCtx, caller: &Caller) -> Result<Vec<TokenSummary>> {
    caller.require_admin()?;
    Ok(ctx.store.list_tokens().await?)
}

/// The longest a token made in the console is valid (ten years).
const MAX_TOKEN_DAYS: u32 = 3660;

/// Creates a staff token named `name` for `role`, valid `days` days (None:
/// until revoked); only its hash is stored. Returns its id and the token,
/// which the caller shows once.
pub async fn create_token(
    ctx: &NodeCtx,
    caller: &Caller,
    name: &str,
    role: Role,
    days: Option<u32>,
) -> Result<(i64, String)> {
    caller.require_admin()?;
    let name = crate::domain::required_text("name", name, 100)?;
    if days.is_some_and(|d| d == 0 || d > MAX_TOKEN_DAYS) {
        return Err(crate::domain::FieldError::new(
            "days",
            format!("'{}' is outside 1..{MAX_TOKEN_DAYS}", days.unwrap_or(0)),
        )
        .into());
    }
    let now = ctx.now();
    let expires = days.map(|d| now + time::Duration::days(i64::from(d)));
    let token = crate::auth::new_token();
    let id = ctx
        .store
        .insert_token(
            &name,
            role.as_str(),
            &crate::auth::hash_token(&token),
            now,
            expires,
        )
        .await?;
    tracing::info!(token = id, name = %name, role = role.as_str(), by = %caller.name, "token created in the console");
    Ok((id, token))
}

/// Revokes token `id`: refused at once by this node (its lookups are
/// forgotten), within a minute by the other replicas.
pub async fn revoke_token(ctx: &NodeCtx, caller: &Caller, id: i64) -> Result<()> {
    caller.require_admin()?;
    if !ctx.store.revoke_token_id(id, ctx.now()).await? {
        return Err(crate::domain::DomainError::new(
            crate::domain::Refused::NotFound,
            "id",
            format!("no active token has id {id}"),
        )
        .into());
    }
    ctx.auth.forget();
    tracing::info!(token = id, by = %caller.name, "token revoked");
    Ok(())
}

/// One peer route and how delivery to it stands.
pub struct PeerState {
    pub prefix: String,
    pub endpoint: String,
    /// Added by hand (else from the network directory).
    pub by_hand: bool,
    pub waiting: i64,
    pub refused: i64,
    pub oldest_waiting: Option<OffsetDateTime>,
}

/// The routes added by hand, and the directory's routes that hold items
/// (waiting or refused; a directory lists thousands), and items that no
/// route reaches (prefix empty).
pub async fn peers(ctx: &NodeCtx, caller: &Caller) -> Result<Vec<PeerState>> {
    caller.require_admin()?;
    let counts = ctx.store.outbox_counts().await?;
    let hand = ctx.routes.hand();
    let mut out: Vec<PeerState> = ctx
        .routes
        .all()
        .iter()
        .filter_map(|r| {
            let by_hand = hand.iter().any(|h| h.prefix == r.prefix);
            let c = counts.iter().find(|c| c.route == r.prefix.as_str());
            (by_hand || c.is_some()).then(|| PeerState {
                prefix: r.prefix.to_string(),
                endpoint: r.endpoint.clone(),
                by_hand,
                waiting: c.map_or(0, |c| c.waiting),
                refused: c.map_or(0, |c| c.refused),
                oldest_waiting: c.and_then(|c| c.oldest_waiting),
            })
        })
        .collect();
    if let Some(c) = counts.iter().find(|c| c.route.is_empty()) {
        out.push(PeerState {
            prefix: String::new(),
            endpoint: String::new(),
            by_hand: false,
            waiting: c.waiting,
            refused: c.refused,
            oldest_waiting: c.oldest_waiting,
        });
    }
    Ok(out)
}

/// What this node relays (中转): the districts the directory lists it as
/// relay for, and its queues of relayed items by where they go.
pub struct RelayState {
    pub serves: Vec<String>,
    pub queues: Vec<crate::store::RelayQueue>,
}

pub async fn relay(ctx: &NodeCtx, caller: &Caller) -> Result<RelayState> {
    caller.require_admin()?;
    let serves = ctx
        .routes
        .directory()
        .map(|d| {
            d.served_by(&ctx.district)
                .into_iter()
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(RelayState {
        serves,
        queues: ctx.store.relay_queues().await?,
    })
}

/// The network directory this node routes by, if any.
pub struct DirectoryStatus {
    pub serial: u64,
    pub districts: usize,
    pub changes: usize,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub expired: bool,
    pub sources: Vec<String>,
}

pub fn directory(ctx: &NodeCtx, caller: &Caller) -> Result<Option<DirectoryStatus>> {
    caller.require_admin()?;
    let Some(settings) = &ctx.directory else {
        return Ok(None);
    };
    let sources = settings.sources.iter().map(ToString::to_string).collect();
    Ok(Some(match ctx.routes.directory() {
        Some(d) => DirectoryStatus {
            serial: d.serial,
            districts: d.districts.len(),
            changes: d.changes.len(),
            issued_at: d.issued_at,
            expires_at: d.expires_at,
            expired: d.expires_at <= ctx.now(),
            sources,
        },
        None => DirectoryStatus {
            serial: 0,
            districts: 0,
            changes: 0,
            issued_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
            expired: true,
            sources,
        },
    }))
}

/// Changes another staff account (disable, enable, delete, set-role,
/// unlock, reset-password); its sessions end at once. An administrator
/// cannot disable, delete or re-role their own account (the node would be
/// left without one who can undo it).
pub async fn change_user(
    ctx: &NodeCtx,
    caller: &Caller,
    name: &str,
    change: accounts::AccountChange,
) -> Result<()> {
    use accounts::AccountChange as C;
    caller.require_admin()?;
    if name.trim() == caller.name && matches!(change, C::Disable | C::Delete | C::SetRole(_)) {
        return Err(crate::domain::DomainError::new(
            crate::domain::Refused::NotPermitted,
            "name",
            "不能停用、删除或更改自己的账户 (an administrator cannot disable, delete or re-role their own account)",
        )
        .into());
    }
    let what = match &change {
        C::Disable => "disabled",
        C::Enable => "enabled",
        C::Delete => "deleted",
        C::SetRole(_) => "role changed",
        C::Unlock => "unlocked",
        C::ResetPassword(_) => "password reset",
    };
    accounts::change_account(&ctx.store, name, change).await?;
    tracing::info!(user = %name.trim(), change = what, by = %caller.name, "console account changed");
    Ok(())
}

/// How a console login ended, when it did not open a session.
#[derive(Debug, thiserror::Error)]
pub enum LoginRefusal {
    /// The address guessed too often: try again after this.
    #[error("too many failed logins from this address; wait {0}")]
    Wait(time::Duration),
    /// Wrong name or password, or the account locked or disabled: alike.
    #[error("wrong user name or password")]
    Refused,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A console login from `address`: refused at once (nothing checked,
/// nothing recorded) while the address waits out its failures; otherwise
/// the account's login, and a refusal counted for the address and written
/// to the access audit (`console:login refused`, the name as typed, clipped).
pub async fn console_login(
    ctx: &NodeCtx,
    name: &str,
    password: &str,
    address: std::net::IpAddr,
) -> std::result::Result<accounts::NewSession, LoginRefusal> {
    let now = ctx.now();
    if let Some(wait) = ctx.login_throttle.wait(address, now) {
        return Err(LoginRefusal::Wait(wait));
    }
    match accounts::login(&ctx.store, name, password, now).await {
        Ok(mut s) => {
            ctx.login_throttle.succeeded(address);
            s.caller.address = address.to_string();
            Ok(s)
        }
        Err(accounts::LoginError::Refused) => {
            ctx.login_throttle.failed(address, now);
            let actor: String = name.trim().chars().take(64).collect();
            let entry = crate::audit::Access {
                actor,
                token: None,
                operation: "console:login refused".into(),
                notice_id: String::new(),
                subject: String::new(),
                address: address.to_string(),
            };
            ctx.store.append_audit(&[entry], now).await?;
            Err(LoginRefusal::Refused)
        }
        Err(accounts::LoginError::Store(e)) => Err(e.into()),
    }
}

/// Changes the caller's own password (every account may).
pub async fn change_own_password(
    ctx: &NodeCtx,
    caller: &Caller,
    current: &str,
    new: &str,
) -> Result<()> {
    accounts::change_password(&ctx.store, &caller.name, current, new).await?;
    tracing::info!(user = %caller.name, "console password changed");
    Ok(())
}

/// The holiday schedule in force, as administrators watch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// The last year of the unbroken run of covered years.
    pub last_covered: i32,
    /// The year whose schedule the node should have by now and does not
    /// (this year, or from 1 November next year).
    pub missing: Option<i32>,
}

pub fn schedule(ctx: &NodeCtx, caller: &Caller) -> Result<ScheduleStatus> {
    caller.require_admin()?;
    Ok(ScheduleStatus {
        last_covered: ctx.deadlines.calendar().last_covered_year(),
        missing: ctx.deadlines.missing_year(ctx.now()),
    })
}
