//! The staff web console (zh-CN), served by the node over HTTPS: pages
//! rendered on the server from templates that escape what they show, with
//! the stylesheet embedded in the binary (no CDN, no build step). Like the
//! gRPC desk it is an adapter over `service`: it adds no rule of its own.
//!
//! `session` owns logging in and out, the session cookie and the form token
//! (CSRF); `pages` the pages staff work in.

mod accounts;
mod audit;
mod exports;
mod import;
mod notice;
mod pages;
mod register;
mod search;
mod sent;
mod session;
mod stats;

use crate::context::NodeCtx;
use crate::service::ServiceError;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

const STYLESHEET: &str = include_str!("static/console.css");
const SCRIPT: &str = include_str!("static/console.js");

/// The console's routes over the node's context.
fn router(ctx: Arc<NodeCtx>) -> Router {
    Router::new()
        .route("/", get(session::home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/pending", get(pages::pending))
        .route("/pending/ack", post(pages::acknowledge_many))
        .route("/pending/{id}/ack", post(pages::acknowledge))
        .route("/notices/new", get(register::form).post(register::submit))
        .route("/districts", get(register::districts))
        .route("/notices/{id}", get(notice::show))
        .route("/notices/{id}/feedback", post(notice::feedback))
        .route("/notices/{id}/sheet", get(notice::sheet))
        .route("/notices/{id}/evidence", get(notice::evidence))
        .route(
            "/import",
            get(import::form)
                .post(import::upload)
                .layer(axum::extract::DefaultBodyLimit::max(import::MAX_FILE)),
        )
        .route(
            "/import/commit",
            post(import::commit).layer(axum::extract::DefaultBodyLimit::max(2 * import::MAX_FILE)),
        )
        .route("/import/template.csv", get(import::template))
        .route("/import/template.xlsx", get(exports::template))
        .route("/pending.xlsx", get(exports::pending))
        .route("/handled.xlsx", get(exports::handled))
        .route("/sent.xlsx", get(exports::sent))
        .route("/search.xlsx", get(exports::found))
        .route("/stats/overdue.xlsx", get(exports::overdue))
        .route("/sent", get(sent::list))
        .route("/search", get(search::page))
        .route("/handled", get(search::handled))
        .route("/sent/{id}/withdraw", post(sent::withdraw))
        .route("/sent/{id}/remind", post(sent::remind))
        .route("/admin", get(accounts::page))
        .route("/admin/users", post(accounts::add_user))
        .route("/admin/users/change", post(accounts::change_user))
        .route("/admin/tokens", post(accounts::add_token))
        .route("/admin/tokens/revoke", post(accounts::revoke_token))
        .route(
            "/password",
            get(accounts::password_page).post(accounts::change_password),
        )
        .route("/stats", get(stats::page))
        .route("/audit", get(audit::page).post(audit::query))
        .route("/stats/report", get(stats::download))
        .route("/static/console.css", get(stylesheet))
        .route("/static/console.js", get(script))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(ctx)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// Every response: no inline script or foreign content, no framing, and no
/// caching of pages (they show personal data).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    // A page may carry a stricter policy of its own (the printable report).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(
            h,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        );
    }
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    // The console is HTTPS only: browsers are to keep to it for a year.
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// An instant as staff read it: local date and time to the minute, or "".
pub(crate) fn local(tz: &'static time_tz::Tz, t: Option<time::OffsetDateTime>) -> String {
    crate::report::local_minute(tz, t)
}

/// A value for a link's query string (RFC 3986: unreserved bytes as
/// they are, every other byte %XX).
pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Rows on one page of a list.
pub(crate) const PAGE_SIZE: u32 = 50;

/// A notice id from a page's address; an unusable one is a missing notice.
pub(crate) fn parse_id(id: &str) -> Result<uuid::Uuid, PageError> {
    uuid::Uuid::parse_str(id).map_err(|_| PageError(StatusCode::NOT_FOUND, "没有这条通报".into()))
}

/// A request the console could not serve, as a page staff can read.
pub(crate) struct PageError(StatusCode, String);

impl PageError {
    /// A request refused as it stands, saying why in Chinese.
    pub fn bad_request(why: String) -> Self {
        PageError(StatusCode::BAD_REQUEST, why)
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Refused(r) => {
                let status = match r.kind {
                    crate::domain::Refused::NotPermitted => StatusCode::FORBIDDEN,
                    crate::domain::Refused::NotFound => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_REQUEST,
                };
                tracing::info!(field = %r.field, rule = %r.message, "console request refused");
                PageError(status, crate::domain::refusal_zh(&r))
            }
            ServiceError::Store(s) => {
                tracing::error!(error = %s, "store failure");
                PageError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "数据库暂时无法访问，请稍后再试".into(),
                )
            }
        }
    }
}

impl From<crate::domain::DomainError> for PageError {
    fn from(e: crate::domain::DomainError) -> Self {
        ServiceError::Refused(e).into()
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        ServiceError::Store(e).into()
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "template failure");
        PageError(StatusCode::INTERNAL_SERVER_ERROR, "页面生成失败".into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = format!(
            "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>出错了</title>\
             <link rel=\"stylesheet\" href=\"/static/console.css\"><main class=\"error\"><h1>出错了</h1><p>{}</p>\
             <p><a href=\"/\">返回首页</a></p></main></html>",
            html_escape(&self.1)
        );
        (
            self.0,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Serves the console on `listener` with `tls` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<NodeCtx>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    // Handshakes that failed never reach here (the accept loop logs them).
    let incoming = crate::identity::tls_incoming(listener, tls, ctx.limits.listener())
        .filter_map(|c| c.ok())
        .map(|s| {
            let peer = s.get_ref().get_ref().0.peer_addr();
            (s, peer)
        })
        .filter_map(|(s, peer)| peer.ok().map(|p| (s, p)));
    let head = ctx.limits.request_head();
    crate::identity::serve_http1(Box::pin(incoming), router(ctx), head, shutdown).await;
    Ok(())
}
