//! SPEC.md section 3: notices of every kind cross between real nodes and
//! their replies come back; receipt is idempotent; identity is enforced.

use crate::common::*;
use migrex::clock::SystemClock;
use migrex::domain::{Direction, FeedbackResult, NoticeStatus, ReplySort};
use migrex::pb;
use tonic::Code;

fn origin_part(n: &pb::Notice) -> pb::Notice {
    pb::Notice {
        id: n.id.clone(),
        origin: n.origin.clone(),
        destination: n.destination.clone(),
        kind: n.kind,
        category: n.category,
        subject: n.subject.clone(),
        urgency: n.urgency,
        reply_required: n.reply_required,
        event_date: n.event_date.clone(),
        details: n.details.clone(),
        remarks: n.remarks.clone(),
        created_at: n.created_at,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_of_each_kind_crosses_and_its_reply_comes_back() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let sent = vec![
        submit(&net, 0, birth(SHUANGLIU, woman(1), "2026-10-03")).await,
        submit(&net, 0, pregnancy(SHUANGLIU, woman(2), "2026-10-20")).await,
        submit(&net, 0, marriage(SHUANGLIU, woman(3), "2026-09-30")).await,
        submit(&net, 0, contraception(SHUANGLIU, woman(4), "2026-08-01")).await,
    ];
    let back = submit(&net, 1, marriage(LUOHU, man(5), "2026-09-01")).await;
    // Registered as outbound; a worker woken by an earlier submission may
    // already have delivered a later one by the time it is read back.
    assert!(
        sent.iter()
            .all(|n| n.direction == Direction::Outbound as i32
                && [NoticeStatus::Queued as i32, NoticeStatus::Delivered as i32]
                    .contains(&n.status))
    );

    for n in &sent {
        let at_origin = wait_notice(&net, 0, &n.id, |x| x.received_at.is_some()).await;
        assert_eq!(at_origin.status, NoticeStatus::Delivered as i32);
        let at_dest = get(&net, 1, &n.id)
            .await
            .expect("stored at the destination");
        assert_eq!(
            origin_part(&at_dest),
            origin_part(&at_origin),
            "every field round-trips"
        );
        assert_eq!(at_dest.direction, Direction::Inbound as i32);
        assert_eq!(at_dest.status, NoticeStatus::Pending as i32);
        assert_eq!(
            (at_dest.received_at, at_dest.due_at),
            (at_origin.received_at, at_origin.due_at),
            "both sides hold the same deadline"
        );
    }
    let at_luohu = wait_notice(&net, 1, &back.id, |x| x.received_at.is_some()).await;
    assert_eq!(
        origin_part(&get(&net, 0, &back.id).await.unwrap()),
        origin_part(&at_luohu)
    );

    let pending = net
        .desk(1)
        .await
        .unwrap()
        .list_pending(pb::ListPendingRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notices;
    assert_eq!(pending.len(), 4);
    assert!(
        pending
            .windows(2)
            .all(|w| w[0].due_at.unwrap().seconds <= w[1].due_at.unwrap().seconds),
        "oldest deadline first"
    );
    assert_eq!(
        pending[0].id, sent[1].id,
        "the urgent verification request (15 days) comes first"
    );

    let mut desk = net.desk(1).await.unwrap();
    // The marriage notification needs a receipt only.
    assert_eq!(sent[2].reply_required, ReplySort::Receipt as i32);
    let signed = desk
        .acknowledge_notice(pb::AcknowledgeNoticeRequest {
            id: sent[2].id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.status, NoticeStatus::Acknowledged as i32);
    let answers = [
        (0, FeedbackResult::Confirmed, vec![], ""),
        (
            1,
            FeedbackResult::Corrected,
            vec![("pregnancy.gestational_weeks", "11")],
            "",
        ),
        (3, FeedbackResult::NotResponsible, vec![], "510104"),
    ];
    for (i, result, corrections, responsible) in &answers {
        let fb = pb::Feedback {
            result: *result as i32,
            remarks: "已入户核实".into(),
            corrections: corrections
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            responsible_district: responsible.to_string(),
            ..Default::default()
        };
        let answered = desk
            .submit_feedback(pb::SubmitFeedbackRequest {
                id: sent[*i].id.clone(),
                feedback: Some(fb),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answered.status, NoticeStatus::Answered as i32);
    }

    let receipt = wait_notice(&net, 0, &sent[2].id, |x| {
        x.status == NoticeStatus::Acknowledged as i32
    })
    .await;
    assert_eq!(receipt.acknowledged_at, signed.acknowledged_at);
    assert_eq!(receipt.acknowledged_by, "admin");
    assert_eq!(receipt.timely, Some(true));
    for (i, result, corrections, responsible) in &answers {
        let n = wait_notice(&net, 0, &sent[*i].id, |x| {
            x.status == NoticeStatus::Answered as i32
        })
        .await;
        let at_dest = get(&net, 1, &sent[*i].id).await.unwrap();
        let f = n.feedback.clone().expect("feedback came back");
        assert_eq!(
            Some(f.clone()),
            at_dest.feedback,
            "feedback is the same on both sides"
        );
        assert_eq!(f.result, *result as i32);
        assert_eq!(f.corrections.len(), corrections.len());
        assert_eq!(f.responsible_district, *responsible);
        assert_eq!(f.answered_by, "admin");
        assert_eq!(
            n.acknowledged_at, f.answered_at,
            "feedback counts as receipt"
        );
        assert_eq!(n.timely, Some(true));
    }
    let still_pending = net
        .desk(1)
        .await
        .unwrap()
        .list_pending(pb::ListPendingRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notices;
    assert!(
        still_pending.is_empty(),
        "every notice has its reply: {still_pending:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_notice_leaves_the_destination_pending_list() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let n = submit(&net, 0, birth(SHUANGLIU, woman(9), "2026-10-03")).await;
    wait_notice(&net, 1, &n.id, |x| x.status == NoticeStatus::Pending as i32).await;
    let w = net
        .desk(0)
        .await
        .unwrap()
        .withdraw_notice(pb::WithdrawNoticeRequest {
            id: n.id.clone(),
            reason: "登记有误".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.status, NoticeStatus::Withdrawn as i32);
    let at_dest = wait_notice(&net, 1, &n.id, |x| {
        x.status == NoticeStatus::Withdrawn as i32
    })
    .await;
    assert_eq!(at_dest.withdraw_reason, "登记有误");
    assert_eq!(at_dest.withdrawn_at, w.withdrawn_at);
    let pending = net
        .desk(1)
        .await
        .unwrap()
        .list_pending(pb::ListPendingRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notices;
    assert!(pending.iter().all(|p| p.id != n.id));
    // A reply to a withdrawn notice is refused.
    let err = net
        .desk(1)
        .await
        .unwrap()
        .acknowledge_notice(pb::AcknowledgeNoticeRequest { id: n.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_is_idempotent_conflicts_are_refused_and_duplicate_events_flagged() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let mut peer = exchange_as(&net, 0, 1).await;
    let first = wire(
        birth(SHUANGLIU, woman(1), "2026-10-03"),
        LUOHU,
        &SystemClock,
    );
    let deliver = |n: Vec<pb::Notice>| pb::DeliverNoticesRequest {
        notices: signed(&net, 0, n),
        batch: None,
    };

    let a1 = peer
        .deliver_notices(deliver(vec![first.clone()]))
        .await
        .unwrap()
        .into_inner()
        .acks;
    assert!(a1[0].error.is_none(), "{:?}", a1[0].error);
    let a2 = peer
        .deliver_notices(deliver(vec![first.clone()]))
        .await
        .unwrap()
        .into_inner()
        .acks;
    // Signed again for this call (each call is its own batch), the same
    // instants.
    let unsigned = |a: &[pb::NoticeAck]| -> Vec<pb::NoticeAck> {
        a.iter()
            .map(|a| {
                assert!(a.proof.is_some(), "the acknowledgement is signed");
                pb::NoticeAck {
                    proof: None,
                    ..a.clone()
                }
            })
            .collect()
    };
    assert_eq!(
        unsigned(&a1),
        unsigned(&a2),
        "redelivery returns the original acknowledgement"
    );

    let mut changed = first.clone();
    changed.remarks = "other content".into();
    let a3 = peer
        .deliver_notices(deliver(vec![changed]))
        .await
        .unwrap()
        .into_inner()
        .acks;
    let e = a3[0]
        .error
        .clone()
        .expect("same id, other content: refused");
    assert_eq!(e.code, Code::AlreadyExists as i32);
    assert_eq!(e.field, "notice.id");

    // The same event (subject, kind, event date) under a new id: stored, flagged.
    let again = wire(
        birth(SHUANGLIU, woman(1), "2026-10-03"),
        LUOHU,
        &SystemClock,
    );
    let a4 = peer
        .deliver_notices(deliver(vec![again.clone()]))
        .await
        .unwrap()
        .into_inner()
        .acks;
    assert!(a4[0].error.is_none());
    let dup = get(&net, 1, &again.id).await.unwrap();
    assert_eq!(dup.duplicate_of, first.id);
    assert!(
        get(&net, 1, &first.id)
            .await
            .unwrap()
            .duplicate_of
            .is_empty()
    );

    let stored = net
        .store(1)
        .count_notices(Direction::Inbound)
        .await
        .unwrap();
    assert_eq!(stored, 2, "the conflicting redelivery stored nothing");
    let kept = get(&net, 1, &first.id).await.unwrap();
    assert_eq!(kept.remarks, first.remarks, "the original content is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_speaks_only_for_its_own_district() {
    let net = network(&[LUOHU, SHUANGLIU, WANCHENG], None).await;
    let store_of = |i: usize| net.nodes[i].running.as_ref().unwrap().ctx.store.clone();

    // Wancheng's certificate, a notice claiming to come from Luohu.
    let mut wancheng = exchange_as(&net, 2, 1).await;
    let forged = wire(
        birth(SHUANGLIU, woman(1), "2026-10-03"),
        LUOHU,
        &SystemClock,
    );
    let acks = wancheng
        .deliver_notices(pb::DeliverNoticesRequest {
            notices: vec![forged.clone()],
            batch: None,
        })
        .await
        .unwrap()
        .into_inner()
        .acks;
    let e = acks[0].error.clone().expect("refused");
    assert_eq!(e.code, Code::PermissionDenied as i32);
    assert_eq!(e.field, "notice.origin");
    assert_eq!(
        store_of(1).count_notices(Direction::Inbound).await.unwrap(),
        0,
        "nothing stored"
    );

    // Feedback on a Luohu → Shuangliu notice, written by Wancheng, sent to Luohu.
    let n = submit(&net, 0, birth(SHUANGLIU, woman(2), "2026-10-03")).await;
    wait_notice(&net, 0, &n.id, |x| x.received_at.is_some()).await;
    let feedback = |author: &str| pb::Reply {
        reply_id: uuid::Uuid::new_v4().to_string(),
        notice_id: n.id.clone(),
        author: author.into(),
        body: Some(pb::reply::Body::Feedback(pb::Feedback {
            result: FeedbackResult::Confirmed as i32,
            answered_by: "x".into(),
            answered_at: n.created_at,
            ..Default::default()
        })),
        recipient: String::new(),
        proof: None,
    };
    let mut to_luohu = exchange_as(&net, 2, 0).await;
    for author in [WANCHENG, SHUANGLIU] {
        let acks = to_luohu
            .deliver_replies(pb::DeliverRepliesRequest {
                replies: vec![feedback(author)],
                batch: None,
            })
            .await
            .unwrap()
            .into_inner()
            .acks;
        assert_eq!(
            acks[0].error.as_ref().map(|e| e.code),
            Some(Code::PermissionDenied as i32),
            "author {author}"
        );
    }
    let at_origin = get(&net, 0, &n.id).await.unwrap();
    assert_eq!(
        at_origin.status,
        NoticeStatus::Delivered as i32,
        "nothing changed"
    );
    assert!(at_origin.feedback.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let other = create(&[LUOHU], fast_delivery()).await; // its own, different CA
    let rogue = node_tls(&other, 0);
    // Trust the real network's CA so that only our client certificate is wrong.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&net.ca_pem))
        .identity(tonic::transport::Identity::from_pem(
            &rogue.cert_pem,
            &rogue.key_pem,
        ));
    let result = async {
        let ch = tonic::transport::Endpoint::from_shared(net.nodes[1].exchange_url.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await?;
        let mut c = pb::exchange_client::ExchangeClient::new(ch);
        let n = wire(
            birth(SHUANGLIU, woman(1), "2026-10-03"),
            LUOHU,
            &SystemClock,
        );
        c.deliver_notices(pb::DeliverNoticesRequest {
            notices: vec![n],
            batch: None,
        })
        .await
        .map_err(|s| -> Box<dyn std::error::Error> { Box::new(s) })?;
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    assert!(
        result.is_err(),
        "a client certificate from another CA must not get through"
    );
    let stored = net
        .store(1)
        .count_notices(Direction::Inbound)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_on_both_grpc_listeners() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let desk = migrex::client::channel(&net.nodes[0].desk_url, &net.ca_pem)
        .await
        .unwrap();
    let exchange = peer_channel(&node_tls(&net, 1), &net.nodes[0].exchange_url).await;

    for (channel, service) in [
        (desk.clone(), "migrex.v1.Desk"),
        (desk.clone(), "migrex.v1.Stats"),
        (exchange.clone(), "migrex.v1.Exchange"),
    ] {
        let r = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service}");
    }
    for (channel, expected) in [(desk, "migrex.v1.Desk"), (exchange, "migrex.v1.Exchange")] {
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            stream.message().await.unwrap().unwrap().message_response
        else {
            panic!("no service list");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(names.iter().any(|n| n == expected), "{names:?}");
        assert!(
            names.iter().any(|n| n == "grpc.health.v1.Health"),
            "{names:?}"
        );
    }
    // Stats answers on the desk listener, behind the token.
    let mut stats = net.stats(0).await.unwrap();
    let e = stats
        .get_timeliness(pb::GetTimelinessRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "a period is required");
    assert!(e.message().starts_with("period:"), "{}", e.message());
    let r = stats
        .get_timeliness(pb::GetTimelinessRequest {
            period: "2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.rows.len(), 1);
}
