//! Console accounts: passwords (argon2id), logins with throttling and a
//! temporary lockout, sessions with an idle and an absolute expiry, and the
//! form token (CSRF) of each session. Transport-free: the web console turns
//! these into cookies and pages.

use super::{Caller, Role, hash_token};
use crate::domain::{DomainError, FieldError, Refused, required_text};
use crate::store::{Store, StoreError};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::minutes(30);
/// A session ends this long after the login, used or not.
pub const ABSOLUTE: Duration = Duration::hours(12);
/// Failed logins in a row that lock an account.
pub const MAX_FAILURES: i64 = 5;
/// The first lock's length; each failure after it doubles the next (1, 2,
/// 4, 8 minutes), then 15 times this at most (`Store::claim_login`).
pub const LOCKOUT: Duration = Duration::minutes(1);
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Refused(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldError> for AccountError {
    fn from(e: FieldError) -> Self {
        AccountError::Refused(e.into())
    }
}

/// Why a login did not open a session. It says as little as possible: an
/// unknown name, a wrong password and a locked account look the same.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name or password, or the account is locked for now")]
    Refused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A session just opened: the cookie's value (shown once, stored hashed)
/// and its form token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub caller: Caller,
}

/// A session in use: who it is, and the form token its forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
    /// An administrator reset the password: it must be changed first.
    pub must_change_password: bool,
}

fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2id with default parameters hashes any password")
        .to_string()
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn check_password(field: &str, password: &str) -> Result<(), FieldError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(FieldError::new(
            field,
            format!("must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if password.chars().count() > 200 {
        return Err(FieldError::new(field, "must be at most 200 characters"));
    }
    if let Some(why) = weak(password) {
        return Err(FieldError::new(field, why));
    }
    Ok(())
}

/// Passwords guessed first, whatever their length (lower case).
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "0987654321",
    "1111111111",
    "qwertyuiop",
    "1qaz2wsx3edc",
    "1q2w3e4r5t",
    "qwerty1234",
    "qwer123456",
    "password12",
    "password123",
    "password1!",
    "passw0rd123",
    "abc1234567",
    "abcd123456",
    "a123456789",
    "123456789a",
    "aa12345678",
    "admin12345",
    "admin123456",
    "administrator",
    "woaini1314",
    "iloveyou12",
    "5201314520",
    "1314520520",
    "zxcvbnm123",
    "asdfghjkl1",
    "qazwsxedc123",
    "changeme123",
    "welcome123",
    "migrex12345",
    "p@ssw0rd123",
];

/// Why a password is too easy to guess: one character repeated, a run
/// (1234…, abcd…, in either direction), or one of the most common.
fn weak(password: &str) -> Option<&'static str> {
    let lower = password.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    if chars.windows(2).all(|w| w[0] == w[1]) {
        return Some("must not be one character repeated");
    }
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])))
        .collect();
    if steps.iter().all(|d| *d == 1) || steps.iter().all(|d| *d == -1) {
        return Some("must not be a run of characters (1234…, abcd…)");
    }
    if COMMON.contains(&lower.as_str()) {
        return Some("is one of the most common passwords; choose another");
    }
    None
}

/// An account name: letters, digits, `.`, `_`, `-` and CJK characters —
/// it signs receipts and feedback that travel to peers, so nothing else.
fn check_name(name: &str) -> Result<String, FieldError> {
    let name = required_text("name", name, 100)?;
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '.' | '_' | '-')
            || ('\u{4e00}'..='\u{9fff}').contains(&c)
            || ('\u{3400}'..='\u{4dbf}').contains(&c)
    };
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(FieldError::new(
            "name",
            format!(
                "must hold only letters, digits, '.', '_', '-' and Chinese characters (not {})",
                crate::domain::quoted(&c.to_string())
            ),
        ));
    }
    Ok(name)
}

/// What an administrator does to an account.
#[derive(Debug, Clone)]
pub enum AccountChange {
    /// It cannot log in and its sessions end, until enabled.
    Disable,
    Enable,
    /// Gone, with its sessions (what it signed stays signed).
    Delete,
    SetRole(Role),
    /// Lifts a lock from failed logins.
    Unlock,
    /// A new password, which its holder must change at the next login.
    ResetPassword(String),
}

/// Changes the account `name`; its sessions end at once (but for `Unlock`).
pub async fn change_account(
    store: &Store,
    name: &str,
    change: AccountChange,
) -> Result<(), AccountError> {
    use crate::store::UserChange;
    let change = match change {
        AccountChange::Disable => UserChange::Disable,
        AccountChange::Enable => UserChange::Enable,
        AccountChange::Delete => UserChange::Delete,
        AccountChange::SetRole(role) => UserChange::SetRole(role.as_str().to_string()),
        AccountChange::Unlock => UserChange::Unlock,
        AccountChange::ResetPassword(password) => {
            check_password("password", &password)?;
            UserChange::ResetPassword(hash_password(&password))
        }
    };
    if store.change_user(name.trim(), &change).await? {
        Ok(())
    } else {
        Err(DomainError::new(
            Refused::NotFound,
            "name",
            format!("no account is named {}", crate::domain::quoted(name.trim())),
        )
        .into())
    }
}

