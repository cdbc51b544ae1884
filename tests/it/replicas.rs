//! Several replicas of one node on one PostgreSQL database (issue 4): two
//! `migrex serve` processes with the same district, certificate and
//! database, each with its own listeners. Both accept notices; the one
//! holding the route's lease delivers; killed with SIGKILL in the middle of a
//! backlog, it leaves the route to the other within one lease, and every
//! notice reaches the peer exactly once; brought back, it takes over when
//! the other one is lost in turn. Both replicas receiving the same batch at
//! once store it once. Runs in the PostgreSQL pass of
//! scripts/test: replicas need a database server they can share.

use crate::common::*;
use migrex::clock::SystemClock;
use migrex::config::{Config, Delivery};
use migrex::domain::{Direction, NoticeStatus};
use migrex::pb;
use migrex::store::Store;
use std::sync::Arc;
use std::time::Duration;

const N: u32 = 2000;

async fn submit(desk_url: &str, net: &Net, range: std::ops::Range<u32>) {
    let mut desk = migrex::client::connect(desk_url, &net.ca_pem, &net.nodes[0].admin_token)
        .await
        .unwrap();
    let notices = range
        .map(|i| marriage(SHUANGLIU, woman(i), "2026-10-01"))
        .collect();
    submit_batch(&mut desk, notices).await;
}

