//! SPEC.md section 4: deadlines under the default policy (15 and 30 calendar
//! days) and under a working-day policy across the 2026 Spring Festival and
//! National Day, with make-up Saturdays, against dates worked out by hand.
//! The nodes run on a manual clock; nothing sleeps to move time.

use crate::common::*;
use migrex::calendar::DayCount;
use migrex::clock::{ManualClock, SharedClock};
use migrex::config::{Config, PolicyEntry};
use migrex::domain::{FeedbackResult, NoticeStatus};
use migrex::pb;
use std::sync::Arc;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn instant(n: &pb::Notice) -> OffsetDateTime {
    let t = n.due_at.expect("due_at");
    OffsetDateTime::from_unix_timestamp(t.seconds).unwrap()
}

async fn delivered(net: &Net, n: pb::Notice) -> pb::Notice {
    let sent = submit(net, 0, n).await;
    wait_notice(net, 0, &sent.id, |x| x.due_at.is_some()).await
}

async fn start(districts: &[&str], clock: &ManualClock, policy: Vec<PolicyEntry>) -> Net {
    let mut net = create(districts, fast_delivery()).await;
    let path = net.nodes[1].config_path.clone();
    let (mut c, _) = Config::load(&path).unwrap();
    c.reply_policy = policy;
    c.save(&path).unwrap();
    for i in 0..districts.len() {
        net.start_node(i, Arc::new(clock.clone()) as SharedClock)
            .await
            .unwrap();
    }
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_gives_15_days_to_urgent_verification_and_30_to_the_rest() {
    // Sunday 2026-11-01, 10:00 in Beijing.
    let clock = ManualClock::new(datetime!(2026-11-01 02:00 UTC));
    let net = start(&[LUOHU, SHUANGLIU], &clock, vec![]).await;
    let urgent = delivered(&net, pregnancy(SHUANGLIU, woman(1), "2026-10-28")).await;
    assert_eq!(
        urgent.urgency,
        migrex::domain::Urgency::Urgent as i32,
        "pregnancy is urgent by default"
    );
    assert_eq!(instant(&urgent), datetime!(2026-11-16 23:59:59 +8));
    let mut normal_request = contraception(SHUANGLIU, woman(2), "2026-10-02");
    normal_request.urgency = migrex::domain::Urgency::Normal as i32;
    assert_eq!(
        instant(&delivered(&net, normal_request).await),
        datetime!(2026-12-01 23:59:59 +8)
    );
    let notification = delivered(&net, marriage(SHUANGLIU, woman(3), "2026-10-02")).await;
    assert_eq!(instant(&notification), datetime!(2026-12-01 23:59:59 +8));

    // 16 days on, the urgent request is overdue; answered now, it is late.
    clock.advance(Duration::days(16));
    let mut desk = net.desk(1).await.unwrap();
    let overdue = desk
        .list_pending(pb::ListPendingRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notices;
    assert_eq!(
        overdue.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
        vec![urgent.id.clone()]
    );
    assert!(overdue[0].overdue);
    let soon = desk
        .list_pending(pb::ListPendingRequest {
            due_within_days: 14,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .notices;
    assert_eq!(
        soon.len(),
        1,
        "due within 14 days of 2026-11-17: only the overdue one"
    );
    let fb = pb::Feedback {
        result: FeedbackResult::Confirmed as i32,
        ..Default::default()
    };
    let late = desk
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: urgent.id.clone(),
            feedback: Some(fb),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        late.timely,
        Some(false),
        "a late reply is accepted and recorded as late"
    );
    assert!(!late.overdue);
    let at_origin = wait_notice(&net, 0, &urgent.id, |n| {
        n.status == NoticeStatus::Answered as i32
    })
    .await;
    assert_eq!(at_origin.timely, Some(false));
    let signed = desk
        .acknowledge_notice(pb::AcknowledgeNoticeRequest {
            id: notification.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.timely, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_day_policy_across_the_spring_festival_and_national_day() {
    let rule = |category: Option<&str>, kind: Option<&str>, reply: &str, days| PolicyEntry {
        category: category.map(Into::into),
        kind: kind.map(Into::into),
        urgency: None,
        reply: reply.into(),
        days,
        count: DayCount::Working,
    };
    let policy = vec![
        rule(Some("VERIFICATION_REQUEST"), None, "FEEDBACK", 3),
        rule(None, Some("BIRTH"), "FEEDBACK", 5),
        rule(None, None, "RECEIPT", 10),
    ];
    // Friday 2026-02-13, 09:00 in Beijing, the eve of the make-up Saturday.
    let clock = ManualClock::new(datetime!(2026-02-13 09:00 +8));
    let net = start(&[LUOHU, SHUANGLIU], &clock, policy).await;
    // Working days after 02-13: Sat 02-14 (make-up) 1; 02-15..02-23 Spring Festival;
    // 02-24 2, 02-25 3, 02-26 4, 02-27 5, Sat 02-28 (make-up) 6, 03-02 7 ... 03-05 10.
    let request = delivered(&net, contraception(SHUANGLIU, woman(1), "2026-02-10")).await;
    assert_eq!(instant(&request), datetime!(2026-02-25 23:59:59 +8));
    let birth_notice = delivered(&net, birth(SHUANGLIU, woman(2), "2026-02-01")).await;
    assert_eq!(instant(&birth_notice), datetime!(2026-02-27 23:59:59 +8));
    let notification = delivered(&net, marriage(SHUANGLIU, woman(3), "2026-02-01")).await;
    assert_eq!(instant(&notification), datetime!(2026-03-05 23:59:59 +8));

    // Friday 2026-09-18, 15:00: Sun 09-20 (make-up) 1, 09-21 2, 09-22 3, 09-23 4, 09-24 5;
    // 09-25..27 Mid-autumn, 09-28 6, 09-29 7, 09-30 8; 10-01..07 National Day; 10-08 9, 10-09 10.
    clock.set(datetime!(2026-09-18 15:00 +8));
    let request = delivered(&net, contraception(SHUANGLIU, woman(4), "2026-09-10")).await;
    assert_eq!(instant(&request), datetime!(2026-09-22 23:59:59 +8));
    let birth_notice = delivered(&net, birth(SHUANGLIU, woman(5), "2026-09-01")).await;
    assert_eq!(instant(&birth_notice), datetime!(2026-09-24 23:59:59 +8));
    let notification = delivered(&net, marriage(SHUANGLIU, woman(6), "2026-09-01")).await;
    assert_eq!(instant(&notification), datetime!(2026-10-09 23:59:59 +8));
}
