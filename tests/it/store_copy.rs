//! Moving a district off SQLite (issue 4), as deploy/README.md says: stop
//! the node, `migrex store copy --from <its SQLite file> --to <an empty
//! database>`, point `database` at the copy, start it. The node keeps
//! exchanging with its peer: nothing lost, replies to notices sent before the
//! move come back to the moved store, timeliness figures are the same.
//! The target is PostgreSQL in scripts/test's PostgreSQL pass, another
//! SQLite file in the first pass.

use crate::common::*;
use migrex::clock::SystemClock;
use migrex::config::Config;
use migrex::domain::{Direction, NoticeStatus};
use migrex::pb;
use std::sync::Arc;
use std::time::Duration;

async fn send(net: &Net, from: usize, to: &str, first: u32, n: u32) -> Vec<String> {
    let notices = (first..first + n)
        .map(|i| birth(to, woman(i), "2026-10-01"))
        .collect();
    submit_batch(&mut net.desk(from).await.unwrap(), notices).await
}

/// Shuangliu answers Luohu's notice `id`; waits until Luohu holds the answer.
async fn answer(
    net: &Net,
    shuangliu: &mut migrex::client::Desk,
    id: &str,
    result: pb::FeedbackResult,
) {
    shuangliu
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: id.to_string(),
            feedback: Some(pb::Feedback {
                result: result as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    wait_notice(net, 0, id, |n| n.status == NoticeStatus::Answered as i32).await;
}

async fn timeliness(net: &Net, i: usize) -> Vec<pb::TimelinessRow> {
    net.stats(i)
        .await
        .unwrap()
        .get_timeliness(pb::GetTimelinessRequest {
            period: "2026".into(),
            direction: Direction::Outbound as i32,
            by_peer: true,
            by_kind: true,
        })
        .await
        .unwrap()
        .into_inner()
        .rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_moves_to_another_store_and_keeps_exchanging() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::create_with(
        dir.path(),
        &[LUOHU, SHUANGLIU],
        fast_delivery(),
        &StoreChoice::Sqlite,
    )
    .await
    .unwrap();
    let mut net = Net { net, dir };
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    net.start_node(1, Arc::new(SystemClock)).await.unwrap();

    // Before the move: notices both ways, one answered, one signed for.
    let sent = send(&net, 0, SHUANGLIU, 0, 30).await;
    let received = send(&net, 1, LUOHU, 100, 10).await;
    wait_notice(&net, 0, &sent[29], |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;
    wait_notice(&net, 1, &received[9], |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;
    let mut shuangliu = net.desk(1).await.unwrap();
    answer(
        &net,
        &mut shuangliu,
        &sent[0],
        pb::FeedbackResult::Confirmed,
    )
    .await;
    net.desk(0)
        .await
        .unwrap()
        .acknowledge_notice(pb::AcknowledgeNoticeRequest {
            id: received[0].clone(),
        })
        .await
        .unwrap();
    let figures_before = timeliness(&net, 0).await;
    let luohu = net.store(0);
    let counts_before = (
        luohu.count_notices(Direction::Outbound).await.unwrap(),
        luohu.count_notices(Direction::Inbound).await.unwrap(),
    );
    net.stop_node(0).await;

    // The move, by the book.
    let config = net.nodes[0].config_path.clone();
    let (mut c, base) = Config::load(&config).unwrap();
    let from = c.database_location(&base);
    let to = store_location(net.dir.path(), "moved").await;
    let out = migrex_cli(&["store", "copy", "--from", &from, "--to", &to, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], true);
    let rows = |table: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("notices"), 40);
    assert!(rows("replies") >= 2 && rows("tokens") >= 1);
    // A second copy into the now full store is refused, naming --to.
    let again = migrex_cli(&["store", "copy", "--from", &from, "--to", &to]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.starts_with("error: --to:") && err.contains("not empty"),
        "{err}"
    );

    c.database = to.clone();
    c.save(&config).unwrap();
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    let moved = net.store(0);
    assert_eq!(
        (
            moved.count_notices(Direction::Outbound).await.unwrap(),
            moved.count_notices(Direction::Inbound).await.unwrap()
        ),
        counts_before
    );
    assert_eq!(
        timeliness(&net, 0).await,
        figures_before,
        "the roll-ups rebuilt by the new store's triggers give the same figures"
    );

    // It keeps exchanging: a reply to a notice sent before the move comes
    // back to the moved store, new notices go out, the admin token still works.
    answer(&net, &mut shuangliu, &sent[1], pb::FeedbackResult::NotFound).await;
    let later = send(&net, 0, SHUANGLIU, 200, 5).await;
    wait_notice(&net, 0, &later[4], |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;
    eventually(
        "the peer to hold every notice",
        Duration::from_secs(10),
        || async {
            (net.store(1)
                .count_notices(Direction::Inbound)
                .await
                .unwrap()
                == 35)
                .then_some(())
        },
    )
    .await;
    net.stop_all().await;
}
