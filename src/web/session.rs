//! Logging in and out of the console: the login form (with its own form
//! token, kept in a short-lived cookie, so that no other site can log a
//! browser in), the session cookie (HttpOnly, Secure, SameSite=Strict), the
//! `Staff` extractor that turns a valid session into a `Caller`, and the
//! form-token check every form of a session passes.

use super::PageError;
use crate::auth::Caller;
use crate::auth::accounts;
use crate::context::NodeCtx;
use crate::service::admin::LoginRefusal;
use askama::Template;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::Arc;

const SESSION_COOKIE: &str = "migrex_session";
const LOGIN_COOKIE: &str = "migrex_login";

/// The value of cookie `name` in a request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` value: HttpOnly, Secure, SameSite=Strict, for the whole
/// console; "" clears it.
fn set_cookie(name: &str, value: &str) -> HeaderValue {
    let mut c = cookie::Cookie::build((name.to_string(), value.to_string()))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(cookie::SameSite::Strict);
    if value.is_empty() {
        c = c.max_age(time::Duration::ZERO);
    }
    HeaderValue::from_str(&c.build().to_string()).expect("cookie values are URL-safe tokens")
}

/// Two form tokens are equal (compared in constant time, `subtle`).
fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A staff member with a valid session, from the request's cookie.
pub(crate) struct Staff {
    pub caller: Caller,
    pub csrf: String,
    token: String,
    /// This node's district, named (shown in every page's header).
    district: String,
    /// What awaits this district (the menu's counts): on pages read by a
    /// role that works notices, None elsewhere.
    counts: Option<crate::store::PendingCounts>,
}

/// What every staff page's header shows: whose console this is, the menu
/// item of the page (marked), the role in Chinese.
pub(crate) struct Head {
    pub district: String,
    pub here: &'static str,
    pub role: &'static str,
    /// 待办 (total) and 超期 (overdue) beside the menu item, when known.
    pub pending: Option<(i64, i64)>,
}

impl Staff {
    /// The header of a page under menu item `here` (`pending`, `sent`,
    /// `new`, `import`, `stats`, `audit`, `admin`, `password`; "" for none).
    pub fn head(&self, here: &'static str) -> Head {
        Head {
            district: self.district.clone(),
            here,
            role: crate::domain::role_zh(self.caller.role.as_str()),
            pending: self.counts.as_ref().map(|c| (c.total, c.overdue)),
        }
    }

    /// Refuses a form that does not carry this session's form token.
    pub fn check_form(&self, given: &str) -> Result<(), PageError> {
        if same_token(&self.csrf, given) {
            Ok(())
        } else {
            tracing::warn!(user = %self.caller.name, "console form without its session's token refused");
            Err(PageError(
                StatusCode::FORBIDDEN,
                "表单已过期或来源不明，请刷新页面后重试".into(),
            ))
        }
    }
}

