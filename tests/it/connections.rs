//! Issue 20, item 5: connections one client cannot hog, on a `migrex serve`
//! process. 300 half-sent requests (console, ops) or connections that
//! send nothing after TLS (desk) from 127.0.0.2 hold at most that address's share of a listener,
//! and a request from 127.0.0.1 is answered within 3 s; a request head that
//! trickles in a line every 5 s is closed within 70 s; a node stopped with
//! SIGTERM while a client trickles exits within the 10 s shutdown grace.

use crate::common::*;
use migrex::config::Config;
use migrex::pb;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

const ATTACKER: [u8; 4] = [127, 0, 0, 2];
const CLERK: [u8; 4] = [127, 0, 0, 1];

fn host(url: &str) -> String {
    url.split("://").nth(1).unwrap().to_string()
}

/// Connections opened by `crowd`, held open until dropped.
struct Crowd {
    /// How many the node kept.
    open: usize,
    _tasks: JoinSet<()>,
}

/// A connection the node closes this long after it was made or later was
/// kept, and closed by a deadline of its own (the desk's 10 s handshake
/// deadline, the request-head deadline); one closed sooner was refused.
const KEPT_AFTER: Duration = Duration::from_secs(8);

/// Opens `n` connections to a listener from the attacker's address, each
/// made by `open` (None: refused or closed during a handshake), and waits
/// (at most 90 s) until every attempt has ended and at most `cap` are
/// kept: still open, or closed no sooner than `KEPT_AFTER`. A node that
/// keeps more than `cap` reaches the deadline with more kept; one that
/// refuses some it should keep shows fewer.
async fn crowd<S, F, Fut>(n: usize, cap: usize, open: F) -> Crowd
where
    S: tokio::io::AsyncRead + Unpin + Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<S>> + Send + 'static,
{
    // (attempts ended, connections kept)
    let (count, mut seen) = tokio::sync::watch::channel((0usize, 0usize));
    let count = std::sync::Arc::new(count);
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let fut = open();
        let count = count.clone();
        tasks.spawn(async move {
            let stream = tokio::time::timeout(Duration::from_secs(60), fut)
                .await
                .ok()
                .flatten();
            let Some(mut s) = stream else {
                count.send_modify(|(ended, _)| *ended += 1);
                return;
            };
            let made = Instant::now();
            count.send_modify(|(ended, kept)| {
                *ended += 1;
                *kept += 1
            });
            // Until the node closes it (HTTP/2 servers speak first).
            let mut b = [0u8; 512];
            while let Ok(1..) = s.read(&mut b).await {}
            if made.elapsed() < KEPT_AFTER {
                count.send_modify(|(_, kept)| *kept -= 1);
            }
        });
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(90),
        seen.wait_for(|&(ended, kept)| ended == n && kept <= cap),
    )
    .await;
    let open = seen.borrow().1;
    Crowd {
        open,
        _tasks: tasks,
    }
}

