//! The calendar knows where it ends (SPEC.md section 4, working days): with
//! the clock in December of the last year the shipped holiday schedule
//! covers, a 20-working-day deadline into the next year is provisional on
//! both sides; `/metrics` and the alert rule name the missing year; loading
//! that year's schedule with `migrex calendar load` into a running node moves
//! the deadline on both sides (its make-up Saturday counted), ends the mark,
//! records the change in both journeys, and the figures recount. A notice
//! answered before the load keeps the deadline it was answered against.

use crate::common::*;
use migrex::auth::Role;
use migrex::auth::accounts::create_user;
use migrex::calendar::DayCount;
use migrex::clock::{ManualClock, SharedClock};
use migrex::config::{Config, PolicyEntry};
use migrex::domain::{Direction, FeedbackResult, NoticeStatus};
use migrex::pb;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::datetime;

/// 2027 as a test schedule: New Year's Day off, Saturday 01-09 worked (made
/// up for these tests; not the State Council's notice).
const YEAR_2027: &str = "date,day,name\n\
    2027-01-01,holiday,元旦\n2027-01-09,workday,元旦\n\
    2027-02-06,holiday,春节\n2027-02-07,holiday,春节\n2027-02-08,holiday,春节\n\
    2027-02-09,holiday,春节\n2027-02-10,holiday,春节\n2027-02-11,holiday,春节\n\
    2027-02-12,holiday,春节\n2027-02-13,holiday,春节\n2027-02-20,workday,春节\n\
    2027-04-05,holiday,清明节\n2027-05-01,holiday,劳动节\n2027-05-02,holiday,劳动节\n\
    2027-05-03,holiday,劳动节\n2027-06-09,holiday,端午节\n2027-09-15,holiday,中秋节\n\
    2027-10-01,holiday,国庆节\n2027-10-02,holiday,国庆节\n2027-10-03,holiday,国庆节\n\
    2027-10-04,holiday,国庆节\n2027-10-05,holiday,国庆节\n2027-10-06,holiday,国庆节\n\
    2027-10-07,holiday,国庆节\n2027-10-09,workday,国庆节\n";

fn due(n: &pb::Notice) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(n.due_at.expect("due_at").seconds).unwrap()
}

fn instant(t: &Option<prost_types::Timestamp>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.expect("an instant").seconds).unwrap()
}

/// December 2026's cohort of a node in one direction: (overdue open, not yet due).
async fn december(net: &Net, node: usize, direction: Direction) -> (u64, u64) {
    let rows = timeliness_rows(net, node, "2026-12", direction, false, false).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    (rows[0].overdue_open, rows[0].not_yet_due)
}

async fn last_covered_year(net: &Net, node: usize) -> f64 {
    let text = http_get(&net.nodes[node].ops_url, "/metrics")
        .await
        .unwrap();
    metric(&text, "migrex_calendar_last_covered_year").expect("the gauge is exposed")
}

/// The alert rule over a scraped `year` at `day` (days since 1970): the
/// alert it should give, naming `missing`, or none.
fn alert_case(day: u32, missing: Option<i32>) -> String {
    let alerts = match missing {
        None => "[]".to_string(),
        Some(y) => format!(
            "\n          - exp_labels: {{severity: warning, district: \"510116\"}}\n            exp_annotations:\n              summary: \"510116: the holiday schedule of {y} is not loaded\"\n              description: \"Working-day deadlines into {y} are counted by the plain week and marked provisional (时限（暂定）). When the State Council publishes the schedule, load it on every node: migrex calendar load FILE --config migrex.toml (running nodes pick it up and correct the deadlines).\""
        ),
    };
    format!(
        "      - eval_time: {day}d\n        alertname: MigrexHolidayScheduleMissing\n        exp_alerts: {alerts}\n"
    )
}