impl FromRequestParts<Arc<NodeCtx>> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<NodeCtx>) -> Result<Self, Response> {
        // Back to the page after logging in again (the form it held is
        // kept in the browser, console.js).
        let to_login = || {
            let back = back_to(parts.uri.path())
                .map_or_else(|| "/login".to_string(), |p| format!("/login?next={p}"));
            Redirect::to(&back).into_response()
        };
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        let address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default();
        match accounts::session(&ctx.store, &token, ctx.now()).await {
            // A password an administrator reset is changed before anything else.
            Ok(Some(s))
                if s.must_change_password
                    && !matches!(parts.uri.path(), "/password" | "/logout") =>
            {
                Err(Redirect::to("/password").into_response())
            }
            Ok(Some(mut s)) => {
                s.caller.address = address;
                // Pages shown (not form posts) to those who work notices
                // carry the counts in their menu.
                let counts =
                    // 待办 counts afresh and gives its menu the same (`with_counts`).
                    if parts.method == axum::http::Method::GET
                        && parts.uri.path() != "/pending"
                        && s.caller.sees_personal_data()
                    {
                        menu_counts(ctx, &s.caller).await
                    } else {
                        None
                    };
                Ok(Staff {
                    caller: s.caller,
                    csrf: s.csrf,
                    token,
                    district: crate::report::place(ctx.district.as_str()),
                    counts,
                })
            }
            Ok(None) => Err(to_login()),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// How long the menu's counts are reused: they walk every open notice
/// (a district's few hundred cost nothing, a store of a million with a
/// hundred thousand open costs 15 ms), and a menu a few seconds old says
/// the same. 待办 itself counts afresh.
const MENU_COUNTS_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The menu's counts of this node's district, reused for
/// `MENU_COUNTS_FOR` (per district: a process may run several nodes) while
/// the node's clock has not moved on by more than that either (a test's
/// clock jumps).
async fn menu_counts(ctx: &NodeCtx, caller: &Caller) -> Option<crate::store::PendingCounts> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Kept = (
        std::time::Instant,
        time::OffsetDateTime,
        crate::store::PendingCounts,
    );
    static KEPT: Mutex<Option<HashMap<String, Kept>>> = Mutex::new(None);
    let now = ctx.now();
    let key = ctx.district.to_string();
    let fresh = |(at, then, _): &Kept| {
        at.elapsed() < MENU_COUNTS_FOR && (now - *then).unsigned_abs() < MENU_COUNTS_FOR
    };
    if let Some(k) = KEPT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .get(&key)
        .filter(|k| fresh(k))
    {
        return Some(k.2);
    }
    let counts = crate::service::notices::pending_counts(ctx, caller)
        .await
        .ok()?;
    KEPT.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(key, (std::time::Instant::now(), now, counts));
    Some(counts)
}

impl Staff {
    /// 待办's own counts (just read) become the menu's too, so that the
    /// page and its menu say the same and nothing is counted twice.
    pub fn with_counts(mut self, counts: &crate::store::PendingCounts) -> Self {
        self.counts = Some(*counts);
        self
    }
}

/// A staff member who may register notices, checked from the request's
/// head alone: a handler that takes it refuses anyone else before a byte
/// of the body is read (uploads are parsed only for those who may send).
pub(crate) struct Writer(pub Staff);

impl FromRequestParts<Arc<NodeCtx>> for Writer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<NodeCtx>) -> Result<Self, Response> {
        let staff = Staff::from_request_parts(parts, ctx).await?;
        staff
            .caller
            .require_write()
            .map_err(|e| PageError::from(e).into_response())?;
        Ok(Writer(staff))
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    name: String,
    error: Option<String>,
    /// The page to return to after logging in (a checked local path).
    next: String,
}

/// The page a request was on, to return to after logging in again: a
/// local path of letters, digits, `/`, `-` and `_` only (never another
/// site, never a query), with the action of a form taken back to its page
/// (`/notices/ID/feedback` → `/notices/ID`).
pub(crate) fn back_to(path: &str) -> Option<String> {
    let ok = path.len() <= 100
        && path.starts_with('/')
        && !path.starts_with("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'));
    if !ok || path == "/" || path == "/login" || path == "/logout" {
        return None;
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    Some(match parts.as_slice() {
        ["", "notices", id, "feedback"] => format!("/notices/{id}"),
        ["", "pending", _, "ack"] => "/pending".into(),
        ["", "sent", _, "withdraw"] => "/sent".into(),
        ["", "admin", ..] => "/admin".into(),
        _ => path.to_string(),
    })
}

/// The login page with a new form (its pre-session stored, its cookie set).
async fn login_form(
    ctx: &NodeCtx,
    client: std::net::IpAddr,
    status: StatusCode,
    (name, next): (&str, &str),
    error: Option<String>,
) -> Result<Response, PageError> {
    if !ctx.login_throttle.form_allowed(client, ctx.now()) {
        // No pre-session is written for a page asked for this often.
        let page = LoginPage {
            csrf: String::new(),
            name: name.to_string(),
            error: Some("登录页面请求过于频繁，请一分钟后再试".into()),
            next: String::new(),
        };
        return Ok((StatusCode::TOO_MANY_REQUESTS, Html(page.render()?)).into_response());
    }
    let form = accounts::open_login_form(&ctx.store, &client.to_string(), ctx.now()).await?;
    let page = LoginPage {
        csrf: form.csrf,
        name: name.to_string(),
        error,
        next: back_to(next).unwrap_or_default(),
    };
    let mut res = (status, Html(page.render()?)).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &form.token));
    Ok(res)
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: String,
}

