//! Issue 21, item 1: nodes route by the signed network directory the
//! authority builds with `migrex directory build`, read from a file every
//! second; a node that moves to another port is reached again once the
//! directory says so (its old endpoint listed first, dead: endpoints are
//! tried in turn), without restarting its peers; an older, an expired
//! and a foreign-signed document are refused and the one in use kept.

use crate::common::*;
use migrex::clock::{ManualClock, SystemClock};
use migrex::domain::NoticeStatus;
use std::sync::Arc;
use std::time::Duration;

fn serial_on(text: &str) -> Option<f64> {
    metric(text, "migrex_directory_serial")
}

fn refused(text: &str) -> f64 {
    metric(text, "migrex_directory_refreshes_failed_total").unwrap_or(0.0)
}

/// Waits until node `i` has refused the directory its source holds now (a
/// reading counted as failed after this call) and still routes by `serial`.
async fn refused_keeping(net: &Net, i: usize, what: &str, serial: f64) {
    let ops = &net.nodes[i].ops_url;
    let before = refused(&http_get(ops, "/metrics").await.unwrap());
    eventually(what, Duration::from_secs(10), || async {
        let text = http_get(ops, "/metrics").await?;
        (refused(&text) > before && serial_on(&text) == Some(serial)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_route_by_the_signed_directory_and_follow_it_without_a_restart() {
    let mut net = create(&[LUOHU, SHUANGLIU, WANCHENG], fast_delivery()).await;
    let root = net.dir.path().to_path_buf();
    let (plain, signed, ca_dir) = (
        root.join("network.toml"),
        net.directory_path(),
        root.join("ca"),
    );
    let arg = |p: &std::path::Path| p.display().to_string();

    // The authority builds the first directory with the CLI; show prints it.
    std::fs::write(&plain, net.network_toml(1, &[])).unwrap();
    let out = migrex_cli(&[
        "directory",
        "build",
        "--in",
        &arg(&plain),
        "--ca-dir",
        &arg(&ca_dir),
        "--out",
        &arg(&signed),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("serial 1, 3 districts"));
    let out = migrex_cli(&[
        "directory",
        "show",
        &arg(&signed),
        "--ca-cert",
        &arg(&ca_dir.join("ca.crt")),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["serial"], 1);
    assert_eq!(shown["districts"].as_array().unwrap().len(), 3);
    assert_eq!(
        shown["districts"][1]["endpoints"][0],
        net.nodes[1].exchange_url.as_str()
    );
    assert_eq!(
        shown["districts"][1]["fingerprint"].as_str().unwrap().len(),
        64
    );

    // No route by hand: every node routes by the directory alone.
    net.route_by_directory(1).unwrap();
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    net.start_node(0, Arc::new(clock.clone())).await.unwrap();
    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    net.start_node(2, Arc::new(SystemClock)).await.unwrap();
    let first = submit(&net, 0, birth(SHUANGLIU, woman(1), "2026-11-20")).await;
    wait_notice(&net, 0, &first.id, |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;
    let to_wancheng = submit(&net, 1, marriage(WANCHENG, woman(2), "2026-11-01")).await;
    wait_notice(&net, 2, &to_wancheng.id, |_| true).await;
    let metrics = http_get(&net.nodes[0].ops_url, "/metrics").await.unwrap();
    assert_eq!(serial_on(&metrics), Some(1.0));

    // Shuangliu moves to another port; Luohu is not restarted. Until the
    // directory says so, its notices wait; then they go to the new port.
    net.stop_node(1).await;
    let port = migrex::setup::free_port().unwrap();
    let config = net.nodes[1].config_path.clone();
    let (mut c, _) = migrex::config::Config::load(&config).unwrap();
    c.listen = format!("127.0.0.1:{port}");
    c.save(&config).unwrap();
    let old_url = std::mem::replace(
        &mut net.nodes[1].exchange_url,
        format!("https://127.0.0.1:{port}"),
    );
    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    let moved = submit(&net, 0, birth(SHUANGLIU, woman(3), "2026-11-21")).await;
    // The new directory lists the old (dead) endpoint first and the new one
    // second: endpoints are tried in turn.
    let new_url = net.nodes[1].exchange_url.clone();
    let listing = net.network_toml(2, &[]).replace(
        &format!("[\"{new_url}\"]"),
        &format!("[\"{old_url}\", \"{new_url}\"]"),
    );
    assert!(listing.contains(&old_url));
    net.publish_directory(&listing).unwrap();
    let arrived = wait_notice(&net, 0, &moved.id, |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;
    assert_eq!(arrived.status, NoticeStatus::Delivered as i32);
    eventually(
        "serial 2 on Luohu's /metrics",
        Duration::from_secs(10),
        || async {
            let text = http_get(&net.nodes[0].ops_url, "/metrics").await?;
            (serial_on(&text) == Some(2.0)).then_some(())
        },
    )
    .await;

    // An older serial is refused (and counted); the one in use stays.
    net.publish_directory(&net.network_toml(1, &[])).unwrap();
    refused_keeping(&net, 0, "the older directory refused", 2.0).await;

    // Signed by another CA: refused.
    let other_ca = root.join("other-ca");
    migrex::identity::ensure_ca(&other_ca, "not the network CA").unwrap();
    let d =
        migrex::directory::source::build(&plain, time::OffsetDateTime::now_utc(), None).unwrap();
    std::fs::write(&signed, d.sign(&other_ca).unwrap()).unwrap();
    refused_keeping(&net, 0, "the foreign directory refused", 2.0).await;

    // Luohu's clock is 31 days on: a new directory valid for 30 days from
    // today has expired for it and is refused; it keeps routing by serial 2.
    clock.advance(time::Duration::days(31));
    net.publish_directory(&net.network_toml(3, &[])).unwrap();
    refused_keeping(&net, 0, "the expired directory refused", 2.0).await;
    let still = submit(&net, 0, birth(SHUANGLIU, woman(4), "2026-11-22")).await;
    wait_notice(&net, 0, &still.id, |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;

    // A restart routes by the directory kept from before, whatever the
    // sources hold (here: none readable).
    std::fs::remove_file(&signed).unwrap();
    net.stop_node(0).await;
    net.start_node(0, Arc::new(clock.clone())).await.unwrap();
    let after_restart = submit(&net, 0, birth(SHUANGLIU, woman(5), "2026-11-23")).await;
    wait_notice(&net, 0, &after_restart.id, |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;
    let metrics = http_get(&net.nodes[0].ops_url, "/metrics").await.unwrap();
    assert_eq!(serial_on(&metrics), Some(2.0));
    net.stop_all().await;
}

#[test]
fn the_alert_fires_a_week_before_the_directory_expires() {
    // A directory that expires 30 days after 1970-01-01, scraped every hour.
    let description = "Publish a newer one (migrex directory build) where [directory] sources point, or find why this node refuses it: its log says (signature, expiry, serial, unreachable).";
    let tests = format!(
        "  - interval: 1h\n    input_series:\n      - series: 'migrex_directory_expiry_timestamp_seconds{{district=\"440303\"}}'\n        values: '2592000x800'\n    alert_rule_test:\n      - eval_time: 22d\n        alertname: MigrexDirectoryExpiring\n        exp_alerts: []\n      - eval_time: 24d\n        alertname: MigrexDirectoryExpiring\n        exp_alerts:\n          - exp_labels: {{severity: warning, district: \"440303\"}}\n            exp_annotations:\n              summary: \"440303: the network directory expires in 6d 0h 0m 0s\"\n              description: \"{description}\"\n"
    );
    if let Some(r) = promtool_test("1h", &tests) {
        r.unwrap_or_else(|e| panic!("the directory alert rule: {e}"));
    }
}

/// Issue 21, item 4, with the directory: a node that starts with nothing
/// to send (so no delivery worker of its own) still tells the peers it
/// exchanged with that it is back, and they send at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_node_with_nothing_to_send_is_sent_to_at_once() {
    // Retries at least 20 s apart: far longer than the test allows.
    let delivery = migrex::config::Delivery {
        backoff_initial_ms: 40_000,
        backoff_max_ms: 60_000,
        ..fast_delivery()
    };
    let mut net = create(&[LUOHU, SHUANGLIU], delivery).await;
    net.publish_directory(&net.network_toml(1, &[])).unwrap();
    net.route_by_directory(1).unwrap();
    net.start_node(0, Arc::new(SystemClock)).await.unwrap();
    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    // They have exchanged a notice this month.
    let first = submit(&net, 0, birth(SHUANGLIU, woman(6), "2026-10-03")).await;
    wait_notice(&net, 0, &first.id, |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;

    // Shuangliu is down; Luohu's next notice fails once and backs off.
    net.stop_node(1).await;
    let n = submit(&net, 0, birth(SHUANGLIU, woman(7), "2026-10-04")).await;
    eventually("a failed attempt", Duration::from_secs(10), || async {
        get(&net, 0, &n.id)
            .await
            .filter(|n| n.delivery_attempts >= 1 && !n.last_error.is_empty())
    })
    .await;
    let started = std::time::Instant::now();
    net.start_node(1, Arc::new(SystemClock)).await.unwrap();
    wait_notice(&net, 0, &n.id, |n| {
        n.status == NoticeStatus::Delivered as i32
    })
    .await;
    let took = started.elapsed();
    eprintln!("delivered {took:?} after the destination started");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Issue 21, item 5, first part: a notice addressed to a code the
/// directory says was replaced (区划变更) goes to the successor from the
/// change's date, and says so on both sides; before its date the old code
/// is still its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_to_a_replaced_code_goes_to_its_successor_and_says_so() {
    let mut net = create(&[LUOHU, SHUANGLIU], fast_delivery()).await;
    let changes = "\n[[change]]\nold = \"510117\"\nsuccessor = \"510116\"\neffective = \"2026-12-01\"\n\n[[change]]\nold = \"510118\"\nsuccessor = \"510116\"\neffective = \"2027-01-01\"\n";
    net.publish_directory(&(net.network_toml(1, &[]) + changes))
        .unwrap();
    net.route_by_directory(1).unwrap();
    let clock = ManualClock::new(time::macros::datetime!(2026-12-06 10:00 +8));
    net.start_node(0, Arc::new(clock.clone())).await.unwrap();
    net.start_node(1, Arc::new(clock)).await.unwrap();

    // 郫都区 (510117) was merged into 双流区 (510116) on 1 December.
    let n = submit(&net, 0, birth("510117", woman(9), "2026-11-20")).await;
    assert_eq!(
        (n.destination.as_str(), n.addressed_to.as_str()),
        (SHUANGLIU, "510117")
    );
    let there = eventually(
        "the notice at Shuangliu",
        Duration::from_secs(20),
        || async { get(&net, 1, &n.id).await },
    )
    .await;
    assert_eq!(there.addressed_to, "510117", "the destination sees it too");
    let out = migrex_cli(&[
        "notice",
        "show",
        "--config",
        &net.nodes[0].config_path.display().to_string(),
        "--token",
        &net.nodes[0].admin_token,
        &n.id,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("addressed   510117 郫都区: a division code replaced by 510116 双流区"),
        "{text}"
    );

    // 新津区 (510118) is merged only next year: it is its own district
    // still, and no node of it is listed.
    let refused = net
        .desk(0)
        .await
        .unwrap()
        .submit_notice(migrex::pb::SubmitNoticeRequest {
            notice: Some(birth("510118", woman(10), "2026-11-20")),
        })
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("510118"),
        "{}",
        refused.message()
    );
    net.stop_all().await;
}

/// Issue 21, item 5, second part: a notice addressed to a county before it
/// was merged, still waiting when the merger takes effect and its node
/// leaves the directory, goes to the successor, which takes it and answers
/// it; the origin takes the successor's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_sent_to_a_code_before_its_change_is_answered_by_the_successor() {
    let mut net = create(&[LUOHU, SHUANGLIU], fast_delivery()).await;
    let dead = migrex::setup::free_port().unwrap();
    let change =
        "\n[[change]]\nold = \"510117\"\nsuccessor = \"510116\"\neffective = \"2026-12-10\"\n";
    // 郫都区 (510117) has a node (down) until its merger on 10 December.
    let pidu =
        format!("\n[[district]]\ncode = \"510117\"\nendpoints = [\"https://127.0.0.1:{dead}\"]\n");
    net.publish_directory(&(net.network_toml(1, &[]) + &pidu + change))
        .unwrap();
    net.route_by_directory(1).unwrap();
    let clock = ManualClock::new(time::macros::datetime!(2026-12-06 10:00 +8));
    net.start_node(0, Arc::new(clock.clone())).await.unwrap();
    net.start_node(1, Arc::new(clock.clone())).await.unwrap();

    let n = submit(&net, 0, birth("510117", woman(11), "2026-11-20")).await;
    assert_eq!(
        (n.destination.as_str(), n.addressed_to.as_str()),
        ("510117", "")
    );
    eventually("a failed attempt", Duration::from_secs(10), || async {
        get(&net, 0, &n.id)
            .await
            .filter(|n| n.delivery_attempts >= 1)
    })
    .await;

    // The merger takes effect; the directory no longer lists 郫都区.
    clock.set(time::macros::datetime!(2026-12-10 09:00 +8));
    net.publish_directory(&(net.network_toml(2, &[]) + change))
        .unwrap();
    let there = eventually(
        "the notice at Shuangliu",
        Duration::from_secs(20),
        || async { get(&net, 1, &n.id).await },
    )
    .await;
    assert_eq!(there.destination, "510117", "addressed as it was sent");
    net.desk(1)
        .await
        .unwrap()
        .acknowledge_notice(migrex::pb::AcknowledgeNoticeRequest { id: n.id.clone() })
        .await
        .expect("the successor's clerk signs for it");
    wait_notice(&net, 0, &n.id, |n| {
        n.status == NoticeStatus::Acknowledged as i32
    })
    .await;
    net.stop_all().await;
}
