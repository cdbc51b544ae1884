//! The ops listener (plain HTTP, internal network): `/healthz` answers while
//! the process runs, `/readyz` once the store answers too, `/metrics` for
//! Prometheus (see `metrics`).

use crate::node::NodeCtx;
use axum::{Router, extract::State, http::StatusCode, routing::get};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ctx): State<Arc<NodeCtx>>) -> (StatusCode, &'static str) {
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
    match ctx.metrics.render(&ctx).await {
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

pub async fn serve(listener: TcpListener, ctx: Arc<NodeCtx>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ctx);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "ops listener failed");
    }
}