/// A whole HTTPS GET of the console's login page from `from`; its status
/// line.
async fn console_get(ca_pem: &str, console: &str, from: [u8; 4]) -> String {
    let addr = host(console);
    let tcp = connect_from(from, &addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tls_client(ca_pem, &[b"http/1.1"])
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(
        format!("GET /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.ok();
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_slot_of_a_listener() {
    let net = create(&[LUOHU], fast_delivery()).await;
    let config = net.nodes[0].config_path.clone();
    let (c, _) = Config::load(&config).unwrap();
    let per_address = c.limits.max_connections_per_address;
    let ops_per_address = c.limits.ops_max_connections_per_address;
    assert!(per_address < c.limits.max_connections && 300 > c.limits.max_connections);
    let _serve = spawn_serve(&config);
    wait_ready(&net.nodes[0].ops_url).await;
    let console = net.nodes[0].console_url.clone();

    // Console: 300 TLS connections from 127.0.0.2, each with half a request.
    let addr = host(&console);
    let ca = net.ca_pem.clone();
    let held = crowd(300, per_address, || {
        let (addr, ca) = (addr.clone(), ca.clone());
        async move {
            let tcp = connect_from(ATTACKER, &addr).await.ok()?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = tls_client(&ca, &[b"http/1.1"])
                .connect(name, tcp)
                .await
                .ok()?;
            tls.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n")
                .await
                .ok()?;
            Some(tls)
        }
    })
    .await;
    assert_eq!(
        held.open, per_address,
        "the console kept only its per-address share"
    );
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(3), console_get(&ca, &console, CLERK))
        .await
        .expect("the clerk's request is answered within 3 s");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    eprintln!(
        "console answered the clerk in {:?} beside {} half-sent requests",
        started.elapsed(),
        held.open
    );
    drop(held);

    // Desk: 300 TLS connections that never send a request. (Silent TCP
    // connections would be closed by the 10 s handshake deadline, which a
    // loaded machine cannot tell from a refusal; these stay open until the
    // idle timeout, or are refused at once.)
    let addr = host(&net.nodes[0].desk_url);
    let held = crowd(300, per_address, || {
        let (addr, ca) = (addr.clone(), ca.clone());
        async move {
            let tcp = connect_from(ATTACKER, &addr).await.ok()?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            tls_client(&ca, &[b"h2"]).connect(name, tcp).await.ok()
        }
    })
    .await;
    assert_eq!(
        held.open, per_address,
        "the desk kept only its per-address share"
    );
    let answered = tokio::time::timeout(Duration::from_secs(3), async {
        net.desk(0)
            .await
            .unwrap()
            .list_pending(pb::ListPendingRequest::default())
            .await
    })
    .await
    .expect("a desk call is answered within 3 s");
    answered.expect("and served");
    drop(held);

    // Ops: 300 half-sent requests; /readyz still answers.
    let addr = host(&net.nodes[0].ops_url);
    let held = crowd(300, ops_per_address, || {
        let addr = addr.clone();
        async move {
            let mut s = connect_from(ATTACKER, &addr).await.ok()?;
            s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
                .await
                .ok()?;
            Some(s)
        }
    })
    .await;
    assert_eq!(
        held.open, ops_per_address,
        "the ops listener kept only its per-address share"
    );
    let ready = tokio::time::timeout(
        Duration::from_secs(3),
        http_get(&net.nodes[0].ops_url, "/readyz"),
    )
    .await
    .expect("/readyz answers within 3 s");
    assert!(ready.unwrap().starts_with("HTTP/1.1 200"));
}

/// Sends `first`, then a header line every 5 s until the other side closes;
/// how long after the first byte it closed.
async fn trickle<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    first: &[u8],
) -> Duration {
    let started = Instant::now();
    s.write_all(first).await.unwrap();
    let mut b = [0u8; 512];
    for i in 0.. {
        // A read that ends (EOF, an error, or an answer) means closed.
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await;
        if read.is_ok() {
            return started.elapsed();
        }
        if s.write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
            .await
            .is_err()
        {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(130), "never closed");
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_request_head_is_closed_and_cannot_hold_a_stopping_node() {
    let net = create(&[LUOHU], fast_delivery()).await;
    let config = net.nodes[0].config_path.clone();
    let mut serve = spawn_serve(&config);
    wait_ready(&net.nodes[0].ops_url).await;
    let console = net.nodes[0].console_url.clone();
    let ca = net.ca_pem.clone();
    let open_console = || async {
        let tcp = connect_from(CLERK, &host(&console)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        tls_client(&ca, &[b"http/1.1"])
            .connect(name, tcp)
            .await
            .unwrap()
    };

    // Both at once: the console (60 s for a head) and ops (its 10 s).
    let ops = connect_from(CLERK, &host(&net.nodes[0].ops_url))
        .await
        .unwrap();
    let (on_console, on_ops) = tokio::join!(
        trickle(open_console().await, b"GET /login HTTP/1.1\r\n"),
        trickle(ops, b"GET /metrics HTTP/1.1\r\n"),
    );
    eprintln!("trickling heads closed after {on_console:?} (console), {on_ops:?} (ops)");
    assert!(
        on_console < Duration::from_secs(70),
        "console: {on_console:?}"
    );
    assert!(
        on_console >= Duration::from_secs(55),
        "console closed before its 60 s: {on_console:?}"
    );
    assert!(on_ops < Duration::from_secs(15), "ops: {on_ops:?}");

    // SIGTERM while a client trickles: the node exits within the grace.
    // Its first line is written before the signal; it trickles on after.
    let mut s = open_console().await;
    s.write_all(b"GET /login HTTP/1.1\r\n").await.unwrap();
    s.flush().await.unwrap();
    let slow = tokio::spawn(async move { trickle(s, b"").await });
    let pid = serve.id() as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stopping = Instant::now();
    let status = eventually(
        "the node to exit after SIGTERM",
        Duration::from_secs(30),
        || {
            let exited = serve.0.try_wait().unwrap();
            async move { exited }
        },
    )
    .await;
    let took = stopping.elapsed();
    eprintln!("stopped in {took:?} with a trickling client ({status})");
    assert!(took < Duration::from_secs(12), "stopping took {took:?}");
    assert!(status.success(), "{status}");
    slow.abort();
}
