//! SPEC.md section 3, guarantees 1 and 5: a peer down for many retry rounds
//! gets its whole backlog, in order of creation, once it is back; the other
//! peers are not delayed meanwhile; the failure is visible while it lasts.

use crate::common::*;
use migrex::clock::SystemClock;
use migrex::domain::{Direction, NoticeStatus};
use migrex::pb;
use std::sync::Arc;
use std::time::Duration;

fn secs(t: &Option<prost_types::Timestamp>) -> i128 {
    let t = t.expect("instant");
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_back_from_a_long_outage_receives_its_backlog_in_order() {
    let mut net = create(&[LUOHU, SHUANGLIU, WANCHENG], fast_delivery()).await;
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    net.start_node(2, Arc::new(SystemClock)).await.unwrap();
    // Shuangliu (node 1) is down.

    let mut desk = net.desk(0).await.unwrap();
    let mut to_shuangliu = Vec::new();
    let mut to_wancheng = Vec::new();
    for i in 0..250u32 {
        let (dest, list) = if i % 5 == 4 {
            (WANCHENG, &mut to_wancheng)
        } else {
            (SHUANGLIU, &mut to_shuangliu)
        };
        let n = desk
            .submit_notice(pb::SubmitNoticeRequest {
                notice: Some(marriage(dest, woman(i), "2026-10-01")),
            })
            .await
            .unwrap()
            .into_inner();
        list.push(n.id);
    }

    // Wancheng gets everything promptly although Shuangliu is unreachable.
    let wancheng_store = net.store(2);
    eventually("Wancheng's notices", Duration::from_secs(10), || async {
        (wancheng_store
            .count_notices(Direction::Inbound)
            .await
            .unwrap()
            == to_wancheng.len() as i64)
            .then_some(())
    })
    .await;
    for id in &to_wancheng {
        let n = get(&net, 2, id).await.unwrap();
        let lag = secs(&n.received_at) - secs(&n.created_at);
        assert!(
            lag < 5_000_000_000,
            "a notice to a live peer waited {lag} ns"
        );
    }

    // Many retry rounds pass; the failure is visible with its last error.
    let first = to_shuangliu[0].clone();
    let stuck = eventually("ten failed attempts", Duration::from_secs(30), || async {
        get(&net, 0, &first)
            .await
            .filter(|n| n.delivery_attempts >= 10)
    })
    .await;
    assert_eq!(stuck.status, NoticeStatus::Queued as i32);
    assert!(!stuck.last_error.is_empty(), "the last error is shown");

    // Prometheus sees the backlog and the failures while they last.
    let text = http_get(&net.nodes[0].ops_url, "/metrics").await.unwrap();
    let value = |series: &str| metric(&text, series);
    assert_eq!(
        value("migrex_outbox_backlog{peer=\"510116\"}"),
        Some(to_shuangliu.len() as f64)
    );
    assert_eq!(value("migrex_outbox_backlog{peer=\"411302\"}"), Some(0.0));
    assert!(value("migrex_delivery_failures_total{peer=\"510116\"}").unwrap() >= 10.0);
    assert!(value("migrex_outbox_oldest_age_seconds{peer=\"510116\"}").is_some());

    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    let shuangliu_store = net.store(1);
    eventually("the whole backlog", Duration::from_secs(30), || async {
        (shuangliu_store
            .count_notices(Direction::Inbound)
            .await
            .unwrap()
            == to_shuangliu.len() as i64)
            .then_some(())
    })
    .await;
    let mut last = 0;
    for id in &to_shuangliu {
        let n = get(&net, 1, id).await.expect("delivered");
        let received = secs(&n.received_at);
        assert!(
            received >= last,
            "notice {id} was received before an older one"
        );
        last = received;
    }
    let origin = net.store(0);
    eventually(
        "all marked delivered at the origin",
        Duration::from_secs(10),
        || async {
            (origin
                .count_notices_with_status(Direction::Outbound, NoticeStatus::Delivered)
                .await
                .unwrap()
                == 250)
                .then_some(())
        },
    )
    .await;
    let delivered = get(&net, 0, &first).await.unwrap();
    assert!(
        delivered.last_error.is_empty(),
        "a delivered notice has left the outbox"
    );
}

/// Issue 21, item 4: a node that starts says so (`Exchange.Hello`), and a
/// peer holding notices for it sends them at once, not at its next retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_starts_is_sent_to_at_once_not_at_the_next_retry() {
    // Retries at least 20 s apart: far longer than the test allows.
    let delivery = migrex::config::Delivery {
        backoff_initial_ms: 40_000,
        backoff_max_ms: 60_000,
        ..fast_delivery()
    };
    let mut net = create(&[LUOHU, SHUANGLIU], delivery).await;
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    // Shuangliu (node 1) is down; Luohu's first attempt fails.
    let n = submit(&net, 0, birth(SHUANGLIU, woman(7), "2026-10-03")).await;
    eventually("a failed attempt", Duration::from_secs(10), || async {
        get(&net, 0, &n.id)
            .await
            .filter(|n| n.delivery_attempts >= 1 && !n.last_error.is_empty())
    })
    .await;

    // Shuangliu starts and says hello: the notice crosses within seconds,
    // not after the 20 s or more of Luohu's backoff.
    let started = std::time::Instant::now();
    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    eventually(
        "the notice at Shuangliu",
        Duration::from_secs(10),
        || async {
            get(&net, 0, &n.id)
                .await
                .filter(|n| n.status != NoticeStatus::Queued as i32)
        },
    )
    .await;
    let took = started.elapsed();
    eprintln!("delivered {took:?} after the destination started");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(get(&net, 1, &n.id).await.is_some());
}