fn alert_rule_says(year: f64, cases: &[(u32, Option<i32>)]) {
    // Samples every 10 days from 1970 to 2027, evaluated every 10 days: the
    // eval times are multiples of 10 days, on a sample.
    let tests = format!(
        "  - interval: 10d\n    input_series:\n      - series: 'migrex_calendar_last_covered_year{{district=\"510116\"}}'\n        values: '{year}x2100'\n    alert_rule_test:\n{}",
        cases
            .iter()
            .map(|(d, m)| alert_case(*d, *m))
            .collect::<String>()
    );
    if let Some(r) = promtool_test("10d", &tests) {
        r.unwrap_or_else(|e| panic!("the alert rule with {year}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_past_the_schedule_is_provisional_until_its_year_is_loaded() {
    // Friday 2026-12-11, 09:00 in Beijing; the shipped schedule ends with 2026.
    let clock = ManualClock::new(datetime!(2026-12-11 09:00 +8));
    let mut net = create(&[LUOHU, SHUANGLIU], fast_delivery()).await;
    let config = net.nodes[1].config_path.clone();
    let (mut c, _) = Config::load(&config).unwrap();
    c.reply_policy = vec![PolicyEntry {
        category: None,
        kind: Some("BIRTH".into()),
        urgency: None,
        reply: "FEEDBACK".into(),
        days: 20,
        count: DayCount::Working,
    }];
    c.calendar_refresh_secs = 1;
    c.save(&config).unwrap();
    for i in 0..2 {
        net.start_node(i, Arc::new(clock.clone()) as SharedClock)
            .await
            .unwrap();
    }

    // 14 working days to the end of 2026, then the plain week: Fri 2027-01-01
    // counts, and the 20th is Fri 01-08.
    let plain_week = datetime!(2027-01-08 23:59:59 +8);
    let open = submit(&net, 0, birth(SHUANGLIU, woman(1), "2026-12-01")).await;
    let answered = submit(&net, 0, birth(SHUANGLIU, woman(2), "2026-12-02")).await;
    for id in [&open.id, &answered.id] {
        let at_origin = wait_notice(&net, 0, id, |n| n.due_at.is_some()).await;
        let here = get(&net, 1, id).await.unwrap();
        for n in [&at_origin, &here] {
            assert_eq!(due(n), plain_week);
            assert!(n.due_provisional, "counted past 2026: provisional");
        }
    }
    let mut desk = net.desk(1).await.unwrap();
    let pending = desk
        .list_pending(pb::ListPendingRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notices;
    assert!(
        pending.iter().all(|n| n.due_provisional),
        "待办 shows the mark"
    );

    // A clerk sees it in the console: on 待办 and on the notice's page.
    let browser = crate::console::browser().await;
    if let Some(b) = &browser {
        create_user(
            &net.store(1),
            "li.na",
            Role::Clerk,
            "correct-horse-1",
            datetime!(2026-12-11 09:00 +8),
        )
        .await
        .unwrap();
        let console = net.nodes[1].console_url.clone();
        b.login(&console, "li.na", "correct-horse-1").await;
        let row = b
            .text_of(&format!("#pending tr[data-id='{}']", open.id))
            .await;
        assert!(
            row.contains("时限（暂定）") && row.contains("2027-01-08"),
            "{row}"
        );
        b.shot("pending-provisional").await;
        b.c.goto(&format!("{console}/notices/{}", open.id))
            .await
            .unwrap();
        b.until(
            "the notice page with its provisional deadline",
            |_, page| page.contains("时限（暂定）"),
        )
        .await;
        b.shot("notice-provisional").await;
    }

    // Operators see it coming: the gauge, and the alert rule from 1 November.
    assert_eq!(last_covered_year(&net, 1).await, 2026.0);
    // 2026-10-24: quiet; 2026-11-03 and 2026-12-13: 2027 is missing.
    alert_rule_says(
        2026.0,
        &[(20750, None), (20760, Some(2027)), (20800, Some(2027))],
    );

    // One is answered in December, against the provisional deadline.
    desk.submit_feedback(pb::SubmitFeedbackRequest {
        id: answered.id.clone(),
        feedback: Some(pb::Feedback {
            result: FeedbackResult::Confirmed as i32,
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    wait_notice(&net, 0, &answered.id, |n| {
        n.status == NoticeStatus::Answered as i32
    })
    .await;

    // Saturday 2027-01-09, 10:00: by the plain week the open one is a day late.
    clock.set(datetime!(2027-01-09 10:00 +8));
    assert_eq!(december(&net, 1, Direction::Inbound).await, (1, 0));
    assert_eq!(december(&net, 0, Direction::Outbound).await, (1, 0));

    // 2027's schedule is published: Jan 1 off, Saturday Jan 9 worked.
    let file = net.dir.path().join("2027.csv");
    std::fs::write(&file, YEAR_2027).unwrap();
    let out = migrex_cli(&[
        "calendar",
        "load",
        file.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("loaded 2027") && said.contains("to 2027"),
        "{said}"
    );

    // The running destination puts it in force and counts again: the 20th
    // working day is now the make-up Saturday; the origin hears of it.
    let official = datetime!(2027-01-09 23:59:59 +8);
    for node in [1, 0] {
        let n = eventually(
            "the deadline counted again on both sides",
            Duration::from_secs(20),
            || async {
                get(&net, node, &open.id)
                    .await
                    .filter(|n| due(n) == official && !n.due_provisional)
            },
        )
        .await;
        assert_eq!(n.deadline_changes.len(), 1, "the journey records it");
        let change = &n.deadline_changes[0];
        assert_eq!(instant(&change.previous_due_at), plain_week);
        assert_eq!(instant(&change.due_at), official);
        assert!(!change.provisional);
        // Answered against its provisional deadline: that one stays.
        let kept = get(&net, node, &answered.id).await.unwrap();
        assert_eq!(due(&kept), plain_week);
        assert!(kept.deadline_changes.is_empty());
    }
    assert_eq!(last_covered_year(&net, 1).await, 2027.0);
    alert_rule_says(2027.0, &[(20830, None)]);

    // The clerk's notice page: the official deadline, the move in the journey.
    if let Some(b) = &browser {
        let console = net.nodes[1].console_url.clone();
        b.login(&console, "li.na", "correct-horse-1").await;
        b.c.goto(&format!("{console}/notices/{}", open.id))
            .await
            .unwrap();
        b.until("the notice page with the deadline moved", |_, page| {
            page.contains("时限更新") && !page.contains("时限（暂定）")
        })
        .await;
        b.shot("notice-deadline-moved").await;
    }

    // The figures recount: not overdue, not yet due, on both sides.
    assert_eq!(december(&net, 1, Direction::Inbound).await, (0, 1));
    assert_eq!(december(&net, 0, Direction::Outbound).await, (0, 1));

    // Answered on the make-up Saturday: timely, on both sides.
    let reply = desk
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: open.id.clone(),
            feedback: Some(pb::Feedback {
                result: FeedbackResult::Confirmed as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.timely, Some(true));
    let at_origin = wait_notice(&net, 0, &open.id, |n| {
        n.status == NoticeStatus::Answered as i32
    })
    .await;
    assert_eq!(at_origin.timely, Some(true));
    let rows = timeliness_rows(&net, 1, "2026-12", Direction::Inbound, false, false).await;
    assert_eq!((rows[0].answered, rows[0].answered_timely), (2, 2));
}

#[test]
fn calendar_load_refuses_a_partial_year_and_a_gap_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrex.toml");
    std::fs::write(
        &config,
        "district = \"510116\"\ndatabase = \"m.db\"\nlisten = \"127.0.0.1:1\"\ndesk_listen = \"127.0.0.1:2\"\nops_listen = \"127.0.0.1:3\"\n[tls]\nca_cert = \"ca.crt\"\ncert = \"node.crt\"\nkey = \"node.key\"\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let partial = dir.path().join("partial.csv");
    std::fs::write(&partial, "date,day,name\n2027-01-01,holiday,元旦\n").unwrap();
    let out = migrex_cli(&[
        "calendar",
        "load",
        partial.to_str().unwrap(),
        "--config",
        cfg,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("year 2027") && err.contains("春节"), "{err}");
    let gap = dir.path().join("2028.csv");
    std::fs::write(
        &gap,
        YEAR_2027
            .replace("2027-", "2028-")
            .replace("2028-01-09,workday", "2028-01-08,workday")
            .replace("2028-02-20,workday", "2028-02-19,workday")
            .replace("2028-10-09,workday", "2028-10-08,workday"),
    )
    .unwrap();
    let out = migrex_cli(&["calendar", "load", gap.to_str().unwrap(), "--config", cfg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("gap") && err.contains("2027"), "{err}");
    assert!(
        !dir.path().join("holidays.csv").exists(),
        "a refusal writes nothing"
    );

    let good = dir.path().join("2027.csv");
    std::fs::write(&good, YEAR_2027).unwrap();
    let out = migrex_cli(&[
        "calendar",
        "load",
        good.to_str().unwrap(),
        "--config",
        cfg,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["loaded_years"], serde_json::json!([2027]));
    assert_eq!(v["last_covered_year"], 2027);
    let out = migrex_cli(&["calendar", "show", "--config", cfg, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["last_covered_year"], 2027);
    let years = v["years"].as_array().unwrap();
    assert_eq!(years[0]["year"], 2004);
    assert_eq!(years.last().unwrap()["year"], 2027);
    assert!(
        years.last().unwrap()["source"]
            .as_str()
            .unwrap()
            .ends_with("holidays.csv")
    );
    // 2028 now joins on without a gap.
    let out = migrex_cli(&["calendar", "load", gap.to_str().unwrap(), "--config", cfg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = migrex_cli(&["calendar", "show", "--config", cfg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2004–2026") && text.contains("2027–2028"),
        "{text}"
    );
}
