//! SPEC.md section 4, worked by hand: a few notices with chosen receive,
//! deadline and answer times (moved with a manual clock, across the 2026
//! make-up Sunday 09-20 and National Day), and the figures written out.
//!
//! Shuangliu (510116) answers verification requests within 3 working days;
//! everything else follows the default policy (30 calendar days).
//!
//! | notice | from | kind, reply | received (+8) | due (+8) | reply (+8) |
//! |---|---|---|---|---|---|
//! | A | Luohu | contraception request, feedback | 09-18 10:00 | 09-22 (Sun 09-20 worked, 09-21, 09-22) | answered 09-20 11:00, timely |
//! | B | Luohu | marriage notification, receipt | 09-18 10:00 | 10-18 | signed 09-21 09:00, timely |
//! | C | Wancheng | contraception request, feedback | 09-18 10:00 | 09-22 | answered 09-24 10:00, late |
//! | D | Wancheng | birth notification, feedback | 09-18 10:00 | 10-18 | signed 09-24 10:00, no feedback |
//! | E | Luohu | marriage notification | 09-18 10:00 | — | withdrawn 09-21: excluded |
//! | G | Luohu | marriage notification | 10-01 00:30 (09-30 16:30 UTC) | — | October, not September |
//! | F | Shuangliu → Luohu | marriage notification, receipt | 09-18 10:00 | 10-18 | signed 09-21 09:00 |

use crate::common::*;
use migrex::calendar::DayCount;
use migrex::clock::{ManualClock, SharedClock};
use migrex::config::{Config, PolicyEntry};
use migrex::domain::{Direction, FeedbackResult, NoticeKind};
use migrex::pb;
use std::sync::Arc;
use time::macros::datetime;

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

