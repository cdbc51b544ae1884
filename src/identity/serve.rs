//! Serving HTTP/1.1 (the console and the ops listener) on connections the
//! accept loop let in: each request's head (request line and headers) must
//! arrive whole within a deadline that starts when the connection waits for
//! it and is not reset by each byte that trickles in; a stopping server
//! lets its clients finish for at most `SHUTDOWN_GRACE`, then closes them.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tower::Service;

/// How long a stopping node waits for its clients before it closes them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on every connection `incoming` yields until `shutdown`;
/// handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve_http1<Io, In>(
    mut incoming: In,
    router: Router,
    head: Duration,
    shutdown: CancellationToken,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    In: Stream<Item = (Io, SocketAddr)> + Unpin,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let (io, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            c = incoming.next() => match c {
                Some(c) => c,
                None => break,
            },
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            router.clone().call(req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(head)
            .serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(incoming);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(
            connections = connections.len(),
            "clients still connected after the shutdown grace; closing them"
        );
    }
    connections.shutdown().await;
}
