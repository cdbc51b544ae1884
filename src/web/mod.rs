//! The staff web console (zh-CN), served by the node over HTTPS: pages
//! rendered on the server from templates that escape what they show, with
//! the stylesheet embedded in the binary (no CDN, no build step). Like the
//! gRPC desk it is an adapter over `service`: it adds no rule of its own.
//!
//! `session` owns logging in and out, the session cookie and the form token
//! (CSRF); `pages` the pages staff work in.

mod notice;
mod pages;
mod session;

use crate::context::NodeCtx;
use crate::service::ServiceError;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

const STYLESHEET: &str = include_str!("static/console.css");

/// The console's routes over the node's context.
fn router(ctx: Arc<NodeCtx>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/pending") }),
        )
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/pending", get(pages::pending))
        .route("/pending/{id}/ack", post(pages::acknowledge))
        .route("/notices/{id}", get(notice::show))
        .route("/notices/{id}/feedback", post(notice::feedback))
        .route("/static/console.css", get(stylesheet))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(ctx)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

/// Every response: no inline script or foreign content, no framing, and no
/// caching of pages (they show personal data).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// A request the console could not serve, as a page staff can read.
pub(crate) struct PageError(StatusCode, String);

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Refused(r) => {
                let status = match r.kind {
                    crate::domain::Refused::NotPermitted => StatusCode::FORBIDDEN,
                    crate::domain::Refused::NotFound => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_REQUEST,
                };
                PageError(status, r.to_string())
            }
            ServiceError::Store(s) => {
                tracing::error!(error = %s, "store failure");
                PageError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "数据库暂时无法访问，请稍后再试 (the store does not answer; try again later)"
                        .into(),
                )
            }
        }
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
        PageError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "页面生成失败 (page failed)".into(),
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = format!(
            "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>出错了</title>\
             <link rel=\"stylesheet\" href=\"/static/console.css\"><main class=\"error\"><h1>出错了</h1><p>{}</p>\
             <p><a href=\"/pending\">返回待办</a></p></main></html>",
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

/// Completed TLS connections as axum's listener.
struct TlsListener {
    incoming: ReceiverStream<std::io::Result<TlsStream<TcpStream>>>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(s)) => {
                    let peer = s.get_ref().0.peer_addr().unwrap_or(self.local);
                    return (s, peer);
                }
                Some(Err(_)) => continue,
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves the console on `listener` with `tls` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<NodeCtx>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let listener = TlsListener {
        incoming: crate::identity::tls_incoming(listener, tls),
        local,
    };
    axum::serve(listener, router(ctx))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| e.to_string())
}