/// Counts of a row: received, receipt expected, acknowledged, timely, feedback expected, answered, timely, overdue, not yet due.
fn counts(r: &pb::TimelinessRow) -> [u64; 9] {
    [
        r.received,
        r.receipt_expected,
        r.acknowledged,
        r.acknowledged_timely,
        r.feedback_expected,
        r.answered,
        r.answered_timely,
        r.overdue_open,
        r.not_yet_due,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_for_a_hand_worked_month_in_both_directions_and_every_grouping() {
    let clock = ManualClock::new(datetime!(2026-09-18 10:00 +8));
    let mut net = create(&[LUOHU, SHUANGLIU, WANCHENG], fast_delivery()).await;
    let path = net.nodes[1].config_path.clone();
    let (mut c, _) = Config::load(&path).unwrap();
    c.reply_policy = vec![
        PolicyEntry {
            category: Some("VERIFICATION_REQUEST".into()),
            kind: None,
            urgency: None,
            reply: "FEEDBACK".into(),
            days: 3,
            count: DayCount::Working,
        },
        PolicyEntry {
            category: None,
            kind: Some("BIRTH".into()),
            urgency: None,
            reply: "FEEDBACK".into(),
            days: 30,
            count: DayCount::Calendar,
        },
        PolicyEntry {
            category: None,
            kind: None,
            urgency: None,
            reply: "RECEIPT".into(),
            days: 30,
            count: DayCount::Calendar,
        },
    ];
    c.save(&path).unwrap();
    for i in 0..3 {
        net.start_node(i, Arc::new(clock.clone()) as SharedClock)
            .await
            .unwrap();
    }
    let send = |from: usize, n: pb::Notice| {
        let net = &net;
        async move {
            let s = submit(net, from, n).await;
            wait_notice(net, from, &s.id, |x| x.received_at.is_some()).await
        }
    };
    let a = send(0, contraception(SHUANGLIU, woman(1), "2026-09-10")).await;
    let b = send(0, marriage(SHUANGLIU, woman(2), "2026-09-01")).await;
    let c = send(2, contraception(SHUANGLIU, woman(3), "2026-09-11")).await;
    let d = send(2, birth(SHUANGLIU, woman(4), "2026-09-05")).await;
    let e = send(0, marriage(SHUANGLIU, woman(5), "2026-09-02")).await;
    let f = send(1, marriage(LUOHU, woman(6), "2026-09-03")).await;
    assert_eq!(
        a.due_at.unwrap().seconds,
        datetime!(2026-09-22 23:59:59 +8).unix_timestamp()
    );

    let fb = |result: FeedbackResult| {
        Some(pb::Feedback {
            result: result as i32,
            ..Default::default()
        })
    };
    let mut shuangliu = net.desk(1).await.unwrap();
    clock.set(datetime!(2026-09-20 11:00 +8));
    shuangliu
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: a.id.clone(),
            feedback: fb(FeedbackResult::Confirmed),
        })
        .await
        .unwrap();
    clock.set(datetime!(2026-09-21 09:00 +8));
    shuangliu
        .acknowledge_notice(pb::AcknowledgeNoticeRequest { id: b.id.clone() })
        .await
        .unwrap();
    net.desk(0)
        .await
        .unwrap()
        .acknowledge_notice(pb::AcknowledgeNoticeRequest { id: f.id.clone() })
        .await
        .unwrap();
    net.desk(0)
        .await
        .unwrap()
        .withdraw_notice(pb::WithdrawNoticeRequest {
            id: e.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();
    clock.set(datetime!(2026-09-24 10:00 +8));
    shuangliu
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: c.id.clone(),
            feedback: fb(FeedbackResult::NotFound),
        })
        .await
        .unwrap();
    shuangliu
        .acknowledge_notice(pb::AcknowledgeNoticeRequest { id: d.id.clone() })
        .await
        .unwrap();
    clock.set(datetime!(2026-10-01 00:30 +8));
    send(0, marriage(SHUANGLIU, woman(7), "2026-09-28")).await;
    // Every reply has reached its origin before the reports.
    wait_notice(&net, 0, &a.id, |x| x.feedback.is_some()).await;
    wait_notice(&net, 0, &b.id, |x| x.acknowledged_at.is_some()).await;
    wait_notice(&net, 2, &c.id, |x| x.feedback.is_some()).await;
    wait_notice(&net, 2, &d.id, |x| x.acknowledged_at.is_some()).await;
    wait_notice(&net, 1, &e.id, |x| x.withdrawn_at.is_some()).await;
    wait_notice(&net, 1, &f.id, |x| x.acknowledged_at.is_some()).await;

    // Report time T = 2026-09-25 12:00: D (due 10-18) is not yet due.
    clock.set(datetime!(2026-09-25 12:00 +8));
    let all = timeliness_rows(&net, 1, "2026-09", Direction::Inbound, false, false).await;
    assert_eq!(all.len(), 1);
    let r = &all[0];
    // received 4 (E withdrawn, G in October); all 4 signed for (feedback counts), C late;
    // feedback expected A and C (D not due, not answered); answered A and C, A on time.
    assert_eq!(counts(r), [4, 4, 4, 3, 2, 2, 1, 0, 1]);
    assert!(close(r.receipt_rate, 1.0) && close(r.timely_receipt_rate, 0.75));
    assert!(close(r.feedback_rate, 1.0) && close(r.timely_feedback_rate, 0.5));
    // Latencies to the needed reply: A 2d1h, B 2d23h, C 6d → median 2d23h, p90 6d;
    // reported in tenths of a day, truncated: 2d23h = 2.958 days → 2.9.
    assert!(
        close(r.reply_latency_median_days, 2.9),
        "{:?}",
        r.reply_latency_median_days
    );
    assert!(close(r.reply_latency_p90_days, 6.0));
    assert!(
        close(r.delivery_lag_median_seconds, 0.0),
        "the manual clock stood still while delivering"
    );

    let by_peer = timeliness_rows(&net, 1, "2026-09", Direction::Inbound, true, false).await;
    assert_eq!(
        by_peer.iter().map(|r| r.peer.as_str()).collect::<Vec<_>>(),
        vec![WANCHENG, LUOHU],
        "in order of peer code"
    );
    let luohu = by_peer.iter().find(|r| r.peer == LUOHU).unwrap();
    let wancheng = by_peer.iter().find(|r| r.peer == WANCHENG).unwrap();
    assert_eq!(counts(luohu), [2, 2, 2, 2, 1, 1, 1, 0, 0]);
    assert_eq!(counts(wancheng), [2, 2, 2, 1, 1, 1, 0, 0, 1]);
    assert!(
        close(wancheng.timely_feedback_rate, 0.0),
        "a measured 0% is 0, not absent"
    );

    // /metrics shows this month's figures, the same as Stats.
    let text = http_get(&net.nodes[1].ops_url, "/metrics")
        .await
        .expect("metrics answer");
    for row in &by_peer {
        let l = format!("{{direction=\"inbound\",peer=\"{}\"}}", row.peer);
        let figures = [
            ("received", row.received),
            ("receipt_expected", row.receipt_expected),
            ("acknowledged_timely", row.acknowledged_timely),
            ("feedback_expected", row.feedback_expected),
            ("answered", row.answered),
            ("answered_timely", row.answered_timely),
            ("not_yet_due", row.not_yet_due),
        ];
        for (name, value) in figures {
            assert_eq!(
                metric(&text, &format!("migrex_month_{name}{l}")),
                Some(value as f64),
                "{name} {l}"
            );
        }
        assert_eq!(
            metric(&text, &format!("migrex_month_timely_feedback_rate{l}")),
            row.timely_feedback_rate,
            "{l}"
        );
    }
    assert_eq!(
        metric(
            &text,
            "migrex_notices{direction=\"inbound\",kind=\"CONTRACEPTION\",peer=\"440303\",status=\"ANSWERED\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "migrex_notices{direction=\"inbound\",kind=\"MARRIAGE\",peer=\"440303\",status=\"WITHDRAWN\"}"
        ),
        Some(1.0)
    );
    assert!(
        text.contains(
            "migrex_rpc_requests_total{method=\"/migrex.v1.Desk/SubmitFeedback\",code=\"OK\"}"
        ),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));

    let by_kind = timeliness_rows(&net, 1, "2026-09", Direction::Inbound, false, true).await;
    let kind = |k: NoticeKind| by_kind.iter().find(|r| r.kind == k as i32).unwrap();
    assert_eq!(
        counts(kind(NoticeKind::Contraception)),
        [2, 2, 2, 1, 2, 2, 1, 0, 0]
    );
    assert_eq!(
        counts(kind(NoticeKind::Marriage)),
        [1, 1, 1, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        kind(NoticeKind::Marriage).feedback_rate,
        None,
        "no feedback expected: no rate"
    );
    assert_eq!(counts(kind(NoticeKind::Birth)), [1, 1, 1, 1, 0, 0, 0, 0, 1]);
    let both = timeliness_rows(&net, 1, "2026-09", Direction::Inbound, true, true).await;
    assert_eq!(
        both.len(),
        4,
        "Luohu: contraception, marriage; Wancheng: contraception, birth"
    );

    // The origin sees the same figures for what it sent (OUTBOUND), reply latency included.
    let luohu_out = timeliness_rows(&net, 0, "2026-09", Direction::Outbound, true, false).await;
    assert_eq!(luohu_out.len(), 1);
    assert_eq!(
        luohu_out[0],
        pb::TimelinessRow {
            peer: SHUANGLIU.into(),
            ..luohu.clone()
        }
    );
    let shuangliu_out =
        timeliness_rows(&net, 1, "2026-09", Direction::Outbound, false, false).await;
    assert_eq!(counts(&shuangliu_out[0]), [1, 1, 1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(shuangliu_out[0].feedback_rate, None);

    // October holds only G; August is empty: no rates at all.
    assert_eq!(
        timeliness_rows(&net, 1, "2026-10", Direction::Inbound, false, false).await[0].received,
        1
    );
    let august = &timeliness_rows(&net, 1, "2026-08", Direction::Inbound, false, false).await[0];
    assert_eq!(counts(august), [0; 9]);
    assert_eq!(
        (
            august.receipt_rate,
            august.timely_receipt_rate,
            august.feedback_rate,
            august.timely_feedback_rate
        ),
        (None, None, None, None)
    );

    // T = 2026-10-20 12:00: D is past due without feedback.
    clock.set(datetime!(2026-10-20 12:00 +8));
    let r = &timeliness_rows(&net, 1, "2026-09", Direction::Inbound, false, false).await[0];
    assert_eq!(counts(r), [4, 4, 4, 3, 3, 2, 1, 1, 0]);
    assert!(close(r.feedback_rate, 2.0 / 3.0) && close(r.timely_feedback_rate, 1.0 / 3.0));
    let overdue = net
        .stats(1)
        .await
        .unwrap()
        .list_overdue(pb::ListOverdueRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notices;
    let ids: Vec<_> = overdue
        .iter()
        .map(|o| o.notice.as_ref().unwrap().id.clone())
        .collect();
    // G (received 10-01, receipt due 10-31) is not overdue yet; D is, by 1
    // day 12 hours: its deadline ended the 18th, the 20th is its 2nd day late.
    assert_eq!(ids, vec![d.id.clone()]);
    assert_eq!(overdue[0].days_late, 2);
    let outbound_only = net
        .stats(1)
        .await
        .unwrap()
        .list_overdue(pb::ListOverdueRequest {
            direction: Direction::Outbound as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(outbound_only.notices.is_empty());
}
