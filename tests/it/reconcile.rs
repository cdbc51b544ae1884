//! Issue 23, item 3: two districts reconcile a month (对账). A month of
//! 10,000 notices with 3 made to differ by hand is reconciled in a handful
//! of round trips naming exactly those 3 and the facts that differ; one
//! that agrees takes one round trip.

use crate::common::*;
use migrex::pb;

/// `migrex reconcile` run by node `i`'s administrator against `peer`:
/// (exit status, the JSON it printed, stderr).
fn reconcile(
    net: &LocalNetwork,
    i: usize,
    peer: &str,
    period: &str,
) -> (bool, serde_json::Value, String) {
    reconcile_as(net, i, &net.nodes[i].admin_token, peer, period)
}

/// The same with `token`.
fn reconcile_as(
    net: &LocalNetwork,
    i: usize,
    token: &str,
    peer: &str,
    period: &str,
) -> (bool, serde_json::Value, String) {
    let cfg = net.nodes[i].config_path.to_string_lossy().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
        .args([
            "reconcile",
            "--config",
            &cfg,
            "--peer",
            peer,
            "--period",
            period,
            "--json",
        ])
        .env("MIGREX_TOKEN", token)
        .env("MIGREX_LOG", "warn")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_10000_notices_with_3_divergent_is_reconciled_naming_exactly_those() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let mut desk = net.desk(0).await.unwrap();
    let mut ids = Vec::new();
    for chunk in 0..10 {
        let batch: Vec<pb::Notice> = (0..1000)
            .map(|i| birth(SHUANGLIU, woman(chunk * 1000 + i), "2026-10-03"))
            .collect();
        ids.extend(submit_batch(&mut desk, batch).await);
    }
    eventually(
        "all 10,000 notices acknowledged at the origin",
        std::time::Duration::from_secs(120),
        || async {
            let counts = net.store(0).outbox_counts().await.unwrap();
            counts.iter().all(|c| c.waiting == 0).then_some(())
        },
    )
    .await;
    let period = this_month();

    // Agreement first: one round trip.
    let (ok, agreed, err) = reconcile(&net, 0, SHUANGLIU, &period);
    assert!(ok, "{err}");
    assert_eq!(agreed["agreed"], true, "{agreed}");
    assert_eq!(agreed["notices"], 10_000);
    assert_eq!(agreed["round_trips"], 1);

    // Three records changed by hand: a receipt time at the origin, a
    // deadline and an answer at the destination.
    let (a, b, c) = (&ids[10], &ids[5000], &ids[9999]);
    tamper(
        &net,
        0,
        &format!("UPDATE notices SET received_at = received_at - 1000000 WHERE id = '{a}'"),
    )
    .await;
    tamper(
        &net,
        1,
        &format!("UPDATE notices SET due_at = due_at + 86400000000 WHERE id = '{b}'"),
    )
    .await;
    tamper(
        &net,
        1,
        &format!("UPDATE notices SET answered_at = received_at, acknowledged_at = received_at WHERE id = '{c}'"),
    )
    .await;
    let (ok, found, err) = reconcile(&net, 0, SHUANGLIU, &period);
    assert!(!ok);
    assert!(
        err.starts_with(&format!(
            "error: peer {SHUANGLIU}: 3 notice(s) of {period} differ"
        )),
        "{err}"
    );
    let mut named: Vec<(String, Vec<String>)> = found["divergent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["notice_id"].as_str().unwrap().to_string(),
                d["facts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    named.sort();
    let mut expected = vec![
        (a.clone(), vec!["received_at".to_string()]),
        (b.clone(), vec!["due_at".to_string()]),
        (
            c.clone(),
            vec!["acknowledged_at".to_string(), "answered_at".to_string()],
        ),
    ];
    expected.sort();
    assert_eq!(named, expected);
    let trips = found["round_trips"].as_u64().unwrap();
    assert!(trips <= 6, "{trips} round trips");
    eprintln!("10,000 notices, 3 divergent: {trips} round trips");

    // The peer sees the same from its side, and /metrics says so.
    let (ok, theirs, _) = reconcile(&net, 1, LUOHU, &period);
    assert!(!ok);
    assert_eq!(theirs["divergent"].as_array().unwrap().len(), 3);
    let text = http_get(&net.nodes[1].ops_url, "/metrics").await.unwrap();
    assert!(
        text.contains(&format!(
            "migrex_reconcile_divergent_notices{{peer=\"{LUOHU}\"}} 3"
        )),
        "{}",
        text.lines()
            .filter(|l| l.contains("reconcile"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A clerk may not ask; a period that is not one month is named.
    let clerk = migrex::setup::create_token(&net.store(0), "li.na", migrex::auth::Role::Clerk)
        .await
        .unwrap();
    let (ok, _, err) = reconcile_as(&net, 0, &clerk, SHUANGLIU, &period);
    assert!(!ok);
    assert!(err.contains("role"));
    let (ok, _, err) = reconcile(&net, 0, SHUANGLIU, "2026-Q3");
    assert!(!ok && err.contains("period"), "{err}");
}

/// Issue 23, item 3: a reply one side lacks is sent again by its author
/// when the two reconcile, and then both agree; the last agreement per peer
/// is kept and shown in the monthly report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feedback_the_origin_lost_is_sent_again_and_the_report_says_when_both_agreed() {
    use migrex::domain::{FeedbackResult, NoticeStatus};
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let n = submit(&net, 0, birth(SHUANGLIU, woman(40 + i), "2026-10-03")).await;
        wait_notice(&net, 0, &n.id, |x| x.received_at.is_some()).await;
        ids.push(n.id);
    }
    let answered = ids[1].clone();
    let mut desk = net.desk(1).await.unwrap();
    desk.acknowledge_notice(pb::AcknowledgeNoticeRequest {
        id: answered.clone(),
    })
    .await
    .unwrap();
    desk.submit_feedback(pb::SubmitFeedbackRequest {
        id: answered.clone(),
        feedback: Some(pb::Feedback {
            result: FeedbackResult::Confirmed as i32,
            remarks: "已入户核实".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    wait_notice(&net, 0, &answered, |x| {
        x.status == NoticeStatus::Answered as i32
    })
    .await;
    let period = this_month();

    // The origin loses the feedback: its row and what it set, by hand.
    tamper(
        &net,
        0,
        &format!("DELETE FROM replies WHERE notice_id = '{answered}' AND sort = 2"),
    )
    .await;
    tamper(
        &net,
        0,
        &format!(
            "UPDATE notices SET answered_at = NULL, feedback = NULL, status = {} WHERE id = '{answered}'",
            NoticeStatus::Acknowledged as i32
        ),
    )
    .await;

    // The destination, its author, reconciles: the notice is named with
    // the facts, and its feedback is sent again.
    let (ok, found, err) = reconcile(&net, 1, LUOHU, &period);
    assert!(!ok, "{found}");
    assert!(err.contains("1 notice(s)"), "{err}");
    let d = &found["divergent"][0];
    assert_eq!(d["notice_id"], answered.as_str(), "{found}");
    assert_eq!(d["facts"], serde_json::json!(["answered_at", "feedback"]));
    assert_eq!(d["resent"].as_array().map(Vec::len), Some(1), "{found}");
    // The origin takes it (idempotent: the same reply, its id kept) and
    // holds the answer again; nothing on the destination moved.
    let back = wait_notice(&net, 0, &answered, |x| {
        x.status == NoticeStatus::Answered as i32
    })
    .await;
    assert_eq!(back.feedback.unwrap().remarks, "已入户核实");
    let (ok, agreed, err) = reconcile(&net, 1, LUOHU, &period);
    assert!(ok, "{err}");
    assert_eq!(agreed["agreed"], true);

    // The last agreement is kept per peer and month; the report says it.
    let kept = net
        .store(1)
        .reconciliations(std::slice::from_ref(&period))
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0].peer.as_str(), kept[0].divergent), (LUOHU, 0));
    assert!(kept[0].agreed_at.is_some_and(|a| a == kept[0].checked_at));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let cfg = net.nodes[1].config_path.to_string_lossy().to_string();
    let run = migrex_cli(&[
        "report",
        "--config",
        &cfg,
        "--token",
        &net.nodes[1].admin_token,
        "--period",
        &period,
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();
    let table = &html[html.find("对账").expect("the 对账 section")..];
    assert!(
        table.contains("440303 罗湖区") && table.contains(">一致<") && table.contains(&period),
        "{table}"
    );
    assert!(!table.contains("从未一致"), "{table}");
}
