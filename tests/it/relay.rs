//! Issue 21, item 3: provincial relays (中转). Two districts sit behind
//! their province's relay (双流区 behind 四川省's, 中原区 behind 河南省's);
//! one district (罗湖区) is reachable by all. Every district sends to every
//! other and signs for what it gets: notices and replies between districts
//! behind relays travel through one relay or two, keep their ids, arrive
//! once, and each origin learns when its notice arrived (the destination's
//! `Delivery` reply) and when it was signed for. A relay forwards only for
//! the districts it serves, and speaks only for them.

use crate::common::*;
use migrex::clock::ManualClock;
use migrex::domain::{Direction, NoticeStatus};
use migrex::pb;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;

const CODES: [&str; 5] = ["440303", "510000", "510116", "410000", "410102"];
const LUOHU: usize = 0;
const SICHUAN: usize = 1; // the relay of 双流区
const SHUANGLIU: usize = 2;
const HENAN: usize = 3; // the relay of 中原区
const ZHONGYUAN: usize = 4;
const DISTRICTS: [usize; 3] = [LUOHU, SHUANGLIU, ZHONGYUAN];

/// Hands one notice to a node's exchange and returns its ack.
async fn send_one(
    to: &mut migrex::pb::exchange_client::ExchangeClient<tonic::transport::Channel>,
    n: pb::Notice,
) -> pb::NoticeAck {
    let request = pb::DeliverNoticesRequest {
        notices: vec![n],
        batch: None,
    };
    let mut acks = to.deliver_notices(request).await.unwrap().into_inner().acks;
    acks.remove(0)
}

/// A refused ack's code and field.
fn refusal(ack: &pb::NoticeAck) -> (Code, &str) {
    let e = ack.error.as_ref().expect("refused");
    (Code::from_i32(e.code), e.field.as_str())
}

