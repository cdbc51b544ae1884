//! The accept loop of every listener, with its limits: at most so many
//! connections at once (the next waits in the kernel's backlog), a
//! handshake deadline, and an idle timeout that closes a connection from
//! which nothing arrived for a while (one that finished TLS and never sent
//! a request, a half-sent HTTP request, a peer that vanished). Accept
//! failures (out of file descriptors) pause instead of spinning.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// A connection from which nothing arrives this long is closed.
    pub idle: Duration,
    /// The TLS handshake must finish within this.
    pub handshake: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            idle: Duration::from_secs(120),
            handshake: Duration::from_secs(10),
        }
    }
}

/// A connection under its listener's limits: holds one of the listener's
/// connection permits until dropped, and fails with `TimedOut` once nothing
/// was read from it for the idle time.
pub struct Guarded<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl<S> Guarded<S> {
    fn new(inner: S, idle: Duration, permit: OwnedSemaphorePermit) -> Self {
        Guarded {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            _permit: permit,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "connection idle past the listener's idle timeout",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let idle = this.idle;
                    this.timer.as_mut().reset(Instant::now() + idle);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(idle_error())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Guarded<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A TLS connection under its listener's limits.
pub type TlsConn = Guarded<TlsStream<TcpStream>>;

/// Accepts one connection when the listener's permits allow, pausing after
/// a failed accept.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    failing: &mut AcceptFailures,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    loop {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        match listener.accept().await {
            Ok((tcp, addr)) => {
                failing.in_a_row = 0;
                let _ = tcp.set_nodelay(true);
                return (tcp, addr, permit);
            }
            Err(e) => {
                // Out of file descriptors (or the like): accepting again at
                // once would spin and flood the log.
                drop(permit);
                tokio::time::sleep(failing.failed(&e)).await;
            }
        }
    }
}

/// Accepts plain TCP connections under `limits` (the ops listener).
pub fn plain_incoming(
    listener: TcpListener,
    limits: Limits,
) -> ReceiverStream<(Guarded<TcpStream>, SocketAddr)> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::spawn(async move {
        let mut failing = AcceptFailures::default();
        loop {
            let (tcp, addr, permit) = tokio::select! {
                _ = tx.closed() => break,
                c = accept(&listener, &permits, &mut failing) => c,
            };
            if tx
                .send((Guarded::new(tcp, limits.idle, permit), addr))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop;
/// yields only connections whose handshake succeeded (a peer with a
/// certificate from another CA never reaches a handler), under `limits`.
/// The stream ends when the server drops it.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    limits: Limits,
) -> ReceiverStream<std::result::Result<TlsConn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refused = Arc::new(std::sync::Mutex::new(Throttle::default()));
    tokio::spawn(async move {
        let mut failing = AcceptFailures::default();
        loop {
            let (tcp, addr, permit) = tokio::select! {
                _ = tx.closed() => break,
                c = accept(&listener, &permits, &mut failing) => c,
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let refused = refused.clone();
            tokio::spawn(async move {
                let why = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(Guarded::new(stream, limits.idle, permit))).await;
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_string(),
                };
                // Strangers choose how often this happens: logged at most
                // once per 10 s, with the count.
                let due = refused.lock().unwrap_or_else(|e| e.into_inner()).note();
                if let Some(handshakes) = due {
                    tracing::info!(peer = %addr, error = %why, handshakes, "TLS handshake refused or timed out");
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A log line kept to the first and then one per 10 s.
#[derive(Default)]
struct Throttle {
    unlogged: u64,
    logged_at: Option<std::time::Instant>,
}

impl Throttle {
    /// Counts one more; Some(how many since the last line) when a line is due.
    fn note(&mut self) -> Option<u64> {
        self.unlogged += 1;
        if self
            .logged_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return None;
        }
        self.logged_at = Some(std::time::Instant::now());
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// Accept failures in a row: how long to pause before the next accept
/// (5 ms doubling to 1 s), and a log line at the first and then at most
/// every 10 seconds, with how many failed meanwhile.
#[derive(Default)]
struct AcceptFailures {
    in_a_row: u32,
    log: Throttle,
}

impl AcceptFailures {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        if let Some(failures) = self.log.note() {
            tracing::warn!(error = %e, failures, "accept failed; pausing before the next");
        }
        Duration::from_millis(5u64 << self.in_a_row.min(9).saturating_sub(1))
            .min(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_to_a_second_and_log_rarely() {
        let mut f = AcceptFailures::default();
        let e = std::io::Error::other("too many open files");
        let pauses: Vec<u128> = (0..10).map(|_| f.failed(&e).as_millis()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(f.log.unlogged, 9, "logged once, the other nine counted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_fails_after_the_idle_time_and_traffic_keeps_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let permit = Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap();
        let (mut a, b) = tokio::io::duplex(64);
        let mut g = Guarded::new(b, Duration::from_secs(120), permit);
        let mut buf = [0u8; 8];
        // Traffic within the idle time keeps the connection.
        tokio::time::advance(Duration::from_secs(100)).await;
        a.write_all(b"x").await.unwrap();
        assert_eq!(g.read(&mut buf).await.unwrap(), 1);
        tokio::time::advance(Duration::from_secs(100)).await;
        a.write_all(b"y").await.unwrap();
        assert_eq!(g.read(&mut buf).await.unwrap(), 1);
        // Then silence: the read fails once 120 s passed since the last byte.
        let started = Instant::now();
        let err = g.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(120));
    }
}
