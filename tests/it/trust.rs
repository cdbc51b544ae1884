//! Issue 10, items 1 and 2: delivery sends only to a node whose certificate
//! speaks for the route's districts, and a revoked certificate is refused on
//! both sides of the exchange without a restart.

use crate::common::*;
use migrex::clock::SystemClock;
use migrex::config::Config;
use migrex::domain::{DistrictCode, NoticeStatus, RoutePrefix};
use migrex::identity::{self, RevokeTarget};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A TLS listener with a genuine network certificate of `district` that
/// records everything that reaches it after the handshake.
struct Recorder {
    url: String,
    connections: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
}

async fn recorder(net: &LocalNetwork, district: &str) -> Recorder {
    let dir = net.dir.join(format!("recorder-{district}"));
    let ca = net.dir.join("ca");
    let d = DistrictCode::parse("d", district).unwrap();
    identity::issue_node_cert(&ca, &d, &[], &dir.join("node.crt"), &dir.join("node.key")).unwrap();
    let tls = identity::TlsMaterial::load(
        &identity::ca_paths(&ca).0,
        &dir.join("node.crt"),
        &dir.join("node.key"),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.desk_server_config().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = Recorder {
        url: format!("https://{}", listener.local_addr().unwrap()),
        connections: Arc::default(),
        handshakes: Arc::default(),
        received: Arc::default(),
    };
    let (connections, handshakes, received) = (
        r.connections.clone(),
        r.handshakes.clone(),
        r.received.clone(),
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, handshakes, received) =
                (acceptor.clone(), handshakes.clone(), received.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    handshakes.fetch_add(1, Ordering::SeqCst);
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        received.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                }
            });
        }
    });
    r
}

fn set_route(net: &LocalNetwork, node: usize, to: &str, endpoint: &str) {
    let path = &net.nodes[node].config_path;
    let (mut c, _) = Config::load(path).unwrap();
    c.upsert_peer(&RoutePrefix::parse("p", to).unwrap(), endpoint);
    c.save(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_pointed_at_another_districts_node_sends_nothing_and_says_why() {
    let mut net = create(&[LUOHU, SHUANGLIU], fast_delivery()).await;
    // Luohu's route for Shuangliu leads to a node of Wancheng (411302): a
    // genuine certificate of the network, for the wrong district.
    let wrong = recorder(&net, WANCHENG).await;
    set_route(&net, 0, SHUANGLIU, &wrong.url);
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    net.start_node(1, Arc::new(SystemClock)).await.unwrap();

    let subject = woman(31);
    let sent = submit(&net, 0, birth(SHUANGLIU, subject.clone(), "2026-10-03")).await;
    let waiting = eventually("the delivery error", Duration::from_secs(20), || async {
        get(&net, 0, &sent.id)
            .await
            .filter(|n| n.delivery_attempts >= 2)
    })
    .await;
    assert_eq!(waiting.status, NoticeStatus::Queued as i32, "still waiting");
    assert!(
        waiting.last_error.contains("district 411302") && waiting.last_error.contains("510116"),
        "the error names both districts: {}",
        waiting.last_error
    );
    assert!(
        wrong.connections.load(Ordering::SeqCst) >= 1,
        "delivery did reach the wrong node"
    );
    assert_eq!(
        wrong.handshakes.load(Ordering::SeqCst),
        0,
        "the handshake never completed"
    );
    assert!(wrong.received.lock().unwrap().is_empty(), "not a byte sent");
    assert!(get(&net, 1, &sent.id).await.is_none());
}

fn fast_crl(net: &LocalNetwork) {
    for n in &net.nodes {
        let (mut c, _) = Config::load(&n.config_path).unwrap();
        c.tls.crl_refresh_secs = 1;
        c.save(&n.config_path).unwrap();
    }
}

/// Waits until node `i` took a newer revocation list than `generation`.
async fn list_taken(net: &LocalNetwork, i: usize, generation: u64) {
    let trust = net.nodes[i].running.as_ref().unwrap().ctx.trust.clone();
    eventually("the new revocation list", Duration::from_secs(20), || {
        let trust = trust.clone();
        async move { (trust.generation() > generation).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_on_both_sides_without_a_restart() {
    let mut net = create(&[LUOHU, SHUANGLIU, WANCHENG], fast_delivery()).await;
    fast_crl(&net);
    for i in 0..3 {
        net.start_node(i, Arc::new(SystemClock)).await.unwrap();
    }
    // Before: Luohu and Shuangliu exchange, over connections that stay open.
    let before = submit(&net, 0, birth(SHUANGLIU, woman(41), "2026-10-03")).await;
    wait_notice(&net, 0, &before.id, |n| n.received_at.is_some()).await;
    let back = submit(&net, 1, birth(LUOHU, woman(42), "2026-10-04")).await;
    wait_notice(&net, 1, &back.id, |n| n.received_at.is_some()).await;

    let generations: Vec<u64> = (0..3)
        .map(|i| {
            net.nodes[i]
                .running
                .as_ref()
                .unwrap()
                .ctx
                .trust
                .generation()
        })
        .collect();
    let d = DistrictCode::parse("d", SHUANGLIU).unwrap();
    let revoked = identity::revoke(
        &net.net.dir.join("ca"),
        &RevokeTarget::District(d),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(revoked.len(), 1);
    for (i, g) in generations.iter().enumerate() {
        list_taken(&net, i, *g).await;
    }

    // Luohu as the client: it no longer sends to Shuangliu's node.
    let out = submit(&net, 0, birth(SHUANGLIU, woman(43), "2026-10-05")).await;
    // Luohu as the server: it no longer takes from Shuangliu's node, on
    // the connection Shuangliu already had open or on a new one.
    let inn = submit(&net, 1, birth(LUOHU, woman(44), "2026-10-06")).await;
    let out_waiting = eventually(
        "Luohu's refusal to send",
        Duration::from_secs(20),
        || async {
            get(&net, 0, &out.id)
                .await
                .filter(|n| n.delivery_attempts >= 2)
        },
    )
    .await;
    assert!(
        out_waiting.last_error.to_lowercase().contains("revoked"),
        "{}",
        out_waiting.last_error
    );
    let in_waiting = eventually(
        "Luohu's refusal to take",
        Duration::from_secs(20),
        || async {
            get(&net, 1, &inn.id)
                .await
                .filter(|n| n.delivery_attempts >= 2)
        },
    )
    .await;
    assert_eq!(in_waiting.status, NoticeStatus::Queued as i32);
    assert!(
        get(&net, 1, &out.id).await.is_none(),
        "nothing reached Shuangliu"
    );
    assert!(
        get(&net, 0, &inn.id).await.is_none(),
        "Luohu stored nothing"
    );

    // A direct call with Shuangliu's certificate is refused at the handshake.
    let direct = tonic::transport::Endpoint::from_shared(net.nodes[0].exchange_url.clone())
        .unwrap()
        .tls_config(node_tls(&net, 1).peer_client_config())
        .unwrap()
        .connect()
        .await;
    let refused = match direct {
        Err(_) => true,
        Ok(ch) => migrex::pb::exchange_client::ExchangeClient::new(ch)
            .deliver_notices(migrex::pb::DeliverNoticesRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a revoked certificate gets no answer");

    // The others still speak: the list revoked one certificate, not the CA.
    let fine = submit(&net, 0, birth(WANCHENG, woman(45), "2026-10-07")).await;
    wait_notice(&net, 0, &fine.id, |n| n.received_at.is_some()).await;
}