/// The five nodes running, routed by a directory in which 双流区 and
/// 中原区 sit behind their provinces' relays.
async fn started() -> (Net, ManualClock) {
    let mut net = create(&CODES, fast_delivery()).await;
    let relayed = [(SHUANGLIU, SICHUAN), (ZHONGYUAN, HENAN)];
    net.publish_directory(&net.network_toml(1, &relayed))
        .unwrap();
    net.route_by_directory(1).unwrap();
    let clock = ManualClock::new(time::macros::datetime!(2026-12-07 10:00 +8));
    for i in 0..CODES.len() {
        net.start_node(i, Arc::new(clock.clone())).await.unwrap();
    }
    (net, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn districts_behind_relays_exchange_with_everyone_through_them() {
    let (mut net, _clock) = started().await;

    // Every district to every other: 6 notices, some through two relays.
    let mut sent = Vec::new();
    for (k, &from) in DISTRICTS.iter().enumerate() {
        let mut desk = net.desk(from).await.unwrap();
        for &to in DISTRICTS.iter().filter(|&&to| to != from) {
            let n = desk
                .submit_notice(pb::SubmitNoticeRequest {
                    notice: Some(birth(
                        CODES[to],
                        woman(10 * k as u32 + to as u32),
                        "2026-11-20",
                    )),
                })
                .await
                .unwrap()
                .into_inner();
            sent.push((from, to, n.id));
        }
    }
    // Each arrives once, and its origin learns when: the very instant and
    // deadline the destination stamped.
    for (from, to, id) in &sent {
        let there = wait_notice(&net, *to, id, |_| true).await;
        let here = wait_notice(&net, *from, id, |n| {
            n.status == NoticeStatus::Delivered as i32
        })
        .await;
        assert_eq!(
            here.received_at, there.received_at,
            "{id}: {} → {}",
            CODES[*from], CODES[*to]
        );
        assert_eq!(here.due_at, there.due_at);
    }
    for &i in &DISTRICTS {
        assert_eq!(
            net.store(i)
                .count_notices(Direction::Inbound)
                .await
                .unwrap(),
            2
        );
    }
    // The relays hold no notice of their own: they only forwarded.
    for relay in [SICHUAN, HENAN] {
        let store = net.store(relay);
        assert_eq!(store.count_notices(Direction::Inbound).await.unwrap(), 0);
        assert_eq!(store.count_notices(Direction::Outbound).await.unwrap(), 0);
    }

    // Every receipt comes back the same way.
    for &i in &DISTRICTS {
        let mut desk = net.desk(i).await.unwrap();
        let pending = desk
            .list_pending(pb::ListPendingRequest {
                page_size: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .notices;
        assert_eq!(pending.len(), 2);
        for n in pending {
            desk.acknowledge_notice(pb::AcknowledgeNoticeRequest { id: n.id })
                .await
                .unwrap();
        }
    }
    for (from, _, id) in &sent {
        wait_notice(&net, *from, id, |n| {
            n.status == NoticeStatus::Acknowledged as i32
        })
        .await;
    }
    // Every step of every journey verifies at both ends, through one relay
    // or two: a relay hands each item on with its author's whole proof.
    for (from, to, id) in &sent {
        for end in [*from, *to] {
            let cfg = net.nodes[end].config_path.to_string_lossy().to_string();
            let out = migrex_cli(&["notice", "show", "--config", &cfg, "--verify", id]);
            assert!(
                out.status.success(),
                "{id} at {}: {}{}",
                CODES[end],
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // Nobody reached 双流区 or 中原区 but their own relay; the relays'
    // queues are empty and say what they took.
    for (node, hidden) in [
        (LUOHU, "510116"),
        (LUOHU, "410102"),
        (ZHONGYUAN, "510116"),
        (SHUANGLIU, "410102"),
    ] {
        let text = http_get(&net.nodes[node].ops_url, "/metrics")
            .await
            .unwrap();
        let series = format!("migrex_delivery_attempts_total{{peer=\"{hidden}\"}}");
        assert_eq!(
            metric(&text, &series),
            None,
            "{} called {hidden}",
            CODES[node]
        );
    }
    for relay in [SICHUAN, HENAN] {
        let text = http_get(&net.nodes[relay].ops_url, "/metrics")
            .await
            .unwrap();
        assert!(
            metric(&text, "migrex_relay_taken_total").unwrap() >= 8.0,
            "{text}"
        );
        assert!(
            !text.contains("migrex_relay_waiting{"),
            "nothing waits at {}",
            CODES[relay]
        );
    }
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_forwards_only_for_its_districts_and_speaks_only_for_them() {
    let (mut net, clock) = started().await;
    let mut to_relay = exchange_as(&net, LUOHU, SICHUAN).await;
    // Signed by its origin's key, as the origin's node sends it.
    let signer = |from: usize| node_signer(&net, from);
    let notice = |to: usize, from: usize, k: u32| {
        let n = wire(
            birth(CODES[to], woman(k), "2026-11-20"),
            CODES[from],
            &clock,
        );
        sign_as(&signer(from), n)
    };
    // Not a district this relay serves (河南's 中原区).
    let ack = send_one(&mut to_relay, notice(ZHONGYUAN, LUOHU, 1)).await;
    assert_eq!(
        refusal(&ack),
        (Code::FailedPrecondition, "notice.destination")
    );
    // 罗湖区 cannot speak for 双流区 (or anyone else) at the relay.
    let ack = send_one(&mut to_relay, notice(LUOHU, SHUANGLIU, 2)).await;
    assert_eq!(refusal(&ack), (Code::PermissionDenied, "notice.origin"));
    // The relay cannot speak at 罗湖区 for a district it does not serve.
    let mut from_relay = exchange_as(&net, SICHUAN, LUOHU).await;
    let ack = send_one(&mut from_relay, notice(LUOHU, ZHONGYUAN, 3)).await;
    assert_eq!(refusal(&ack), (Code::PermissionDenied, "notice.origin"));

    // What it serves it takes, once: the same notice again is answered the
    // same, other content under its id is refused, and it arrives once.
    let good = notice(SHUANGLIU, LUOHU, 4);
    for _ in 0..2 {
        let ack = send_one(&mut to_relay, good.clone()).await;
        assert!(
            ack.error.is_none() && ack.relayed && ack.received_at.is_none(),
            "{ack:?}"
        );
    }
    let mut changed = good.clone();
    changed.remarks = "其他内容".into();
    // Changed after it was signed: not what its origin signed.
    let ack = send_one(&mut to_relay, changed.clone()).await;
    assert_eq!(refusal(&ack), (Code::PermissionDenied, "notice.proof"));
    let ack = send_one(&mut to_relay, sign_as(&signer(LUOHU), changed)).await;
    assert_eq!(refusal(&ack), (Code::AlreadyExists, "notice.id"));
    wait_notice(&net, SHUANGLIU, &good.id, |_| true).await;
    // 罗湖区 never stored it: this client stands in for its node. Its
    // arrival (the Delivery reply) reaches 罗湖区, which knows no such
    // notice, and is refused there for good; the relay keeps it, refused.
    let relay_ops = net.nodes[SICHUAN].ops_url.clone();
    eventually(
        "the refused delivery reply at the relay",
        Duration::from_secs(20),
        || async {
            let text = http_get(&relay_ops, "/metrics").await?;
            (metric(&text, "migrex_relay_refused{target=\"440303\"}") == Some(1.0)).then_some(())
        },
    )
    .await;
    assert_eq!(
        net.store(SHUANGLIU)
            .count_notices(Direction::Inbound)
            .await
            .unwrap(),
        1
    );
    net.stop_all().await;
}

const KILLED: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_forwarding_forwards_every_notice_exactly_once() {
    use migrex::clock::SystemClock;
    let mut net = create(&CODES[..3], small_batches()).await;
    net.publish_directory(&net.network_toml(1, &[(SHUANGLIU, SICHUAN)]))
        .unwrap();
    net.route_by_directory(1).unwrap();
    // The relay runs as its own process, as operators run it.
    let relay_config = net.nodes[SICHUAN].config_path.clone();
    let relay_ops = net.nodes[SICHUAN].ops_url.clone();
    let mut relay = spawn_serve(&relay_config);
    wait_ready(&relay_ops).await;
    net.start_node(LUOHU, Arc::new(SystemClock)).await.unwrap();

    // While 双流区 is down, the whole backlog moves to the relay.
    let notices: Vec<pb::Notice> = (0..KILLED as u32)
        .map(|i| marriage(CODES[SHUANGLIU], woman(i), "2026-10-01"))
        .collect();
    let ids = submit_batch(&mut net.desk(LUOHU).await.unwrap(), notices).await;
    let series = format!("migrex_relay_waiting{{target=\"{}\"}}", CODES[SHUANGLIU]);
    eventually(
        "the backlog at the relay",
        Duration::from_secs(60),
        || async {
            let text = http_get(&relay_ops, "/metrics").await?;
            (metric(&text, &series) == Some(KILLED as f64)).then_some(())
        },
    )
    .await;

    // The origin shows each notice at the relay, not as failing: taken by
    // 四川省's node, waiting for 双流区's word.
    let at_relay = eventually(
        "the hand-over recorded",
        Duration::from_secs(30),
        || async {
            get(&net, LUOHU, &ids[KILLED - 1])
                .await
                .filter(|n| !n.relayed_by.is_empty())
        },
    )
    .await;
    assert_eq!(
        (
            at_relay.status,
            at_relay.relayed_by.as_str(),
            at_relay.delivery_attempts
        ),
        (NoticeStatus::Queued as i32, CODES[SICHUAN], 0)
    );
    assert!(at_relay.relayed_at.is_some() && at_relay.received_at.is_none());

    net.start_node(SHUANGLIU, Arc::new(SystemClock))
        .await
        .unwrap();
    let dest = net.store(SHUANGLIU);
    eventually(
        "the first batches to arrive",
        Duration::from_secs(30),
        || async { (dest.count_notices(Direction::Inbound).await.unwrap() > 0).then_some(()) },
    )
    .await;
    relay.kill().expect("SIGKILL");
    relay.wait().unwrap();
    let at_kill = dest.count_notices(Direction::Inbound).await.unwrap();
    assert!(
        at_kill < KILLED as i64,
        "the kill came after forwarding had finished ({at_kill}); the test proves nothing"
    );
    eprintln!("killed the relay with {at_kill} of {KILLED} notices forwarded");

    let _relay = spawn_serve(&relay_config);
    wait_ready(&relay_ops).await;
    eventually(
        "every notice at 双流区",
        Duration::from_secs(90),
        || async {
            (dest.count_notices(Direction::Inbound).await.unwrap() == KILLED as i64).then_some(())
        },
    )
    .await;
    // Every arrival reaches the origin through the relay, each with the
    // instant 双流区 stamped the first time.
    let origin = net.desk(LUOHU).await.unwrap();
    let sent = eventually(
        "the origin to learn every arrival",
        Duration::from_secs(90),
        || {
            let mut d = origin.clone();
            async move {
                let sent = list_all(&mut d, Direction::Outbound as i32, 1000).await;
                sent.iter()
                    .all(|n| n.status == NoticeStatus::Delivered as i32)
                    .then_some(sent)
            }
        },
    )
    .await;
    let held = list_all(
        &mut net.desk(SHUANGLIU).await.unwrap(),
        Direction::Inbound as i32,
        1000,
    )
    .await;
    assert_eq!(held.len(), KILLED);
    let there: std::collections::HashMap<&str, _> = held
        .iter()
        .map(|n| (n.id.as_str(), n.received_at))
        .collect();
    assert_eq!(there.len(), KILLED, "each notice once");
    for n in &sent {
        assert_eq!(Some(&n.received_at), there.get(n.id.as_str()), "{}", n.id);
    }
    assert_eq!(sent.len(), ids.len());
    net.stop_all().await;
}

#[test]
fn the_alert_fires_when_relayed_items_wait_over_an_hour() {
    // The oldest relayed item for 双流区 at 四川省's relay ages a minute a
    // minute: the next node is unreachable.
    let description = "The oldest is 1h 10m 0s old; forwarding retries go on. Check the node of 510116 (or its relay) from this one: its endpoint in the directory, its certificate; 管理 (中转) and the log show the last error.";
    let tests = format!(
        "  - interval: 1m\n    input_series:\n      - series: 'migrex_relay_oldest_age_seconds{{district=\"510000\",target=\"510116\"}}'\n        values: '0+60x120'\n    alert_rule_test:\n      - eval_time: 50m\n        alertname: MigrexRelayStuck\n        exp_alerts: []\n      - eval_time: 70m\n        alertname: MigrexRelayStuck\n        exp_alerts:\n          - exp_labels: {{severity: critical, district: \"510000\", target: \"510116\"}}\n            exp_annotations:\n              summary: \"510000: relayed items for 510116 have waited over an hour\"\n              description: \"{description}\"\n"
    );
    if let Some(r) = promtool_test("1m", &tests) {
        r.unwrap_or_else(|e| panic!("the relay alert rule: {e}"));
    }
}

/// The scan for routes a worker should serve reads the routes with items
/// waiting, and only those, on both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_with_items_waiting_are_found_route_by_route() {
    use migrex::store::{ItemKind, Settled, Store};
    let dir = tempfile::tempdir().unwrap();
    let path = store_location(dir.path(), "routes").await;
    let shanghai = time_tz::timezones::get_by_name("Asia/Shanghai").unwrap();
    let store = Store::open(&path, shanghai).await.unwrap();
    assert!(store.waiting_routes().await.unwrap().is_empty());
    let now = time::OffsetDateTime::now_utc();
    let mut tx = store.begin().await.unwrap();
    for (route, n) in [("410000", 3), ("440303", 2), ("510000", 1)] {
        for i in 0..n {
            let id = format!("{route}-{i}");
            tx.enqueue(route, route, ItemKind::RelayNotice, &id, None, b"x", now)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
    // 510000's only item refused for good: nothing waits for it.
    let head = store.outbox_batch("510000", 0, 10).await.unwrap();
    store
        .settle(
            &[Settled::Refused {
                seq: head[0].seq,
                error: "no".into(),
            }],
            &Default::default(),
            now,
        )
        .await
        .unwrap();
    assert_eq!(store.waiting_routes().await.unwrap(), ["410000", "440303"]);
}

/// docs/protocol.md §6 through a relay: the origin's withdrawal is taken by
/// the destination's relay while the destination is down, and the
/// destination answers before the relay hands it on. Both end answered,
/// the withdrawal late on record at both ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withdrawal_and_an_answer_that_cross_through_a_relay_end_answered_at_both_ends() {
    let (mut net, clock) = started().await;
    let n = net
        .desk(LUOHU)
        .await
        .unwrap()
        .submit_notice(pb::SubmitNoticeRequest {
            notice: Some(birth(CODES[SHUANGLIU], woman(41), "2026-11-20")),
        })
        .await
        .unwrap()
        .into_inner();
    wait_notice(&net, SHUANGLIU, &n.id, |_| true).await;
    wait_notice(&net, LUOHU, &n.id, |x| {
        x.status == NoticeStatus::Delivered as i32
    })
    .await;
    // The destination is down: its relay takes the withdrawal and keeps it.
    net.stop_node(SHUANGLIU).await;
    withdraw(&net, LUOHU, &n.id).await;
    eventually(
        "the relay took the withdrawal",
        Duration::from_secs(20),
        || async {
            let waiting = net.store(LUOHU).outbox_counts().await.unwrap();
            waiting.iter().all(|w| w.waiting == 0).then_some(())
        },
    )
    .await;
    // The relay is down: the destination answers, not knowing.
    net.stop_node(SICHUAN).await;
    net.start_node(SHUANGLIU, Arc::new(clock.clone()))
        .await
        .unwrap();
    answer(&net, SHUANGLIU, &n.id).await;
    // The relay back: the two replies cross through it.
    net.start_node(SICHUAN, Arc::new(clock.clone()))
        .await
        .unwrap();
    let there = wait_notice(&net, SHUANGLIU, &n.id, |x| x.withdrawn_at.is_some()).await;
    assert_eq!(there.status, NoticeStatus::Answered as i32);
    let here = wait_notice(&net, LUOHU, &n.id, |x| {
        x.status == NoticeStatus::Answered as i32
    })
    .await;
    assert_eq!(here.feedback, there.feedback, "the same answer");
    assert!(
        here.withdrawn_at.is_some(),
        "the withdrawal stays on record"
    );
    for node in [LUOHU, SICHUAN, SHUANGLIU] {
        outbox_settled(&net, node, Duration::from_secs(20)).await;
    }
    net.stop_all().await;
}
