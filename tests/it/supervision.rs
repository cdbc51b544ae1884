//! A node never runs half alive: a listener or worker that stops takes the
//! node down with an error (so `migrex serve` exits non-zero and systemd
//! restarts it); and a restart keeps each waiting item's retry time.

use crate::common::*;
use migrex::clock::SystemClock;
use migrex::config::Delivery;
use migrex::domain::ts_from_pb;
use migrex::node::NodeError;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_stops_stops_the_node_with_an_error() {
    let mut net = network(&[LUOHU, SHUANGLIU], None).await;
    let node = net.nodes[0].running.take().unwrap();
    assert!(node.task_names().contains(&"exchange listener".to_string()));
    let ctx = node.ctx.clone();
    node.abort_task("exchange listener");
    let end = tokio::time::timeout(Duration::from_secs(30), node.run_until_stopped())
        .await
        .expect("the node stops by itself");
    match end {
        Err(NodeError::TaskFailed { task, .. }) => assert_eq!(task, "exchange listener"),
        other => panic!("expected the failed task, got {other:?}"),
    }
    assert!(!ctx.is_whole(), "not ready once a part failed");
    // Its other listeners are closed too.
    assert!(http_get(&net.nodes[0].ops_url, "/healthz").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_each_items_retry_time() {
    // A failed attempt schedules the next one 2 to 4 seconds later.
    let delivery = Delivery {
        backoff_initial_ms: 4000,
        backoff_max_ms: 4000,
        idle_poll_ms: 200,
        ..Delivery::default()
    };
    let mut net = create(&[LUOHU, SHUANGLIU], delivery).await;
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    let n = submit(&net, 0, birth(SHUANGLIU, woman(1), "2026-10-03")).await;
    // The destination is down: the first attempt fails.
    wait_notice(&net, 0, &n.id, |x| x.delivery_attempts >= 1).await;
    let store = net.store(0);
    let route = SHUANGLIU;
    let item = store.outbox_batch(route, 0, 10).await.unwrap().remove(0);
    assert_eq!(item.attempts, 1);
    net.stop_node(0).await;

    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    let delivered = wait_notice(&net, 0, &n.id, |x| x.received_at.is_some()).await;
    let received_at = ts_from_pb("received_at", delivered.received_at.as_ref()).unwrap();
    assert!(
        received_at >= item.next_attempt_at,
        "delivered at {received_at}, before its retry time {}",
        item.next_attempt_at
    );
}
