//! Issue 22, item 6: 催办. The origin reminds the destination of a notice
//! past its deadline or due within three days, at most once a day; the
//! reminder travels like any reply (durable, exactly once) and the
//! destination counts it; once answered, no more reminders.

use crate::common::*;
use migrex::auth::{Caller, Role};
use migrex::clock::ManualClock;
use migrex::domain::{FeedbackResult, Refused};
use migrex::pb;
use migrex::service::{ServiceError, replies};

fn caller(role: Role) -> Caller {
    Caller {
        name: "wang.jun".into(),
        role,
        token: None,
        address: "127.0.0.1".into(),
    }
}

fn refused_as(r: Result<migrex::store::NoticeRecord, ServiceError>) -> Refused {
    match r {
        Err(ServiceError::Refused(e)) => e.kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_notice_is_reminded_once_a_day_until_it_is_answered() {
    let clock = ManualClock::new(time::macros::datetime!(2026-10-12 09:00 +8));
    let net = network(&[LUOHU, SHUANGLIU], Some(clock.clone())).await;
    let n = submit(&net, 0, birth(SHUANGLIU, woman(71), "2026-10-03")).await;
    wait_notice(&net, 1, &n.id, |x| x.received_at.is_some()).await;
    wait_notice(&net, 0, &n.id, |x| x.due_at.is_some()).await;
    let here = net.nodes[0].running.as_ref().unwrap().ctx.clone();
    let there = net.nodes[1].running.as_ref().unwrap().ctx.clone();
    let id: uuid::Uuid = n.id.parse().unwrap();
    let clerk = caller(Role::Clerk);
    let held = |ctx: std::sync::Arc<migrex::context::NodeCtx>| {
        let id = n.id.clone();
        async move { ctx.store.get_notice(&id).await.unwrap().unwrap() }
    };

    // Far from its deadline: not offered, and refused as not yet.
    assert!(!replies::actions(&here, &clerk, &held(here.clone()).await).remind);
    assert_eq!(
        refused_as(replies::remind(&here, &clerk, id).await),
        Refused::NotYet
    );
    // A monitor never reminds; the destination cannot remind its origin.
    let monitor = caller(Role::Monitor);
    assert!(replies::remind(&here, &monitor, id).await.is_err());

    // Past the deadline: offered and sent; the destination counts it.
    clock.advance(time::Duration::days(45));
    assert!(replies::actions(&here, &clerk, &held(here.clone()).await).remind);
    assert!(!replies::actions(&there, &clerk, &held(there.clone()).await).remind);
    let sent = replies::remind(&here, &clerk, id).await.unwrap();
    assert_eq!(sent.life.reminders, 1);
    eventually(
        "the reminder arrives",
        std::time::Duration::from_secs(15),
        || {
            let there = there.clone();
            let id = n.id.clone();
            async move {
                let got = there.store.get_notice(&id).await.unwrap().unwrap();
                (got.life.reminders == 1).then_some(())
            }
        },
    )
    .await;
    // A second the same day is refused and changes nothing.
    assert_eq!(
        refused_as(replies::remind(&here, &clerk, id).await),
        Refused::NotYet
    );
    assert_eq!(held(here.clone()).await.life.reminders, 1);

    // A day later, the second.
    clock.advance(time::Duration::hours(25));
    replies::remind(&here, &clerk, id).await.unwrap();
    eventually(
        "the second arrives",
        std::time::Duration::from_secs(15),
        || {
            let there = there.clone();
            let id = n.id.clone();
            async move {
                let got = there.store.get_notice(&id).await.unwrap().unwrap();
                (got.life.reminders == 2).then_some(())
            }
        },
    )
    .await;

    // The figures count them per peer on both sides, for the period the
    // notice was received in.
    let month = migrex::stats::Period::month_of(time::macros::date!(2026 - 10 - 12));
    let drawn = migrex::service::reports::reminders(
        &there,
        &caller(Role::Monitor),
        month,
        migrex::domain::Direction::Inbound,
    )
    .await
    .unwrap();
    assert_eq!(drawn, [(LUOHU.to_string(), 1, 2)]);
    let sent_out = migrex::service::reports::reminders(
        &here,
        &caller(Role::Monitor),
        month,
        migrex::domain::Direction::Outbound,
    )
    .await
    .unwrap();
    assert_eq!(sent_out, [(SHUANGLIU.to_string(), 1, 2)]);

    // Answered: no more reminders, on either side.
    replies::feedback(
        &there,
        &caller(Role::Clerk),
        id,
        &pb::Feedback {
            result: FeedbackResult::Confirmed as i32,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_notice(&net, 0, &n.id, |x| x.feedback.is_some()).await;
    clock.advance(time::Duration::days(2));
    assert!(!replies::actions(&here, &clerk, &held(here.clone()).await).remind);
    assert_eq!(
        refused_as(replies::remind(&here, &clerk, id).await),
        Refused::WrongState
    );

    // Both reminders in the access audit, by the clerk who sent them.
    let entries = here
        .store
        .audit_entries(&migrex::store::AuditQuery {
            actor: Some("wang.jun".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let reminded = entries
        .iter()
        .filter(|e| e.operation == "reply.remind")
        .count();
    assert_eq!(reminded, 2);
}
