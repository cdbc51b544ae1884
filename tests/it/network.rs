//! Issue 21, item 6: thirty nodes of three provinces on loopback, routed
//! by the signed directory alone; in each province two districts are
//! reachable only through a relay (中转), itself a district node with
//! notices of its own. Every node sends to every other and every notice is
//! signed for; then, while they run, one node moves to another port, one
//! county (郫都区 510117) is merged into its neighbour (双流区 510116) and
//! leaves the directory, one node's certificate is revoked, and 四川's relay
//! stops and starts again in the middle of the next round; every node
//! sends to every other again, and to the merged county's old code. Every
//! notice arrives exactly once (each node holds exactly the notices sent to
//! it) and every receipt comes back; nothing reaches the revoked node.

use crate::common::*;
use migrex::clock::ManualClock;
use migrex::domain::{Direction, NoticeStatus};
use migrex::pb;
use std::sync::Arc;
use std::time::Duration;

const CODES: [&str; 30] = [
    // 广东 (Shenzhen, and Guangzhou's Tianhe)
    "440303", "440304", "440305", "440306", "440307", "440308", "440309", "440310", "440311",
    "440106", // 四川 (Chengdu)
    "510105", "510106", "510107", "510108", "510112", "510113", "510114", "510115", "510116",
    "510117", // 河南 (Zhengzhou)
    "410102", "410103", "410104", "410105", "410106", "410108", "410122", "410181", "410182",
    "410183",
];
const MOVES: usize = 5; // 440308
const MERGED: usize = 19; // 510117 → 510116
const SUCCESSOR: usize = 18;
const REVOKED: usize = 29; // 410183
/// (district, its relay): two behind each province's relay.
const RELAYED: [(usize, usize); 6] = [(2, 1), (3, 1), (12, 11), (13, 11), (22, 21), (23, 21)];
const SICHUAN_RELAY: usize = 11;

/// Every node in `senders` sends one birth notice to every other node in
/// `live` (and to each code of `extra`); returns (origin, id) of each.
async fn round(
    net: &Net,
    senders: &[usize],
    live: &[usize],
    extra: &[&str],
    first: u32,
) -> Vec<(usize, String)> {
    let mut sent = Vec::new();
    let mut k = first;
    for &i in senders {
        let mut desk = net.desk(i).await.unwrap();
        let targets = live
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| CODES[j])
            // The successor does not write to its own old code.
            .chain(extra.iter().copied().filter(|_| i != SUCCESSOR));
        for dest in targets {
            k += 1;
            let n = desk
                .submit_notice(pb::SubmitNoticeRequest {
                    notice: Some(birth(dest, woman(k), "2026-11-20")),
                })
                .await
                .unwrap_or_else(|s| panic!("{} → {dest}: {}", CODES[i], s.message()))
                .into_inner();
            sent.push((i, n.id));
        }
    }
    sent
}

/// Waits until each of `nodes` holds `count(i)` outbound notices in `status`.
async fn all_reach(net: &Net, nodes: &[usize], status: NoticeStatus, count: impl Fn(usize) -> i64) {
    for &i in nodes {
        let store = net.store(i);
        let want = count(i);
        eventually(
            &format!("{} outbound {status:?} at {}", want, CODES[i]),
            Duration::from_secs(60),
            || async {
                (store
                    .count_notices_with_status(Direction::Outbound, status)
                    .await
                    .unwrap()
                    >= want)
                    .then_some(())
            },
        )
        .await;
    }
}

/// Waits until each of `nodes` holds `count(i)` inbound notices.
async fn inbound_reach(net: &Net, nodes: &[usize], count: impl Fn(usize) -> i64) {
    for &i in nodes {
        let store = net.store(i);
        let want = count(i);
        eventually(
            &format!("{want} inbound at {}", CODES[i]),
            Duration::from_secs(60),
            || async {
                (store.count_notices(Direction::Inbound).await.unwrap() >= want).then_some(())
            },
        )
        .await;
    }
}