pub(crate) async fn login_page(
    State(ctx): State<Arc<NodeCtx>>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<std::net::SocketAddr>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Result<Response, PageError> {
    login_form(&ctx, client.ip(), StatusCode::OK, ("", &q.next), None).await
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    csrf: String,
    /// The page to return to (checked again by `back_to`).
    #[serde(default)]
    next: String,
}

pub(crate) async fn login(
    State(ctx): State<Arc<NodeCtx>>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    // Only a form this node showed, within its time, once.
    let form = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let expected = accounts::take_login_form(&ctx.store, &form, ctx.now()).await?;
    if !expected.is_some_and(|e| same_token(&e, &f.csrf)) {
        return login_form(
            &ctx,
            client.ip(),
            StatusCode::FORBIDDEN,
            (&f.name, &f.next),
            Some("登录表单已过期，请重新登录".into()),
        )
        .await;
    }
    match crate::service::admin::console_login(&ctx, &f.name, &f.password, client.ip()).await {
        Ok(s) => {
            let to = back_to(&f.next).unwrap_or_else(|| "/".into());
            let mut res = Redirect::to(&to).into_response();
            let h = res.headers_mut();
            h.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &s.token));
            h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, ""));
            Ok(res)
        }
        Err(LoginRefusal::Wait(wait)) => login_form(
            &ctx,
            client.ip(),
            StatusCode::TOO_MANY_REQUESTS,
            (&f.name, &f.next),
            Some(format!(
                "本机登录失败次数过多，请 {} 秒后再试",
                wait.whole_seconds().max(1)
            )),
        )
        .await,
        Err(LoginRefusal::Refused) => login_form(
            &ctx,
            client.ip(),
            StatusCode::UNAUTHORIZED,
            (&f.name, &f.next),
            Some(
                "用户名或密码错误；连续失败 5 次将锁定账户 1 分钟，此后每次失败锁定时间加倍，最长 15 分钟，管理员可解锁"
                    .into(),
            ),
        )
        .await,
        Err(LoginRefusal::Store(e)) => Err(e.into()),
    }
}

/// The first page of a session: 待办 for those who answer notices, 统计
/// for monitors (who may not see the people in the lists).
pub(crate) async fn home(staff: Staff) -> Redirect {
    if staff.caller.require_personal_data().is_ok() {
        Redirect::to("/pending")
    } else {
        Redirect::to("/stats")
    }
}

/// A form that carries only its session's token.
#[derive(serde::Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    pub csrf: String,
}

pub(crate) async fn logout(
    State(ctx): State<Arc<NodeCtx>>,
    staff: Staff,
    Form(f): Form<TokenForm>,
) -> Result<Response, PageError> {
    staff.check_form(&f.csrf)?;
    accounts::logout(&ctx.store, &staff.token).await?;
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, ""));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::back_to;

    #[test]
    fn the_page_after_login_is_a_local_path_and_nothing_else() {
        for (asked, back) in [
            ("/notices/01a2-bc/feedback", Some("/notices/01a2-bc")),
            ("/notices/01a2-bc", Some("/notices/01a2-bc")),
            ("/notices/new", Some("/notices/new")),
            ("/pending/01a2/ack", Some("/pending")),
            ("/sent/01a2/withdraw", Some("/sent")),
            ("/admin/users/change", Some("/admin")),
            ("/stats", Some("/stats")),
        ] {
            assert_eq!(back_to(asked).as_deref(), back, "{asked}");
        }
        for bad in [
            "//evil.example/x",
            "https://evil.example/",
            "/\\evil.example",
            "/pending?next=//evil",
            "/a b",
            "/login",
            "/",
            "",
            "pending",
            &"/x".repeat(60),
        ] {
            assert_eq!(back_to(bad), None, "{bad}");
        }
    }
}
