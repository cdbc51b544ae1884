//! SPEC.md section 3, guarantees 1 and 2, with a real `kill -9`: an origin
//! node killed in the middle of delivering its backlog, then restarted, ends
//! with every notice delivered exactly once, and each with the
//! acknowledgement the destination gave first.

use crate::common::*;
use migrex::clock::SystemClock;
use migrex::domain::{Direction, NoticeStatus};
use migrex::pb;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const N: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_killed_mid_delivery_delivers_every_notice_exactly_once() {
    let mut net = create(&[LUOHU, SHUANGLIU], small_batches()).await;
    let origin_config = net.nodes[0].config_path.clone();
    let origin_ops = net.nodes[0].ops_url.clone();

    let mut origin = spawn_serve(&origin_config);
    wait_ready(&origin_ops).await;
    // The destination is down while the backlog is registered.
    let notices: Vec<pb::Notice> = (0..N as u32)
        .map(|i| marriage(SHUANGLIU, woman(i), "2026-10-01"))
        .collect();
    submit_batch(&mut net.desk(0).await.unwrap(), notices).await;

    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    let dest = net.store(1);
    let before_kill = eventually(
        "the first batches to arrive",
        Duration::from_secs(30),
        || async {
            let n = dest.count_notices(Direction::Inbound).await.unwrap();
            (n > 0).then_some(n)
        },
    )
    .await;
    origin.kill().expect("SIGKILL");
    origin.wait().unwrap();
    let at_kill = dest.count_notices(Direction::Inbound).await.unwrap();
    assert!(
        at_kill < N as i64,
        "the kill came after delivery had finished ({at_kill}); the test proves nothing"
    );
    eprintln!("killed the origin with {before_kill}..{at_kill} of {N} notices delivered");

    let mut origin = spawn_serve(&origin_config);
    wait_ready(&origin_ops).await;
    eventually(
        "every notice delivered",
        Duration::from_secs(60),
        || async {
            (dest.count_notices(Direction::Inbound).await.unwrap() == N as i64).then_some(())
        },
    )
    .await;
    let mut origin_desk = net.desk(0).await.unwrap();
    let sent = eventually(
        "the origin to record every ack",
        Duration::from_secs(30),
        || {
            let mut d = origin_desk.clone();
            async move {
                let sent = list_all(&mut d, Direction::Outbound as i32, 1000).await;
                sent.iter()
                    .all(|n| n.status == NoticeStatus::Delivered as i32)
                    .then_some(sent)
            }
        },
    )
    .await;
    let received: HashMap<String, pb::Notice> = list_all(
        &mut net.desk(1).await.unwrap(),
        Direction::Inbound as i32,
        1000,
    )
    .await
    .into_iter()
    .map(|n| (n.id.clone(), n))
    .collect();
    assert_eq!(sent.len(), N);
    assert_eq!(
        received.len(),
        N,
        "each notice stored once at the destination"
    );
    for n in &sent {
        let r = &received[&n.id];
        assert_eq!(
            (n.received_at, n.due_at),
            (r.received_at, r.due_at),
            "the origin holds the destination's first acknowledgement"
        );
    }
    let _ = origin_desk
        .list_notices(pb::ListNoticesRequest::default())
        .await
        .unwrap();

    // SIGTERM: the node finishes in-flight work and exits cleanly.
    let pid = origin.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = origin.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    net.stop_all().await;
}
