//! The accept loop of every listener, with its limits: at most so many
//! connections at once (the next waits in the kernel's backlog), fewer
//! from any one source address and (on the exchange) any one peer
//! certificate, so that one client cannot take every slot (what is over is
//! closed at once); a handshake deadline, and an idle timeout that closes a
//! connection from which nothing arrived for a while (one that finished TLS
//! and never sent a request, a peer that vanished). Accept failures (out of
//! file descriptors) pause instead of spinning.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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
    /// Connections open at once from one source address; more are closed
    /// as soon as they are accepted.
    pub per_address: usize,
    /// Connections open at once under one client certificate (the
    /// exchange's peers); more are closed after the handshake.
    pub per_certificate: Option<usize>,
    /// A connection from which nothing arrives this long is closed.
    pub idle: Duration,
    /// The TLS handshake must finish within this.
    pub handshake: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            per_address: 64,
            per_certificate: None,
            idle: Duration::from_secs(120),
            handshake: Duration::from_secs(10),
        }
    }
}

/// How many connections are open per key (a source address, a peer
/// certificate's digest), with the cap.
struct Tally<K: Hash + Eq> {
    open: Mutex<HashMap<K, usize>>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Tally<K> {
    fn new(cap: usize) -> Arc<Self> {
        Arc::new(Tally {
            open: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        })
    }

    /// One more connection for `key`, or None when it already has `cap`.
    fn take(self: &Arc<Self>, key: K) -> Option<Held<K>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Held {
            tally: self.clone(),
            key,
        })
    }
}

/// One connection counted in a tally until dropped.
struct Held<K: Hash + Eq> {
    tally: Arc<Tally<K>>,
    key: K,
}

impl<K: Hash + Eq> Drop for Held<K> {
    fn drop(&mut self) {
        let mut open = self.tally.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What a connection holds of its listener's limits, given back on drop.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _address: Held<IpAddr>,
    _certificate: Option<Held<[u8; 32]>>,
}

/// A connection under its listener's limits: holds one of the listener's
/// connection slots until dropped, and fails with `TimedOut` once nothing
/// was read from it for the idle time.
pub struct Guarded<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    _slot: Slot,
}

impl<S> Guarded<S> {
    fn new(inner: S, idle: Duration, slot: Slot) -> Self {
        Guarded {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            _slot: slot,
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

/// A listener's accept loop state: its permits, the per-address tally,
/// accept failures in a row and a throttled log of what was turned away.
struct Gate {
    permits: Arc<Semaphore>,
    addresses: Arc<Tally<IpAddr>>,
    failing: AcceptFailures,
    turned_away: Arc<Mutex<Throttle>>,
}

impl Gate {
    fn new(limits: &Limits) -> Self {
        Gate {
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            addresses: Tally::new(limits.per_address.min(limits.max_connections)),
            failing: AcceptFailures::default(),
            turned_away: Arc::new(Mutex::new(Throttle::default())),
        }
    }
}

/// Notes a connection closed for a limit; logged at most once per 10 s.
fn turned_away(log: &Mutex<Throttle>, addr: &SocketAddr, why: &str) {
    let due = log.lock().unwrap_or_else(|e| e.into_inner()).note();
    if let Some(connections) = due {
        tracing::warn!(peer = %addr, limit = why, connections, "connection closed: over a per-client limit");
    }
}

/// Accepts one connection when the listener's permits and the source
/// address's cap allow (a connection over its address's cap is closed at
/// once), pausing after a failed accept.
async fn accept(
    listener: &TcpListener,
    gate: &mut Gate,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit, Held<IpAddr>) {
    loop {
        let permit = gate
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        match listener.accept().await {
            Ok((tcp, addr)) => {
                gate.failing.in_a_row = 0;
                let Some(held) = gate.addresses.take(addr.ip().to_canonical()) else {
                    turned_away(&gate.turned_away, &addr, "per_address");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                return (tcp, addr, permit, held);
            }
            Err(e) => {
                // Out of file descriptors (or the like): accepting again at
                // once would spin and flood the log.
                drop(permit);
                tokio::time::sleep(gate.failing.failed(&e)).await;
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
    let mut gate = Gate::new(&limits);
    tokio::spawn(async move {
        loop {
            let (tcp, addr, permit, address) = tokio::select! {
                _ = tx.closed() => break,
                c = accept(&listener, &mut gate) => c,
            };
            let slot = Slot {
                _permit: permit,
                _address: address,
                _certificate: None,
            };
            if tx
                .send((Guarded::new(tcp, limits.idle, slot), addr))
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
    let mut gate = Gate::new(&limits);
    let certificates = limits.per_certificate.map(Tally::new);
    let refused = Arc::new(Mutex::new(Throttle::default()));
    tokio::spawn(async move {
        loop {
            let (tcp, addr, permit, address) = tokio::select! {
                _ = tx.closed() => break,
                c = accept(&listener, &mut gate) => c,
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let refused = refused.clone();
            let certificates = certificates.clone();
            let turned = gate.turned_away.clone();
            tokio::spawn(async move {
                let why = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let certificate = match &certificates {
                            None => None,
                            Some(tally) => match tally.take(peer_digest(&stream)) {
                                Some(held) => Some(held),
                                None => {
                                    turned_away(&turned, &addr, "per_certificate");
                                    return;
                                }
                            },
                        };
                        let slot = Slot {
                            _permit: permit,
                            _address: address,
                            _certificate: certificate,
                        };
                        let _ = tx.send(Ok(Guarded::new(stream, limits.idle, slot))).await;
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

/// The SHA-256 of the client's certificate (all zeros when it showed none).
fn peer_digest(stream: &TlsStream<TcpStream>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map_or([0; 32], |c| Sha256::digest(c.as_ref()).into())
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

    #[test]
    fn a_tally_caps_each_key_and_gives_slots_back_on_drop() {
        let tally = Tally::new(2);
        let a = IpAddr::from([127, 0, 0, 2]);
        let b = IpAddr::from([127, 0, 0, 1]);
        let first = tally.take(a).unwrap();
        let _second = tally.take(a).unwrap();
        assert!(tally.take(a).is_none(), "a third from one address is over");
        assert!(tally.take(b).is_some(), "another address is not affected");
        drop(first);
        assert!(
            tally.take(a).is_some(),
            "a closed connection frees its slot"
        );
        drop(_second);
        assert!(
            tally.open.lock().unwrap().is_empty(),
            "nothing kept for gone keys"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_fails_after_the_idle_time_and_traffic_keeps_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let slot = Slot {
            _permit: Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap(),
            _address: Tally::new(1).take(IpAddr::from([127, 0, 0, 1])).unwrap(),
            _certificate: None,
        };
        let (mut a, b) = tokio::io::duplex(64);
        let mut g = Guarded::new(b, Duration::from_secs(120), slot);
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
