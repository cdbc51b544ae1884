//! Issue 22, items 2 and 10: a notice found again once answered, on both
//! sides, by ID number, by name and by its short reference (编号); 已办
//! lists what was signed or answered, latest first; every search is in the
//! access audit and monitors have neither.

use crate::common::*;
use migrex::auth::{Caller, Role};
use migrex::domain::Direction;
use migrex::pb;
use migrex::service::search::{Search, Wanted, handled, search};
use migrex::service::{Page, replies};

fn caller(role: Role) -> Caller {
    Caller {
        name: "li.na".into(),
        role,
        token: None,
        address: "127.0.0.1".into(),
    }
}

fn wanting(wanted: Wanted) -> Search {
    Search {
        wanted,
        direction: None,
        kind: None,
        status: None,
        district: String::new(),
        from: None,
        to: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_notice_is_found_again_by_id_number_name_and_reference() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        let mut n = birth(SHUANGLIU, woman(80 + i), "2026-10-03");
        n.subject.as_mut().unwrap().name = format!("查找{i}");
        sent.push(submit(&net, 0, n).await);
    }
    // References: the origin's code, the day, and a count without gaps.
    let refs: Vec<String> = sent.iter().map(|n| n.reference.clone()).collect();
    let counts: Vec<u32> = refs
        .iter()
        .map(|r| {
            assert!(r.starts_with(&format!("{LUOHU}-")), "{r}");
            r.rsplit('-').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(counts[1], counts[0] + 1, "{refs:?}");
    assert_eq!(counts[2], counts[0] + 2, "{refs:?}");
    for n in &sent {
        wait_notice(&net, 1, &n.id, |x| x.received_at.is_some()).await;
    }
    let there = net.nodes[1].running.as_ref().unwrap().ctx.clone();
    let here = net.nodes[0].running.as_ref().unwrap().ctx.clone();
    let clerk = caller(Role::Clerk);
    // The destination answers the second one and signs for the third.
    let answered = sent[1].id.parse().unwrap();
    replies::feedback(
        &there,
        &clerk,
        answered,
        &pb::Feedback {
            result: migrex::domain::FeedbackResult::Confirmed as i32,
            remarks: "已入户核实".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    replies::acknowledge(&there, &clerk, sent[2].id.parse().unwrap())
        .await
        .unwrap();
    let ours = &sent[1];
    let id_number = ours.subject.clone().unwrap().id_number;
    for (ctx, side) in [(&there, "destination"), (&here, "origin")] {
        for wanted in [
            Wanted::parse(&id_number).unwrap(),
            Wanted::parse("查找1").unwrap(),
            Wanted::parse(&ours.reference).unwrap(),
        ] {
            let found = search(ctx, &clerk, wanting(wanted.clone()), Page::new(10, None))
                .await
                .unwrap();
            let ids: Vec<&str> = found.rows.iter().map(|r| r.id()).collect();
            assert_eq!(ids, [ours.id.as_str()], "{side} by {wanted:?}");
        }
    }
    // Narrowed by direction: the origin holds it as sent, not received.
    let mut inbound = wanting(Wanted::parse("查找1").unwrap());
    inbound.direction = Some(Direction::Inbound);
    let none = search(&here, &clerk, inbound, Page::new(10, None))
        .await
        .unwrap();
    assert!(none.rows.is_empty());
    // By district name (one district has it) and by an ambiguous one.
    let mut by_place = wanting(Wanted::Any);
    by_place.district = "双流区".into();
    let found = search(&here, &clerk, by_place.clone(), Page::new(10, None))
        .await
        .unwrap();
    assert_eq!(found.rows.len(), 3);
    by_place.district = "朝阳区".into();
    let e = search(&here, &clerk, by_place, Page::new(10, None))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("district"), "{e}");

    // 已办: the signed one (latest) then the answered one; not the third.
    let done = handled(&there, &clerk, Page::new(10, None)).await.unwrap();
    let ids: Vec<&str> = done.rows.iter().map(|r| r.id()).collect();
    assert_eq!(ids, [sent[2].id.as_str(), sent[1].id.as_str()]);
    // Paged: one at a time, the second page holds the other.
    let first = handled(&there, &clerk, Page::new(1, None)).await.unwrap();
    let second = handled(&there, &clerk, Page::new(1, first.next.clone()))
        .await
        .unwrap();
    assert_eq!(second.rows[0].id(), sent[1].id);

    // Monitors have neither, and are refused without a trace of the person.
    let monitor = caller(Role::Monitor);
    assert!(
        search(&there, &monitor, wanting(Wanted::Any), Page::new(10, None))
            .await
            .is_err()
    );
    assert!(
        handled(&there, &monitor, Page::new(10, None))
            .await
            .is_err()
    );

    // The audit: the searches, and a search for someone not on file.
    let stranger = woman(99);
    let found = search(
        &there,
        &clerk,
        wanting(Wanted::parse(&stranger).unwrap()),
        Page::new(10, None),
    )
    .await
    .unwrap();
    assert!(found.rows.is_empty());
    let entries = |id: String| {
        let ctx = there.clone();
        async move {
            ctx.store
                .audit_entries(&migrex::store::AuditQuery {
                    subject: Some(ctx.audit_key.hash(&id)),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let ops: Vec<String> = entries(id_number)
        .await
        .into_iter()
        .map(|e| e.operation)
        .collect();
    assert!(ops.iter().any(|o| o == "notice.search"), "{ops:?}");
    assert!(ops.iter().any(|o| o == "notice.handled"), "{ops:?}");
    let ops: Vec<String> = entries(stranger)
        .await
        .into_iter()
        .map(|e| e.operation)
        .collect();
    assert_eq!(ops, ["notice.search (none found)"]);
}