/// Waits until the peer holds `total` notices and the origin has every ack.
async fn all_delivered(dest: &Store, origin: &Store, total: i64) {
    eventually(
        "every notice delivered",
        Duration::from_secs(60),
        || async { (dest.count_notices(Direction::Inbound).await.unwrap() == total).then_some(()) },
    )
    .await;
    eventually(
        "the origin to record every ack",
        Duration::from_secs(30),
        || async {
            (origin
                .count_notices_with_status(Direction::Outbound, NoticeStatus::Delivered)
                .await
                .unwrap()
                == total)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_survive_the_loss_of_the_one_delivering() {
    if !matches!(store_choice(), StoreChoice::Postgres { .. }) {
        eprintln!(
            "replicas share a PostgreSQL database: this test runs in scripts/test's PostgreSQL pass"
        );
        return;
    }
    let delivery = Delivery {
        batch_size: 25,
        backoff_initial_ms: 20,
        backoff_max_ms: 200,
        idle_poll_ms: 100,
        lease_secs: 4,
        ..Delivery::default()
    };
    let mut net = create(&[LUOHU, SHUANGLIU], delivery).await;
    // Replica 2: the same config but its own listeners.
    let config1 = net.nodes[0].config_path.clone();
    let (mut c, base) = Config::load(&config1).unwrap();
    let ports: Vec<u16> = (0..3)
        .map(|_| migrex::setup::free_port().unwrap())
        .collect();
    c.listen = format!("127.0.0.1:{}", ports[0]);
    c.desk_listen = format!("127.0.0.1:{}", ports[1]);
    c.ops_listen = format!("127.0.0.1:{}", ports[2]);
    c.console = None;
    let config2 = base.join("migrex-replica2.toml");
    c.save(&config2).unwrap();
    let (ops1, ops2) = (
        net.nodes[0].ops_url.clone(),
        format!("http://127.0.0.1:{}", ports[2]),
    );
    let desk1 = net.nodes[0].desk_url.clone();
    let desk2 = format!("https://127.0.0.1:{}", ports[1]);
    let exchange1 = net.nodes[0]
        .exchange_url
        .trim_start_matches("https://")
        .to_string();

    let mut r1 = spawn_serve(&config1);
    let mut r2 = spawn_serve(&config2);
    wait_ready(&ops1).await;
    wait_ready(&ops2).await;
    let origin = migrex::setup::open_store(&config2).await.unwrap();

    // Either replica accepts notices; the peer is down meanwhile.
    submit(&desk1, &net, 0..N / 2).await;
    submit(&desk2, &net, N / 2..N).await;
    assert_eq!(
        origin.count_notices(Direction::Outbound).await.unwrap(),
        N as i64
    );

    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    let dest = net.store(1);
    eventually(
        "the first batches to arrive",
        Duration::from_secs(30),
        || async { (dest.count_notices(Direction::Inbound).await.unwrap() > 0).then_some(()) },
    )
    .await;
    // Kill whichever replica holds the route.
    let leases = origin.route_leases().await.unwrap();
    let holder = leases
        .iter()
        .find(|l| l.route == SHUANGLIU)
        .map(|l| l.holder.clone())
        .expect("a lease on the route");
    let victim_is_r1 = holder.ends_with(&exchange1);
    let (survivor_desk, victim_desk, victim_config, victim_ops) = if victim_is_r1 {
        (desk2.clone(), desk1.clone(), config1.clone(), ops1.clone())
    } else {
        (desk1.clone(), desk2.clone(), config2.clone(), ops2.clone())
    };
    let victim = if victim_is_r1 { &mut r1 } else { &mut r2 };
    victim.kill().expect("SIGKILL");
    victim.wait().unwrap();
    let at_kill = dest.count_notices(Direction::Inbound).await.unwrap();
    assert!(
        at_kill < N as i64,
        "delivery had finished before the kill ({at_kill}); the test proves nothing"
    );
    eprintln!("killed the delivering replica ({holder}) with {at_kill} of {N} delivered");

    // The survivor takes the route over and keeps accepting notices.
    submit(&survivor_desk, &net, N..N + 100).await;
    let total = (N + 100) as i64;
    all_delivered(&dest, &origin, total).await;
    let new_holder = origin.route_leases().await.unwrap();
    assert!(
        new_holder
            .iter()
            .any(|l| l.route == SHUANGLIU && l.holder != holder),
        "the surviving replica delivers now: {new_holder:?}"
    );
    // Rows on both ends: each notice once at the peer, none left waiting.
    assert_eq!(dest.count_notices(Direction::Inbound).await.unwrap(), total);
    assert_eq!(
        origin.count_notices(Direction::Outbound).await.unwrap(),
        total
    );
    assert!(
        origin
            .outbox_counts()
            .await
            .unwrap()
            .iter()
            .all(|c| c.waiting == 0 && c.refused == 0)
    );

    // The killed replica comes back; the peer delivers the same batch to
    // both replicas at once: stored once, and both answer with the same
    // acknowledgement.
    let mut back = spawn_serve(&victim_config);
    wait_ready(&victim_ops).await;
    let batch: Vec<pb::Notice> = (0..50)
        .map(|i| {
            wire(
                marriage(LUOHU, woman(5000 + i), "2026-10-01"),
                SHUANGLIU,
                &SystemClock,
            )
        })
        .collect();
    let tls = node_tls(&net, 1);
    let exchange2 = format!("https://{}", c.listen);
    let (mut to1, mut to2) = (
        pb::exchange_client::ExchangeClient::new(
            peer_channel(&tls, &net.nodes[0].exchange_url).await,
        ),
        pb::exchange_client::ExchangeClient::new(peer_channel(&tls, &exchange2).await),
    );
    let batch = signed(&net, 1, batch);
    let req = || pb::DeliverNoticesRequest {
        notices: batch.clone(),
        batch: None,
    };
    let (a1, a2) = tokio::join!(to1.deliver_notices(req()), to2.deliver_notices(req()));
    let (a1, a2) = (a1.unwrap().into_inner().acks, a2.unwrap().into_inner().acks);
    assert!(a1.iter().chain(&a2).all(|a| a.error.is_none()));
    let unsigned = |a: Vec<pb::NoticeAck>| -> Vec<pb::NoticeAck> {
        a.into_iter()
            .map(|a| pb::NoticeAck { proof: None, ..a })
            .collect()
    };
    assert_eq!(
        unsigned(a1),
        unsigned(a2),
        "both replicas give the first acknowledgement"
    );
    assert_eq!(origin.count_notices(Direction::Inbound).await.unwrap(), 50);

    // Now the other one is lost: the replica that came back accepts new
    // notices and takes the route over.
    submit(&victim_desk, &net, N + 100..N + 200).await;
    let survivor = if victim_is_r1 { &mut r2 } else { &mut r1 };
    survivor.kill().expect("SIGKILL");
    survivor.wait().unwrap();
    let total = (N + 200) as i64;
    all_delivered(&dest, &origin, total).await;
    drop(back.kill());
    let _ = back.wait();

    origin.close().await;
    for r in [&mut r1, &mut r2] {
        let _ = r.kill();
        let _ = r.wait();
    }
    net.stop_all().await;
}
