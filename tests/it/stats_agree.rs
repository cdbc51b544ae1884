//! The fast path (`stats::timeliness`: trigger-kept roll-ups, corrected for
//! replies stamped after the report time) and the raw recount
//! (`stats::figures`, notice by notice) agree exactly on a randomized history
//! of 100,000 notices, for every grouping, both directions, several periods
//! and report times; and again after the node's timezone changed.

use migrex::domain::{Direction, IdNumber, NoticeContent, NoticeStatus, ParseContext};
use migrex::pb;
use migrex::stats::{Period, figures, month_totals, timeliness};
use migrex::store::{Settled, Store};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

/// 100,000 notices on SQLite, the store the agreement check is run
/// on; 20,000 on PostgreSQL, where the same check proves its triggers equal
/// (a notice at a time over the network makes 100,000 a six-minute test).
fn history_size() -> usize {
    match crate::common::store_choice() {
        crate::common::StoreChoice::Sqlite => 100_000,
        crate::common::StoreChoice::Postgres { .. } => 20_000,
    }
}

fn content(rng: &mut fastrand::Rng, i: usize, created_at: OffsetDateTime) -> NoticeContent {
    let peers = ["440303", "411302", "110101"];
    let subject = IdNumber::complete(&format!("51011619900101{:02}{}", i % 100, 2 * (i % 5)));
    let (kind, details) = match rng.u8(0..4) {
        0 => (
            pb::NoticeKind::Marriage,
            pb::notice::Details::Marriage(pb::MarriageDetails {
                registered_on: "2025-06-01".into(),
                spouse_id_number: IdNumber::complete("51011619880202001"),
                spouse_name: "李强".into(),
                registry_office: "登记处".into(),
            }),
        ),
        1 => (
            pb::NoticeKind::Pregnancy,
            pb::notice::Details::Pregnancy(pb::PregnancyDetails {
                confirmed_on: "2025-06-01".into(),
                gestational_weeks: 8,
                expected_delivery_on: "2026-01-10".into(),
                within_policy: None,
            }),
        ),
        2 => (
            pb::NoticeKind::Birth,
            pb::notice::Details::Birth(pb::BirthDetails {
                born_on: "2025-06-01".into(),
                child_sex: 1,
                birth_order: 1,
                child_name: String::new(),
                place_of_delivery: "医院".into(),
            }),
        ),
        _ => (
            pb::NoticeKind::Contraception,
            pb::notice::Details::Contraception(pb::ContraceptionDetails {
                method: 1,
                performed_on: "2025-06-01".into(),
                provider: "站".into(),
            }),
        ),
    };
    let peer = peers[rng.usize(0..peers.len())];
    let n = pb::Notice {
        id: uuid::Uuid::from_u128(rng.u128(..)).to_string(),
        origin: peer.into(),
        destination: "510116".into(),
        kind: kind as i32,
        category: 1 + rng.i32(0..2),
        subject: Some(pb::Person {
            id_number: subject,
            name: "王芳".into(),
            hukou_district: "510116".into(),
            residence_district: peer.into(),
            ..Default::default()
        }),
        urgency: 1 + rng.i32(0..2),
        reply_required: 1 + rng.i32(0..2),
        details: Some(details),
        created_at: Some(migrex::domain::ts_to_pb(created_at)),
        ..Default::default()
    };
    NoticeContent::parse(
        &n,
        &ParseContext {
            today: date!(2030 - 01 - 01),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_and_raw_recount_agree_on_a_random_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::common::store_location(dir.path(), "agree").await;
    let shanghai = time_tz::timezones::get_by_name("Asia/Shanghai").unwrap();
    let store = Store::open(&path, shanghai).await.unwrap();
    let mut rng = fastrand::Rng::with_seed(20261122);
    let start = datetime!(2026-01-01 00:00 +8);
    let mut tx = store.begin().await.unwrap();
    let mut delivered_later = Vec::new();
    let n = history_size();
    for i in 0..n {
        // Whole microseconds, received over 2026, due 1..40 days later at a random time of day.
        let received = start + Duration::microseconds(rng.i64(0..365 * 86_400_000_000));
        // Mostly a lag of up to 10 minutes; some origins' clocks run ahead.
        let created = received - Duration::microseconds(rng.i64(-5_000_000..600_000_000));
        let due = received + Duration::microseconds(rng.i64(86_400_000_000..40 * 86_400_000_000));
        let c = content(&mut rng, i, created);
        let direction = if rng.bool() {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        let id = c.id.to_string();
        if direction == Direction::Inbound {
            tx.insert_notice(
                &c,
                direction,
                NoticeStatus::Pending,
                Some((received, due, None)),
            )
            .await
            .unwrap();
        } else if rng.bool() {
            tx.insert_notice(
                &c,
                direction,
                NoticeStatus::Delivered,
                Some((received, due, None)),
            )
            .await
            .unwrap();
        } else {
            // Queued first; its delivery (received_at, due_at) is stored last of all.
            tx.insert_notice(&c, direction, NoticeStatus::Queued, None)
                .await
                .unwrap();
            delivered_later.push(Settled::NoticeDelivered {
                seq: -1,
                notice_id: id.clone(),
                received_at: received,
                due_at: due,
                due_provisional: false,
            });
        }
        if rng.u8(0..100) < 65 {
            let acked = received + Duration::microseconds(rng.i64(0..50 * 86_400_000_000));
            tx.set_acknowledged(&id, acked, "clerk").await.unwrap();
            // Only notices that need feedback can be answered.
            if rng.bool() && c.reply_required == migrex::domain::ReplySort::Feedback {
                let answered = acked + Duration::microseconds(rng.i64(0..10 * 86_400_000_000));
                let fb = pb::Feedback {
                    result: 1,
                    answered_by: "clerk".into(),
                    answered_at: Some(migrex::domain::ts_to_pb(answered)),
                    ..Default::default()
                };
                tx.set_answered(&id, &fb, answered).await.unwrap();
            }
        } else if rng.u8(0..100) < 8 {
            tx.set_withdrawn(&id, received, "").await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    store
        .settle(
            &delivered_later,
            &Default::default(),
            datetime!(2027-01-01 00:00 UTC),
        )
        .await
        .unwrap();

    let tz = shanghai;
    let mut compared = 0;
    let mut seen_overdue = false;
    let mut seen_latency = false;
    for period in [
        "2026-03",
        "2026-07",
        "2026-12",
        "2026-Q2",
        "2026",
        "2026-02-10..2026-02-20",
        "2025-06",
    ] {
        let (from, to) = Period::parse("period", period).unwrap().bounds(tz);
        for t in [
            datetime!(2026-04-15 12:00 +8),
            datetime!(2026-08-01 00:00 +8),
            datetime!(2027-06-01 00:00 +8),
        ] {
            for direction in [Direction::Inbound, Direction::Outbound] {
                let cohort = store.cohort(direction, from, to).await.unwrap();
                for (by_peer, by_kind) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let p = Period::parse("period", period).unwrap();
                    let fast = timeliness(&store, p, direction, t, by_peer, by_kind)
                        .await
                        .unwrap();
                    let raw = figures(&cohort, t, by_peer, by_kind);
                    assert_eq!(
                        fast, raw,
                        "{period} at {t} {direction:?} by_peer={by_peer} by_kind={by_kind}"
                    );
                    seen_overdue |= raw
                        .iter()
                        .any(|g| g.counts.overdue_open > 0 && g.counts.not_yet_due > 0);
                    seen_latency |= raw.iter().any(|g| {
                        g.reply_latency_us[1].is_some()
                            && g.counts.answered_timely > 0
                            && g.counts.answered_timely < g.counts.answered
                    });
                    compared += raw.iter().map(|g| g.counts.received).sum::<u64>();
                }
            }
        }
    }
    // The twelve months' chart: each month's totals from one read of the
    // roll-ups equal that month's own report, at every report time.
    let year = Period::parse("period", "2026").unwrap();
    for t in [
        datetime!(2026-04-15 12:00 +8),
        datetime!(2027-06-01 00:00 +8),
    ] {
        for direction in [Direction::Inbound, Direction::Outbound] {
            let totals = month_totals(&store, year, direction, t).await.unwrap();
            let mut months = 0;
            for m in 1..=12u8 {
                let p = Period::parse("period", &format!("2026-{m:02}")).unwrap();
                let alone = timeliness(&store, p, direction, t, false, false)
                    .await
                    .unwrap();
                let key = 202600 + i64::from(m);
                let mine = totals.get(&key).map(|g| g.counts);
                assert_eq!(
                    mine,
                    alone.first().map(|g| g.counts),
                    "2026-{m:02} at {t} {direction:?}"
                );
                months += usize::from(mine.is_some());
            }
            assert!(months >= 10, "the history fills the year: {months} months");
        }
    }
    assert!(
        seen_overdue && seen_latency,
        "the random history exercises every figure"
    );
    assert!(
        compared > 10 * n as u64,
        "compared {compared} notice-figures"
    );
    let year = store
        .cohort(
            Direction::Inbound,
            datetime!(2026-01-01 00:00 +8),
            datetime!(2027-01-01 00:00 +8),
        )
        .await
        .unwrap()
        .len()
        + store
            .cohort(
                Direction::Outbound,
                datetime!(2026-01-01 00:00 +8),
                datetime!(2027-01-01 00:00 +8),
            )
            .await
            .unwrap()
            .len();
    assert!(
        year > n * 9 / 10 && year < n,
        "withdrawn notices are out of the cohort: {year}"
    );
    store.close().await;

    // The node moves to another timezone: months are re-keyed at opening,
    // and the roll-ups follow.
    let urumqi = time_tz::timezones::get_by_name("Asia/Urumqi").unwrap();
    let store = Store::open(&path, urumqi).await.unwrap();
    for period in ["2026-03", "2026-Q3", "2026"] {
        let p = Period::parse("period", period).unwrap();
        let (from, to) = p.bounds(urumqi);
        let t = datetime!(2026-08-01 00:00 +8);
        for direction in [Direction::Inbound, Direction::Outbound] {
            let raw = figures(
                &store.cohort(direction, from, to).await.unwrap(),
                t,
                true,
                true,
            );
            let fast = timeliness(&store, p, direction, t, true, true)
                .await
                .unwrap();
            assert_eq!(fast, raw, "{period} in Asia/Urumqi {direction:?}");
        }
    }
}