/// Each of `nodes` signs for everything pending there.
async fn sign_all(net: &Net, nodes: &[usize]) {
    for &i in nodes {
        let mut desk = net.desk(i).await.unwrap();
        let pending = desk
            .list_pending(pb::ListPendingRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .notices;
        for n in pending {
            desk.acknowledge_notice(pb::AcknowledgeNoticeRequest { id: n.id })
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_nodes_exchange_through_relays_a_move_a_merger_and_a_revocation() {
    let mut net = create(&CODES, fast_delivery()).await;
    net.publish_directory(&net.network_toml(1, &RELAYED))
        .unwrap();
    net.route_by_directory(1).unwrap();
    // Thirty districts on one PostgreSQL server, as in a provincial data
    // centre: each holds at most 4 connections (the default 16 would need
    // 480 of the test server's 300).
    for n in &net.nodes {
        let (mut c, _) = migrex::config::Config::load(&n.config_path).unwrap();
        c.database_connections = 4;
        c.tls.crl_refresh_secs = 1;
        c.save(&n.config_path).unwrap();
    }
    let clock = ManualClock::new(time::macros::datetime!(2026-12-06 10:00 +8));
    for i in 0..CODES.len() {
        net.start_node(i, Arc::new(clock.clone())).await.unwrap();
    }
    let all: Vec<usize> = (0..CODES.len()).collect();

    // Round 1: 30 × 29 notices, every one signed for.
    let first = round(&net, &all, &all, &[], 0).await;
    assert_eq!(first.len(), 870);
    inbound_reach(&net, &all, |_| 29).await;
    sign_all(&net, &all).await;
    all_reach(&net, &all, NoticeStatus::Acknowledged, |_| 29).await;

    // 440308 moves to another port; 郫都区 is merged into 双流区 on
    // 10 December and leaves the directory.
    net.stop_node(MOVES).await;
    let config = net.nodes[MOVES].config_path.clone();
    let (mut c, _) = migrex::config::Config::load(&config).unwrap();
    let port = migrex::setup::free_port().unwrap();
    c.listen = format!("127.0.0.1:{port}");
    c.save(&config).unwrap();
    net.nodes[MOVES].exchange_url = format!("https://127.0.0.1:{port}");
    net.start_node(MOVES, Arc::new(clock.clone()))
        .await
        .unwrap();
    net.stop_node(MERGED).await;
    clock.set(time::macros::datetime!(2026-12-10 09:00 +8));
    let listing: String = net
        .network_toml(2, &RELAYED)
        .split("\n[[district]]")
        .filter(|d| !d.contains(&format!("code = \"{}\"", CODES[MERGED])))
        .collect::<Vec<_>>()
        .join("\n[[district]]");
    let change = format!(
        "\n[[change]]\nold = \"{}\"\nsuccessor = \"{}\"\neffective = \"2026-12-10\"\n",
        CODES[MERGED], CODES[SUCCESSOR]
    );
    net.publish_directory(&(listing + &change)).unwrap();
    // And 410183's certificate is revoked.
    let generations: Vec<u64> = all
        .iter()
        .map(|&i| {
            net.nodes[i]
                .running
                .as_ref()
                .map_or(0, |n| n.ctx.trust.generation())
        })
        .collect();
    let district = migrex::domain::DistrictCode::parse("d", CODES[REVOKED]).unwrap();
    migrex::identity::revoke(
        &net.net.dir.join("ca"),
        &migrex::identity::RevokeTarget::District(district),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let live: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| i != MERGED && i != REVOKED)
        .collect();
    for &i in &live {
        let trust = net.nodes[i].running.as_ref().unwrap().ctx.trust.clone();
        eventually(
            &format!("the new revocation list at {}", CODES[i]),
            Duration::from_secs(20),
            || async { (trust.generation() > generations[i]).then_some(()) },
        )
        .await;
    }
    for &i in &live {
        let ops = net.nodes[i].ops_url.clone();
        eventually(
            &format!("serial 2 at {}", CODES[i]),
            Duration::from_secs(20),
            || async {
                let text = http_get(&ops, "/metrics").await?;
                (metric(&text, "migrex_directory_serial") == Some(2.0)).then_some(())
            },
        )
        .await;
    }

    // Round 2: 28 × 27, and one from each but the successor to the old
    // code; 四川's relay is down while the others send, and back after.
    net.stop_node(SICHUAN_RELAY).await;
    let others: Vec<usize> = live
        .iter()
        .copied()
        .filter(|&i| i != SICHUAN_RELAY)
        .collect();
    let mut second = round(&net, &others, &live, &[CODES[MERGED]], 1000).await;
    net.start_node(SICHUAN_RELAY, Arc::new(clock.clone()))
        .await
        .unwrap();
    second.extend(round(&net, &[SICHUAN_RELAY], &live, &[CODES[MERGED]], 5000).await);
    assert_eq!(second.len(), 28 * 27 + 27);
    for (i, id) in &second {
        let n = get(&net, *i, id).await.unwrap();
        if n.addressed_to == CODES[MERGED] {
            assert_eq!(n.destination, CODES[SUCCESSOR]);
        }
    }
    let inbound = |i: usize| 29 + 27 + if i == SUCCESSOR { 27 } else { 0 };
    inbound_reach(&net, &live, inbound).await;
    sign_all(&net, &live).await;
    all_reach(&net, &live, NoticeStatus::Acknowledged, |i| {
        29 + if i == SUCCESSOR { 27 } else { 28 }
    })
    .await;

    // The merged county's history stays readable under its own code, with
    // its successor named; the monthly report lists it under 双流区.
    let rows = net
        .stats(0)
        .await
        .unwrap()
        .get_timeliness(pb::GetTimelinessRequest {
            period: "2026-12".into(),
            by_peer: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    let old = rows.iter().find(|r| r.peer == CODES[MERGED]).unwrap();
    assert_eq!(
        (
            old.received,
            old.successor.as_str(),
            old.successor_since.as_str()
        ),
        (1, CODES[SUCCESSOR], "2026-12-10")
    );
    let new = rows.iter().find(|r| r.peer == CODES[SUCCESSOR]).unwrap();
    assert!(new.successor.is_empty() && new.received == 2);
    let csv = net.net.dir.join("report.csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
        .args([
            "report", "--period", "2026-12", "--format", "csv", "--config",
        ])
        .arg(&net.nodes[0].config_path)
        .arg("--out")
        .arg(&csv)
        .env("MIGREX_TOKEN", &net.nodes[0].admin_token)
        .env("MIGREX_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let at = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap();
    assert_eq!(
        at("510117 郫都区（2026-12-10 并入 510116 双流区）"),
        at("510116 双流区,") + 1,
        "{csv}"
    );

    // Nothing reaches the revoked node, which still runs: a notice for it
    // waits at its origin, refused at the handshake.
    let mut desk = net.desk(0).await.unwrap();
    let waiting = desk
        .submit_notice(pb::SubmitNoticeRequest {
            notice: Some(birth(CODES[REVOKED], woman(9999), "2026-11-20")),
        })
        .await
        .unwrap()
        .into_inner();
    let waiting = eventually("the refusal to send", Duration::from_secs(30), || async {
        get(&net, 0, &waiting.id)
            .await
            .filter(|n| n.delivery_attempts >= 2)
    })
    .await;
    assert!(
        waiting.last_error.to_lowercase().contains("revoked"),
        "{}",
        waiting.last_error
    );
    let revoked = net.store(REVOKED);
    assert_eq!(revoked.count_notices(Direction::Inbound).await.unwrap(), 29);

    // Exactly once: each node holds exactly what was sent to it.
    for &i in &live {
        let held = net
            .store(i)
            .count_notices(Direction::Inbound)
            .await
            .unwrap();
        assert_eq!(held, inbound(i), "inbound at {}", CODES[i]);
    }
    let sent: std::collections::HashSet<&String> =
        first.iter().chain(&second).map(|(_, id)| id).collect();
    assert_eq!(sent.len(), 870 + 28 * 27 + 27, "every id once");
    // The relays forwarded, and nothing waits at them.
    for relay in [1, 11, 21] {
        let text = http_get(&net.nodes[relay].ops_url, "/metrics")
            .await
            .unwrap();
        assert!(metric(&text, "migrex_relay_taken_total").unwrap() > 0.0);
        assert!(!text.contains("migrex_relay_waiting{"), "{}", CODES[relay]);
    }
    net.stop_all().await;
}
