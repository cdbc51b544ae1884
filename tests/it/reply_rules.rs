//! SPEC.md section 3, guarantee 6: replies are final and dated honestly.
//! Every refused reply, whether a peer sends it over the exchange with its
//! real certificate or a clerk tries it at the desk, changes nothing: not
//! the notice on either side, not the timeliness figures.

use crate::common::*;
use migrex::domain::{Direction, FeedbackResult, NoticeStatus, ts_to_pb};
use migrex::pb;
use prost_types::Timestamp;
use tonic::Code;

const ORIGIN: usize = 0;
const DEST: usize = 1;

fn reply(notice_id: &str, author: &str, body: pb::reply::Body) -> pb::Reply {
    pb::Reply {
        reply_id: uuid::Uuid::new_v4().to_string(),
        notice_id: notice_id.into(),
        author: author.into(),
        body: Some(body),
        recipient: String::new(),
        proof: None,
    }
}

fn feedback(result: FeedbackResult, at: Option<Timestamp>) -> pb::reply::Body {
    pb::reply::Body::Feedback(pb::Feedback {
        result: result as i32,
        remarks: "rewritten".into(),
        answered_by: "someone".into(),
        answered_at: at,
        ..Default::default()
    })
}

fn receipt(at: Option<Timestamp>) -> pb::reply::Body {
    pb::reply::Body::Receipt(pb::Receipt {
        acknowledged_at: at,
        acknowledged_by: "someone".into(),
    })
}

fn withdrawal() -> pb::reply::Body {
    pb::reply::Body::Withdrawal(pb::Withdrawal {
        withdrawn_at: Some(ts_to_pb(time::OffsetDateTime::now_utc())),
        reason: "too late".into(),
    })
}

fn shifted(t: Option<Timestamp>, seconds: i64) -> Option<Timestamp> {
    t.map(|t| Timestamp {
        seconds: t.seconds + seconds,
        nanos: t.nanos,
    })
}

/// Sends one reply from node `from` to node `to` with `from`'s certificate;
/// returns the item error's code and field.
async fn deliver(net: &LocalNetwork, from: usize, to: usize, r: pb::Reply) -> (i32, String) {
    let acks = exchange_as(net, from, to)
        .await
        .deliver_replies(pb::DeliverRepliesRequest {
            replies: signed_replies(net, from, vec![r]),
            batch: None,
        })
        .await
        .expect("the call itself succeeds")
        .into_inner()
        .acks;
    let e = acks[0].error.clone().expect("the reply is refused");
    (e.code, e.field)
}

/// Both nodes' timeliness figures by peer and kind, this month and every direction.
async fn figures(net: &LocalNetwork) -> Vec<Vec<pb::TimelinessRow>> {
    let mut all = Vec::new();
    let today = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+8));
    let month = format!("{}-{:02}", today.year(), today.month() as u8);
    for node in [ORIGIN, DEST] {
        for direction in [Direction::Inbound, Direction::Outbound] {
            all.push(timeliness_rows(net, node, &month, direction, true, true).await);
        }
    }
    all
}

