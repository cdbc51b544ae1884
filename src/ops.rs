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
            &ctx.routes.all(),
            (month, now),
            &ctx.tls.expiries().unwrap_or_default(),
            ctx.deadlines.calendar().last_covered_year(),
            ctx.routes.directory().as_deref(),
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
    // The whole request within the ops timeout, however slowly it comes.
    let incoming = crate::identity::plain_incoming(listener, ctx_limits);
    crate::identity::serve_http1(incoming, app, ctx_limits.idle, shutdown).await;
    Ok(())
}
