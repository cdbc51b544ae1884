//! Issue 10, item 3: bounded resources. Silent connections are closed after
//! the idle timeout (a TLS connection that never asks anything, a half-sent
//! HTTP request on the ops listener); out of file descriptors, a node idles
//! quietly instead of spinning, and serves again once the crowd is gone.

use crate::common::*;
use migrex::clock::SystemClock;
use migrex::config::Config;
use migrex::pb;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn set_limits(net: &LocalNetwork, i: usize, idle_secs: u64) {
    let path = &net.nodes[i].config_path;
    let (mut c, _) = Config::load(path).unwrap();
    c.limits.idle_timeout_secs = idle_secs;
    c.limits.ops_timeout_secs = idle_secs;
    c.save(path).unwrap();
}

fn addr(url: &str) -> String {
    url.split("://").nth(1).unwrap().to_string()
}

/// Reads until the other side closes; the bytes, or None if it did not
/// close within `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    limit: Duration,
) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|_| got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    let mut net = create(&[LUOHU], fast_delivery()).await;
    set_limits(&net, 0, 2);
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();

    // A TLS connection to the desk that finishes its handshake and then
    // sends nothing at all.
    let connector = tls_client(&net.ca_pem, &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(addr(&net.nodes[0].desk_url))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut tls, Duration::from_secs(20))
            .await
            .is_some(),
        "the node closes a TLS connection that never sent a request"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the idle time"
    );

    // A half-sent request on the ops listener.
    let mut ops = tokio::net::TcpStream::connect(addr(&net.nodes[0].ops_url))
        .await
        .unwrap();
    ops.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut ops, Duration::from_secs(20))
            .await
            .is_some(),
        "the ops listener drops a request that never ends"
    );

    // The node itself serves on.
    net.desk(0)
        .await
        .unwrap()
        .list_pending(pb::ListPendingRequest::default())
        .await
        .expect("a new client is served");
    assert!(
        http_get(&net.nodes[0].ops_url, "/healthz")
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
}

/// User and system CPU time of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_a_node_idles_quietly_and_serves_again() {
    let net = create(&[LUOHU], fast_delivery()).await;
    set_limits(&net, 0, 3);
    let log_path = net.net.dir.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_migrex"));
    cmd.args(["serve", "--config"])
        .arg(&net.nodes[0].config_path)
        .env("MIGREX_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let serve = Serve(cmd.spawn().unwrap());
    wait_ready(&net.nodes[0].ops_url).await;
    let pid = serve.id();

    // 300 connections that never speak: more than the node has descriptors
    // (from ten addresses, each within its per-address share).
    let desk = addr(&net.nodes[0].desk_url);
    let mut crowd = Vec::new();
    for i in 0..300u16 {
        crowd.push(
            connect_from([127, 0, 1, (i % 10) as u8], &desk)
                .await
                .unwrap(),
        );
    }
    let (cpu0, t0) = (cpu_ticks(pid), std::time::Instant::now());
    let log0 = std::fs::metadata(&log_path).unwrap().len();
    // A measurement window, not a wait for an event.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = cpu_ticks(pid) - cpu0;
    let elapsed = t0.elapsed();
    let logged = std::fs::metadata(&log_path).unwrap().len() - log0;
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(
        cpu * 10 < ticks_per_sec * elapsed.as_secs().max(1),
        "under 10% of a core while out of descriptors: {cpu} ticks in {elapsed:?}"
    );
    assert!(
        logged < 16 * 1024,
        "a small log: {logged} bytes in {elapsed:?}"
    );
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.contains("accept failed"),
        "the node did run out of descriptors (else this test proves nothing)"
    );
    drop(crowd);

    // Once they are gone, a new client is served.
    let desk_client = eventually("a new desk client served", Duration::from_secs(60), || {
        let net = &net;
        async move {
            let mut d = net.desk(0).await.ok()?;
            d.list_pending(pb::ListPendingRequest::default()).await.ok()
        }
    })
    .await;
    assert!(desk_client.into_inner().notices.is_empty());
    let total = std::fs::metadata(&log_path).unwrap().len();
    assert!(
        total < 64 * 1024,
        "the whole log stays small: {total} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_mint_metric_labels_with_street_codes_of_its_choosing() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let mut peer = exchange_as(&net, 0, 1).await;
    // Luohu's certificate covers any street code under 440303.
    let notices: Vec<pb::Notice> = (0..40)
        .map(|i| {
            wire(
                birth(SHUANGLIU, woman(i), "2026-10-03"),
                &format!("440303{:03}", i + 1),
                &SystemClock,
            )
        })
        .collect();
    let acks = peer
        .deliver_notices(pb::DeliverNoticesRequest {
            notices: signed(&net, 0, notices),
            batch: None,
        })
        .await
        .unwrap()
        .into_inner()
        .acks;
    assert!(acks.iter().all(|a| a.error.is_none()), "all taken");
    let text = http_get(&net.nodes[1].ops_url, "/metrics").await.unwrap();
    let peers: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split("peer=\"").nth(1)?.split('"').next())
        .collect();
    assert!(peers.contains(LUOHU), "{peers:?}");
    assert!(
        peers.iter().all(|p| p.len() == 6),
        "one label per county, none per street: {peers:?}"
    );
    let received = metric(
        &text,
        "migrex_month_received{direction=\"inbound\",peer=\"440303\"}",
    );
    assert_eq!(
        received,
        Some(40.0),
        "the 40 notices counted under the county"
    );
    // Operators see certificates' expiry coming: issued for 825 days.
    let expiry = metric(
        &text,
        "migrex_certificate_expiry_timestamp_seconds{certificate=\"node\"}",
    )
    .expect("the node certificate's expiry gauge");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(expiry > now + 800.0 * 86_400.0 && expiry < now + 830.0 * 86_400.0);
    assert!(
        metric(
            &text,
            "migrex_certificate_expiry_timestamp_seconds{certificate=\"ca\"}"
        )
        .is_some()
    );
}