/// Each notice as both nodes hold it.
async fn states(net: &LocalNetwork, ids: &[&str]) -> Vec<pb::Notice> {
    let mut out = Vec::new();
    for id in ids {
        for node in [ORIGIN, DEST] {
            out.push(get(net, node, id).await.expect("stored"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_replies_change_nothing_on_either_side() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let clerk = net.desk(DEST).await.unwrap();
    let sender = net.desk(ORIGIN).await.unwrap();

    // answered: signed for and answered CORRECTED at the destination.
    let answered = submit(&net, ORIGIN, birth(SHUANGLIU, woman(1), "2026-10-03")).await;
    wait_notice(&net, DEST, &answered.id, |_| true).await;
    clerk
        .clone()
        .acknowledge_notice(pb::AcknowledgeNoticeRequest {
            id: answered.id.clone(),
        })
        .await
        .unwrap();
    clerk
        .clone()
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: answered.id.clone(),
            feedback: Some(pb::Feedback {
                result: FeedbackResult::Corrected as i32,
                corrections: [("subject.name".to_string(), "王芳芳".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    // withdrawn: delivered, then withdrawn by the origin.
    let withdrawn = submit(&net, ORIGIN, birth(SHUANGLIU, woman(2), "2026-10-04")).await;
    wait_notice(&net, DEST, &withdrawn.id, |_| true).await;
    sender
        .clone()
        .withdraw_notice(pb::WithdrawNoticeRequest {
            id: withdrawn.id.clone(),
            reason: "registered twice".into(),
        })
        .await
        .unwrap();
    // open: delivered, not replied to.
    let open = submit(&net, ORIGIN, birth(SHUANGLIU, woman(3), "2026-10-05")).await;
    let open_at_origin = wait_notice(&net, ORIGIN, &open.id, |x| x.received_at.is_some()).await;
    wait_notice(&net, ORIGIN, &answered.id, |x| {
        x.status == NoticeStatus::Answered as i32
    })
    .await;
    wait_notice(&net, DEST, &withdrawn.id, |x| {
        x.status == NoticeStatus::Withdrawn as i32
    })
    .await;
    // And the origin has recorded that the destination took the
    // withdrawal: from then on an answer cannot have crossed it
    // (docs/protocol.md §6).
    eventually(
        "the origin's outbox empty",
        std::time::Duration::from_secs(10),
        || async {
            let counts = net.store(ORIGIN).outbox_counts().await.unwrap();
            counts.iter().all(|c| c.waiting == 0).then_some(())
        },
    )
    .await;
    let ids = [
        answered.id.as_str(),
        withdrawn.id.as_str(),
        open.id.as_str(),
    ];
    let before = states(&net, &ids).await;
    let figures_before = figures(&net).await;

    // Through the exchange, with the destination's real certificate.
    let now = Some(ts_to_pb(time::OffsetDateTime::now_utc()));
    let received = open_at_origin.received_at;
    let precondition = Code::FailedPrecondition as i32;
    let invalid = Code::InvalidArgument as i32;
    let cases = [
        (
            "a second feedback",
            reply(
                &answered.id,
                SHUANGLIU,
                feedback(FeedbackResult::NotFound, now),
            ),
            precondition,
            "reply.notice_id",
        ),
        (
            "a second receipt",
            reply(&answered.id, SHUANGLIU, receipt(now)),
            precondition,
            "reply.notice_id",
        ),
        (
            "feedback after the withdrawal",
            reply(
                &withdrawn.id,
                SHUANGLIU,
                feedback(FeedbackResult::Confirmed, now),
            ),
            precondition,
            "reply.notice_id",
        ),
        (
            "a receipt after the withdrawal",
            reply(&withdrawn.id, SHUANGLIU, receipt(now)),
            precondition,
            "reply.notice_id",
        ),
        (
            "feedback dated before the notice arrived",
            reply(
                &open.id,
                SHUANGLIU,
                feedback(FeedbackResult::Confirmed, shifted(received, -1)),
            ),
            invalid,
            "reply.feedback.answered_at",
        ),
        (
            "a receipt dated before the notice arrived",
            reply(&open.id, SHUANGLIU, receipt(shifted(received, -3600))),
            invalid,
            "reply.receipt.acknowledged_at",
        ),
        (
            "feedback dated beyond the clock-skew tolerance",
            reply(
                &open.id,
                SHUANGLIU,
                feedback(FeedbackResult::Confirmed, shifted(now, 2 * 86_400)),
            ),
            invalid,
            "reply.feedback.answered_at",
        ),
    ];
    for (what, r, code, field) in cases {
        assert_eq!(
            deliver(&net, DEST, ORIGIN, r).await,
            (code, field.to_string()),
            "{what}"
        );
    }

    // Through the desk, as the clerks of either side.
    let desk_refusals = [
        (
            "a second feedback",
            clerk
                .clone()
                .submit_feedback(pb::SubmitFeedbackRequest {
                    id: answered.id.clone(),
                    feedback: Some(pb::Feedback {
                        result: FeedbackResult::NotFound as i32,
                        ..Default::default()
                    }),
                })
                .await,
        ),
        (
            "feedback after the withdrawal",
            clerk
                .clone()
                .submit_feedback(pb::SubmitFeedbackRequest {
                    id: withdrawn.id.clone(),
                    feedback: Some(pb::Feedback {
                        result: FeedbackResult::Confirmed as i32,
                        ..Default::default()
                    }),
                })
                .await,
        ),
        (
            "a receipt after the withdrawal",
            clerk
                .clone()
                .acknowledge_notice(pb::AcknowledgeNoticeRequest {
                    id: withdrawn.id.clone(),
                })
                .await,
        ),
        (
            "a withdrawal after the answer",
            sender
                .clone()
                .withdraw_notice(pb::WithdrawNoticeRequest {
                    id: answered.id.clone(),
                    reason: String::new(),
                })
                .await,
        ),
    ];
    for (what, result) in desk_refusals {
        let e = result.expect_err(what);
        assert_eq!(
            e.code(),
            Code::FailedPrecondition,
            "{what}: {}",
            e.message()
        );
        assert!(e.message().starts_with("id:"), "{what}: {}", e.message());
    }

    assert_eq!(
        states(&net, &ids).await,
        before,
        "no notice changed on either side"
    );
    assert_eq!(figures(&net).await, figures_before, "no figure changed");
    let at_origin = get(&net, ORIGIN, &answered.id).await.unwrap();
    let f = at_origin.feedback.unwrap();
    assert_eq!(f.result, FeedbackResult::Corrected as i32);
    assert_eq!(at_origin.timely, Some(true));
    // And the untouched open notice can still be answered properly.
    let ok = exchange_as(&net, DEST, ORIGIN)
        .await
        .deliver_replies(pb::DeliverRepliesRequest {
            replies: signed_replies(&net, DEST, vec![reply(&open.id, SHUANGLIU, receipt(now))]),
            batch: None,
        })
        .await
        .unwrap()
        .into_inner()
        .acks;
    assert!(ok[0].error.is_none(), "{:?}", ok[0].error);
    // A withdrawal reaching the answered notice is no refusal: it crossed
    // the answer, is kept as late and changes no state (docs/protocol.md §6).
    let late = exchange_as(&net, ORIGIN, DEST)
        .await
        .deliver_replies(pb::DeliverRepliesRequest {
            replies: signed_replies(&net, ORIGIN, vec![reply(&answered.id, LUOHU, withdrawal())]),
            batch: None,
        })
        .await
        .unwrap()
        .into_inner()
        .acks;
    assert!(late[0].error.is_none() && late[0].late, "{:?}", late[0]);
    let at_dest = get(&net, DEST, &answered.id).await.unwrap();
    assert_eq!(at_dest.status, NoticeStatus::Answered as i32);
    assert!(at_dest.withdrawn_at.is_some(), "on record as late");
}
