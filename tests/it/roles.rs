//! Issue 10, item 4: least privilege. A monitor never receives a full ID
//! number or a name from any call; clerks answer but do not withdraw;
//! supervisors withdraw; tokens have ids, expire, and a revocation through
//! the node takes effect at once.

use crate::common::*;
use migrex::auth::Role;
use migrex::clock::{Clock, ManualClock};
use migrex::pb;
use prost::Message;
use tonic::Code;

/// Whether `bytes` hold `needle` anywhere.
fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_never_receives_a_full_id_number_or_a_name() {
    let clock = ManualClock::new(time::macros::datetime!(2026-10-05 09:00 +8));
    let net = network(&[LUOHU, SHUANGLIU], Some(clock.clone())).await;
    let mut people = Vec::new();
    for i in 0..3 {
        let n = submit(&net, 0, birth(SHUANGLIU, woman(60 + i), "2026-10-03")).await;
        people.push(n.subject.clone().unwrap().id_number);
        wait_notice(&net, 0, &n.id, |x| x.received_at.is_some()).await;
    }
    let back = submit(&net, 1, marriage(LUOHU, man(70), "2026-09-30")).await;
    people.push(back.subject.clone().unwrap().id_number);
    wait_notice(&net, 1, &back.id, |x| x.received_at.is_some()).await;
    // Past every deadline: the overdue lists are full.
    clock.advance(time::Duration::days(45));

    for node in 0..2 {
        let token = migrex::setup::create_token(&net.store(node), "city.monitor", Role::Monitor)
            .await
            .unwrap();
        let url = &net.nodes[node].desk_url;
        let mut desk = migrex::client::connect(url, &net.ca_pem, &token)
            .await
            .unwrap();
        let mut stats = migrex::client::connect_stats(url, &net.ca_pem, &token)
            .await
            .unwrap();
        let mut seen = Vec::new();
        let list = desk
            .list_notices(pb::ListNoticesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(!list.notices.is_empty());
        for n in &list.notices {
            let s = n.subject.clone().unwrap();
            assert!(s.id_number.contains("********"), "masked: {}", s.id_number);
            // Only the district and the check character remain, and
            // nothing beside them gives the birth date or the sex back.
            assert_eq!(
                s.id_number.chars().filter(|c| *c != '*').count(),
                7,
                "{}",
                s.id_number
            );
            assert!(s.birth_date.is_empty() && s.sex == 0, "{s:?}");
            assert!(
                s.name.is_empty() && n.details.is_none(),
                "no name, no details"
            );
        }
        seen.extend(list.encode_to_vec());
        let overdue = stats
            .list_overdue(pb::ListOverdueRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(!overdue.notices.is_empty(), "something is overdue");
        seen.extend(overdue.encode_to_vec());
        // The same reads through the CLI, and the monthly report in both
        // formats: what a monitor can print or save.
        let config = net.nodes[node].config_path.to_str().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let mut cli: Vec<Vec<String>> = vec![
            vec!["notices".into(), "--json".into()],
            vec!["overdue".into(), "--json".into()],
            vec!["notices".into()],
        ];
        for format in ["csv", "html"] {
            let out = dir.path().join(format!("report.{format}"));
            cli.push(vec![
                "report".into(),
                "--period".into(),
                "2026-10".into(),
                "--format".into(),
                format.into(),
                "--out".into(),
                out.to_str().unwrap().into(),
            ]);
        }
        for args in &cli {
            let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
            all.extend(["--config", &config, "--token", &token]);
            let out = migrex_cli(&all);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if args[0] == "notices" {
                assert!(holds(&out.stdout, "*****"), "{args:?} lists notices");
            }
            seen.extend(&out.stdout);
        }
        for format in ["csv", "html"] {
            let report = std::fs::read(dir.path().join(format!("report.{format}"))).unwrap();
            assert!(report.len() > 100, "a {format} report was written");
            seen.extend(report);
        }
        for p in &people {
            assert!(!holds(&seen, p), "a full ID number reached the monitor");
        }
        assert!(!holds(&seen, "王芳"), "a name reached the monitor");
        for p in &people {
            let born = &p[6..14];
            let dashed = format!("{}-{}-{}", &born[..4], &born[4..6], &born[6..]);
            assert!(
                !holds(&seen, born) && !holds(&seen, &dashed),
                "a birth date reached the monitor"
            );
        }
        // The monitor's reads are in the access audit, marked masked.
        let out = migrex_cli(&[
            "audit",
            "show",
            "--config",
            &config,
            "--token",
            "city.monitor",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            entries
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["operation"] == "notice.list (masked)"),
            "{entries}"
        );

        let id = list.notices[0].id.clone();
        let refusals = [
            desk.get_notice(pb::GetNoticeRequest { id: id.clone() })
                .await
                .unwrap_err()
                .code(),
            desk.list_pending(pb::ListPendingRequest::default())
                .await
                .unwrap_err()
                .code(),
            desk.list_notices(pb::ListNoticesRequest {
                subject_id_number: people[0].clone(),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
            desk.acknowledge_notice(pb::AcknowledgeNoticeRequest { id })
                .await
                .unwrap_err()
                .code(),
        ];
        assert_eq!(refusals, [Code::PermissionDenied; 4], "node {node}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerks_answer_supervisors_withdraw_and_tokens_end() {
    let clock = ManualClock::new(time::macros::datetime!(2026-10-05 09:00 +8));
    let net = network(&[LUOHU, SHUANGLIU], Some(clock.clone())).await;
    let url = &net.nodes[0].desk_url;
    let store = net.store(0);
    let clerk = migrex::setup::create_token(&store, "wang.wu", Role::Clerk)
        .await
        .unwrap();
    let supervisor = migrex::setup::create_token(&store, "chen.jie", Role::Supervisor)
        .await
        .unwrap();
    let mut clerk_desk = migrex::client::connect(url, &net.ca_pem, &clerk)
        .await
        .unwrap();
    let sent = clerk_desk
        .submit_notice(pb::SubmitNoticeRequest {
            notice: Some(birth(SHUANGLIU, woman(80), "2026-10-03")),
        })
        .await
        .expect("a clerk sends")
        .into_inner();
    let withdraw = pb::WithdrawNoticeRequest {
        id: sent.id.clone(),
        reason: "登记有误".into(),
    };
    let e = clerk_desk
        .withdraw_notice(withdraw.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().starts_with("role:"), "{}", e.message());
    let still = get(&net, 0, &sent.id).await.unwrap();
    assert!(still.withdrawn_at.is_none(), "the refusal changed nothing");
    let mut sup_desk = migrex::client::connect(url, &net.ca_pem, &supervisor)
        .await
        .unwrap();
    let w = sup_desk
        .withdraw_notice(withdraw)
        .await
        .expect("a supervisor withdraws");
    assert!(w.into_inner().withdrawn_at.is_some());

    // A token that expires: it works until then, by the node's clock.
    let expires = clock.now() + time::Duration::hours(1);
    let (id, temp) = migrex::setup::issue_token(&store, "temp.help", Role::Clerk, Some(expires))
        .await
        .unwrap();
    let mut temp_desk = migrex::client::connect(url, &net.ca_pem, &temp)
        .await
        .unwrap();
    temp_desk
        .list_pending(pb::ListPendingRequest::default())
        .await
        .expect("valid until it expires");
    clock.advance(time::Duration::minutes(61));
    let e = temp_desk
        .list_pending(pb::ListPendingRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "expired");
    let listed = store.list_tokens().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t.id == id && t.expires_at == Some(expires))
    );

    // Revoked by id through the node: refused at once, not after a minute.
    let clerk_id = listed.iter().find(|t| t.name == "wang.wu").unwrap().id;
    clerk_desk
        .list_pending(pb::ListPendingRequest::default())
        .await
        .expect("works before");
    let ctx = &net.nodes[0].running.as_ref().unwrap().ctx;
    let admin = migrex::auth::Caller {
        name: "admin".into(),
        role: Role::Admin,
        token: None,
        address: "127.0.0.1".into(),
    };
    migrex::service::admin::revoke_token(ctx, &admin, clerk_id)
        .await
        .unwrap();
    let e = clerk_desk
        .list_pending(pb::ListPendingRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "refused at once");
    // Other tokens are untouched.
    sup_desk
        .list_pending(pb::ListPendingRequest::default())
        .await
        .expect("the supervisor's token still works");
}

/// Notices in every state a clerk meets, on both sides, each needing
/// feedback: at Shuangliu (inbound) pending, signed, answered, withdrawn;
/// at Luohu (outbound) the same four as the origin holds them.
async fn every_state(net: &Net, k: &mut u32) -> Vec<(usize, String, &'static str)> {
    let mut ids = Vec::new();
    for _ in 0..4 {
        *k += 1;
        let mut n = birth(SHUANGLIU, woman(*k), "2026-10-03");
        n.category = migrex::domain::Category::VerificationRequest as i32;
        n.reply_required = migrex::domain::ReplySort::Feedback as i32;
        let n = submit(net, 0, n).await;
        wait_notice(net, 0, &n.id, |x| x.received_at.is_some()).await;
        ids.push(n.id);
    }
    let mut there = net.desk(1).await.unwrap();
    there
        .acknowledge_notice(pb::AcknowledgeNoticeRequest { id: ids[1].clone() })
        .await
        .unwrap();
    there
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: ids[2].clone(),
            feedback: Some(pb::Feedback {
                result: migrex::domain::FeedbackResult::Confirmed as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    net.desk(0)
        .await
        .unwrap()
        .withdraw_notice(pb::WithdrawNoticeRequest {
            id: ids[3].clone(),
            reason: "登记错误".into(),
        })
        .await
        .unwrap();
    use migrex::domain::NoticeStatus::*;
    wait_notice(net, 0, &ids[1], |x| x.status == Acknowledged as i32).await;
    wait_notice(net, 0, &ids[2], |x| x.status == Answered as i32).await;
    wait_notice(net, 1, &ids[3], |x| x.status == Withdrawn as i32).await;
    let names = ["pending", "signed", "answered", "withdrawn"];
    let mut out = Vec::new();
    for (id, name) in ids.iter().zip(names) {
        out.push((1, id.clone(), name));
        out.push((0, id.clone(), name));
    }
    out
}

/// Issue 22, item 12: the console's pages offer 签收, 核查反馈 and 撤回 by
/// asking the service (`service::replies::actions`); for every role and a
/// notice in every state on both sides, an action is offered exactly when
/// the service takes it (changes the notice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_is_offered_exactly_when_the_service_takes_it() {
    use migrex::auth::Caller;
    use migrex::service::replies;
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let mut k = 500;
    let mut offered_somewhere = 0;
    for role in [Role::Clerk, Role::Supervisor, Role::Monitor, Role::Admin] {
        for action in ["sign", "answer", "withdraw", "remind"] {
            for (node, id, state) in every_state(&net, &mut k).await {
                let ctx = net.nodes[node].running.as_ref().unwrap().ctx.clone();
                let caller = Caller {
                    name: "tester".into(),
                    role,
                    token: None,
                    address: String::new(),
                };
                let before = ctx.store.get_notice(&id).await.unwrap().unwrap();
                let offered = replies::actions(&ctx, &caller, &before);
                let uuid = id.parse().unwrap();
                let (offer, taken) = match action {
                    "sign" => (
                        offered.sign,
                        replies::acknowledge(&ctx, &caller, uuid).await,
                    ),
                    "answer" => {
                        let answer = pb::Feedback {
                            result: migrex::domain::FeedbackResult::Confirmed as i32,
                            ..Default::default()
                        };
                        (
                            offered.answer,
                            replies::feedback(&ctx, &caller, uuid, &answer).await,
                        )
                    }
                    "withdraw" => (
                        offered.withdraw,
                        replies::withdraw(&ctx, &caller, uuid, "").await,
                    ),
                    // None is late here: 催办 is never offered nor taken
                    // (tests/it/reminders.rs moves the clock).
                    _ => (offered.remind, replies::remind(&ctx, &caller, uuid).await),
                };
                let after = ctx.store.get_notice(&id).await.unwrap().unwrap();
                let changed = taken.is_ok() && after.life != before.life;
                let side = if node == 0 { "origin" } else { "destination" };
                assert_eq!(offer, changed, "{role:?} {action} at the {side}, {state}");
                offered_somewhere += usize::from(offer);
            }
        }
    }
    // Clerks, supervisors and admins sign and answer the pending one and
    // answer the signed one; supervisors and admins withdraw two.
    assert_eq!(offered_somewhere, 3 * 3 + 2 * 2);
}
