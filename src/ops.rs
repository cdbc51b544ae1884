//! The ops listener (plain HTTP, internal network): `/healthz` answers while
//! the process runs, `/readyz` once the store answers too, `/metrics` for
//! Prometheus (see `metrics`).

use crate::context::NodeCtx;
use crate::stats::Period;
use axum::{Router, extract::State, http::StatusCode, routing::get};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ctx): State<Arc<NodeCtx>>) -> (StatusCode, &'static str) {
    if !ctx.is_whole() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping: a part of the node failed\n",
        );
    }
    match ctx.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}

async fn metrics(State(ctx): State<Arc<NodeCtx>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = ctx.now();
    let month = Period::month_of(ctx.deadlines.local_date(now));
    match ctx
        .metrics
        .render(
            &ctx.store,
            &ctx.routes,
            (month, now),
            &ctx.tls.expiries().unwrap_or_default(),
            ctx.deadlines.calendar().last_covered_year(),
        )
        .await
    {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// Serves until `shutdown`; an error if the listener fails.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<NodeCtx>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    // A request must arrive whole, and a kept-alive connection speak,
    // within the ops timeout; connections beyond the limit wait.
    let ctx_limits = ctx.limits.ops();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ctx);
    let listener = PlainListener {
        local: listener.local_addr().map_err(|e| e.to_string())?,
        incoming: crate::identity::plain_incoming(listener, ctx_limits),
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| e.to_string())
}

/// Accepted connections under the ops limits, as axum's listener.
struct PlainListener {
    incoming: tokio_stream::wrappers::ReceiverStream<(
        crate::identity::Guarded<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::net::SocketAddr,
}

impl axum::serve::Listener for PlainListener {
    type Io = crate::identity::Guarded<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use tokio_stream::StreamExt;
        match self.incoming.next().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