/// Creates an account with `role` and `password`.
pub async fn create_user(
    store: &Store,
    name: &str,
    role: Role,
    password: &str,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    let name = check_name(name)?;
    check_password("password", password)?;
    match store
        .insert_user(&name, role.as_str(), &hash_password(password), now)
        .await
    {
        Err(StoreError::Conflict(_)) => Err(DomainError::new(
            Refused::Exists,
            "name",
            format!("an account named '{name}' exists already"),
        )
        .into()),
        other => Ok(other?),
    }
}

/// Checks a name and password at `now` and opens a session. `MAX_FAILURES`
/// failures in a row lock the account for `LOCKOUT`, each failure after a
/// lock for twice as long (up to 15 minutes), until a login succeeds or an
/// administrator unlocks it. Each attempt is
/// claimed before its password is checked (`Store::claim_login`, one
/// statement), so a burst of guesses cannot outrun the count; an unknown
/// name, a wrong password and a locked account cost the same hashing and
/// get the same answer.
pub async fn login(
    store: &Store,
    name: &str,
    password: &str,
    now: OffsetDateTime,
) -> Result<NewSession, LoginError> {
    let dummy = || DUMMY_HASH.get_or_init(|| hash_password("x"));
    let Some(user) = store
        .claim_login(name.trim(), now, MAX_FAILURES, LOCKOUT)
        .await?
    else {
        // Unknown, or locked: the same work as for a real account.
        password_matches(password, dummy());
        tracing::warn!(user = %crate::domain::quoted(name.trim()), "console login refused (unknown or locked)");
        return Err(LoginError::Refused);
    };
    if !password_matches(password, &user.password_hash) {
        // The claim has already locked the account if this was one too many.
        let locked = user.locked_until.is_some();
        tracing::warn!(user = %user.name, locked, "console login refused");
        return Err(LoginError::Refused);
    }
    let role = Role::parse(&user.role).map_err(|_| LoginError::Refused)?;
    store.login_succeeded(&user.name).await?;
    // Sessions nobody can use any more are cleared at each login.
    let cleared = store
        .delete_expired_sessions(now - IDLE, now - ABSOLUTE)
        .await?;
    if cleared > 0 {
        tracing::debug!(cleared, "expired console sessions removed");
    }
    let token = super::new_token();
    let csrf = Uuid::new_v4().simple().to_string();
    store
        .insert_session(&hash_token(&token), &user.name, &csrf, now)
        .await?;
    tracing::info!(user = %user.name, "console login");
    Ok(NewSession {
        token,
        csrf,
        caller: Caller {
            name: user.name,
            role,
            token: None,
            address: String::new(),
        },
    })
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How long a login form waits for its login.
pub const LOGIN_FORM_EXPIRY: Duration = Duration::minutes(30);
/// Login forms one address may hold at once (the oldest goes first).
const LOGIN_FORMS_PER_ADDRESS: i64 = 20;

/// A login form just shown: its pre-session cookie's value (stored hashed)
/// and the form token the page carries.
pub struct LoginForm {
    pub token: String,
    pub csrf: String,
}

/// Opens the pre-session of a login form shown to `address` at `now`.
pub async fn open_login_form(
    store: &Store,
    address: &str,
    now: OffsetDateTime,
) -> Result<LoginForm, StoreError> {
    let form = LoginForm {
        token: super::new_token(),
        csrf: Uuid::new_v4().simple().to_string(),
    };
    store
        .open_login_form(
            &hash_token(&form.token),
            &form.csrf,
            address,
            now,
            now - LOGIN_FORM_EXPIRY,
            LOGIN_FORMS_PER_ADDRESS,
        )
        .await?;
    Ok(form)
}

/// Takes the login form whose cookie is `token`: its form token, when the
/// node showed it within `LOGIN_FORM_EXPIRY` and it was not used yet.
pub async fn take_login_form(
    store: &Store,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<String>, StoreError> {
    if token.is_empty() {
        return Ok(None);
    }
    store
        .take_login_form(&hash_token(token), now - LOGIN_FORM_EXPIRY)
        .await
}

/// The session a cookie's value stands for at `now`, if it is still valid;
/// using it restarts its idle time. An expired session is removed.
pub async fn session(
    store: &Store,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<Session>, StoreError> {
    let hash = hash_token(token);
    let Some(s) = store.find_session(&hash).await? else {
        return Ok(None);
    };
    if now - s.seen_at > IDLE || now - s.created_at > ABSOLUTE {
        store.delete_session(&hash).await?;
        return Ok(None);
    }
    let Ok(role) = Role::parse(&s.role) else {
        return Ok(None);
    };
    store.touch_session(&hash, now).await?;
    Ok(Some(Session {
        caller: Caller {
            name: s.user_name,
            role,
            token: None,
            address: String::new(),
        },
        csrf: s.csrf,
        must_change_password: s.must_change_password,
    }))
}

/// Ends the session of a cookie's value.
pub async fn logout(store: &Store, token: &str) -> Result<(), StoreError> {
    store.delete_session(&hash_token(token)).await
}

/// Changes `name`'s password after checking the current one; every session
/// of the account ends.
pub async fn change_password(
    store: &Store,
    name: &str,
    current: &str,
    new: &str,
) -> Result<(), AccountError> {
    let user = store.find_user(name).await?;
    if !user.is_some_and(|u| password_matches(current, &u.password_hash)) {
        return Err(FieldError::new("current", "is not the current password").into());
    }
    check_password("new", new)?;
    store.set_password(name, &hash_password(new)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_stored_as_argon2id_hashes() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("wrong", &h));
        assert_eq!(
            check_password("password", "short").unwrap_err().field,
            "password"
        );
    }
}
