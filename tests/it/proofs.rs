//! Issue 23, item 1 and the first part of item 2: every step of a notice's
//! journey is signed on the exchange (the notice by its origin, the
//! acknowledgement by its destination, each reply by its author), checked
//! before it is stored, and `migrex notice show --verify` checks it again
//! from what each node keeps, naming the step a hand-made change broke.

use crate::common::*;
use migrex::domain::{Direction, FeedbackResult, NoticeStatus};
use migrex::pb;
use tonic::Code;

/// `notice show --verify` on node `i`: (exit status, stdout, stderr).
fn verify(net: &LocalNetwork, i: usize, id: &str) -> (bool, String, String) {
    let cfg = net.nodes[i].config_path.to_string_lossy().to_string();
    let out = migrex_cli(&["notice", "show", "--config", &cfg, "--verify", id]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The steps `--verify --json` reports on node `i`, as (step kind, signer, verified).
fn steps(net: &LocalNetwork, i: usize, id: &str) -> Vec<(String, String, bool)> {
    let cfg = net.nodes[i].config_path.to_string_lossy().to_string();
    let out = migrex_cli(&["notice", "show", "--config", &cfg, "--verify", "--json", id]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let step = s["step"].as_str().unwrap();
            (
                step.split(' ').next().unwrap().to_string(),
                s["signer"].as_str().unwrap().to_string(),
                s["failure"].is_null(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_journey_is_signed_and_verifies_at_both_ends() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let desk = |i| net.desk(i);
    // A notice answered with a receipt and a feedback with corrections …
    let answered = submit(&net, 0, birth(SHUANGLIU, woman(1), "2026-10-03")).await;
    wait_notice(&net, 1, &answered.id, |_| true).await;
    desk(1)
        .await
        .unwrap()
        .acknowledge_notice(pb::AcknowledgeNoticeRequest {
            id: answered.id.clone(),
        })
        .await
        .unwrap();
    desk(1)
        .await
        .unwrap()
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: answered.id.clone(),
            feedback: Some(pb::Feedback {
                result: FeedbackResult::Corrected as i32,
                remarks: "已入户核实".into(),
                corrections: [(
                    "birth.place_of_delivery".to_string(),
                    "双流区妇幼保健院".to_string(),
                )]
                .into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    // … and one withdrawn.
    let withdrawn = submit(&net, 0, birth(SHUANGLIU, woman(2), "2026-10-04")).await;
    wait_notice(&net, 0, &withdrawn.id, |x| x.received_at.is_some()).await;
    desk(0)
        .await
        .unwrap()
        .withdraw_notice(pb::WithdrawNoticeRequest {
            id: withdrawn.id.clone(),
            reason: "登记有误".into(),
        })
        .await
        .unwrap();
    wait_notice(&net, 0, &answered.id, |x| {
        x.status == NoticeStatus::Answered as i32
    })
    .await;
    wait_notice(&net, 1, &withdrawn.id, |x| {
        x.status == NoticeStatus::Withdrawn as i32
    })
    .await;
    // The origin keeps its own proofs once the peer has taken the item:
    // wait for the withdrawal's delivery to be recorded.
    eventually(
        "the withdrawal's delivery recorded at the origin",
        std::time::Duration::from_secs(10),
        || async {
            let s = steps(&net, 0, &withdrawn.id);
            s.iter().all(|(_, _, ok)| *ok).then_some(s)
        },
    )
    .await;

    for i in [0, 1] {
        let s = steps(&net, i, &answered.id);
        let kinds: Vec<&str> = s.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            ["notice", "ack", "receipt", "feedback"],
            "node {i}: {s:?}"
        );
        assert!(s.iter().all(|(_, _, ok)| *ok), "node {i}: {s:?}");
        let signers: Vec<&str> = s.iter().map(|(_, who, _)| who.as_str()).collect();
        assert_eq!(signers, [LUOHU, SHUANGLIU, SHUANGLIU, SHUANGLIU]);
        let s = steps(&net, i, &withdrawn.id);
        let kinds: Vec<&str> = s.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(kinds, ["notice", "ack", "withdrawal"], "node {i}: {s:?}");
        assert!(s.iter().all(|(_, _, ok)| *ok), "node {i}: {s:?}");
        let (ok, table, err) = verify(&net, i, &answered.id);
        assert!(ok, "{err}");
        assert!(table.contains("已验证"), "{table}");
    }

    // The evidence file, checked on "another machine": a folder holding
    // only the file and the CA's certificate.
    let elsewhere = tempfile::tempdir().unwrap();
    let (ca, file) = (
        elsewhere.path().join("ca.crt"),
        elsewhere.path().join("evidence.json"),
    );
    std::fs::write(&ca, &net.ca_pem).unwrap();
    let cfg1 = net.nodes[1].config_path.to_string_lossy().to_string();
    let made = migrex_cli(&[
        "notice",
        "evidence",
        "--config",
        &cfg1,
        &answered.id,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Written to the access audit, keyed as the node's own entries.
    let subject = answered.subject.clone().unwrap().id_number;
    let trail = migrex_cli(&[
        "audit",
        "show",
        "--config",
        &cfg1,
        "--subject",
        &subject,
        "--json",
    ]);
    let trail = String::from_utf8_lossy(&trail.stdout).to_string();
    assert!(
        trail.contains("notice.evidence") && trail.contains("operator:"),
        "{trail}"
    );
    let chain = migrex_cli(&["audit", "verify", "--config", &cfg1, "--offline"]);
    assert!(
        chain.status.success(),
        "{}",
        String::from_utf8_lossy(&chain.stderr)
    );
    let check = |path: &std::path::Path| {
        migrex_cli(&[
            "verify",
            path.to_str().unwrap(),
            "--ca",
            ca.to_str().unwrap(),
        ])
    };
    let good = check(&file);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let table = String::from_utf8_lossy(&good.stdout).to_string();
    assert_eq!(table.matches("已验证").count(), 4, "{table}");
    // One byte changed anywhere: refused, with one line saying why.
    let bytes = std::fs::read(&file).unwrap();
    for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 10] {
        let mut changed = bytes.clone();
        changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
        let path = elsewhere.path().join(format!("changed-{at}.json"));
        std::fs::write(&path, &changed).unwrap();
        let out = check(&path);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "byte {at} changed, still verifies");
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{err}"
        );
    }
    // Another CA: nothing verifies.
    let other = create(&[LUOHU], fast_delivery()).await;
    std::fs::write(&ca, &other.ca_pem).unwrap();
    let out = check(&file);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not issued by this CA"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the CA's revocation list: once Shuangliu's certificate is on
    // it, the steps it signed no longer verify. (The list is made from a
    // copy of the CA's folder, so the running nodes never read it.)
    std::fs::write(&ca, &net.ca_pem).unwrap();
    let ca_copy = elsewhere.path().join("ca-folder");
    std::fs::create_dir_all(&ca_copy).unwrap();
    for entry in std::fs::read_dir(net.dir.path().join("ca")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), ca_copy.join(entry.file_name())).unwrap();
    }
    let now = time::OffsetDateTime::now_utc();
    let with_crl = |crl: &std::path::Path| {
        migrex_cli(&[
            "verify",
            file.to_str().unwrap(),
            "--ca",
            ca.to_str().unwrap(),
            "--crl",
            crl.to_str().unwrap(),
        ])
    };
    let empty = migrex::identity::write_crl(&ca_copy, now).unwrap();
    let out = with_crl(&empty);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    migrex::identity::revoke(
        &ca_copy,
        &migrex::identity::RevokeTarget::District(
            migrex::domain::DistrictCode::parse("d", SHUANGLIU).unwrap(),
        ),
        now,
    )
    .unwrap();
    let listed = migrex::identity::write_crl(&ca_copy, now).unwrap();
    let out = with_crl(&listed);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("revoked (on the list given with --crl)"),
        "{err}"
    );
    // A list signed by another CA is refused as such.
    let out = with_crl(&migrex::identity::write_crl(&other.dir.path().join("ca"), now).unwrap());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && err.contains("--crl:"), "{err}");

    // A receipt time moved by hand in the origin's database: the
    // acknowledgement no longer verifies there, and --verify names it.
    tamper(
        &net,
        0,
        &format!(
            "UPDATE notices SET received_at = received_at - 86400000000 WHERE id = '{}'",
            answered.id
        ),
    )
    .await;
    let (ok, table, err) = verify(&net, 0, &answered.id);
    assert!(!ok, "{table}");
    assert!(
        err.starts_with(&format!(
            "error: notice {}: step ack does not verify",
            answered.id
        )),
        "{err}"
    );
    let s = steps(&net, 0, &answered.id);
    assert_eq!(
        s.iter()
            .filter(|(_, _, ok)| !ok)
            .map(|(k, _, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["ack"],
        "only the changed step fails: {s:?}"
    );
    // The destination's copy is untouched and still verifies.
    assert!(verify(&net, 1, &answered.id).0);
    // A notice this node does not hold is a one-line error.
    let (ok, _, err) = verify(&net, 0, "0193a5c2-7d1e-7c3a-9f40-2b6f1e0c9a11");
    assert!(
        !ok && err.starts_with("error: ") && err.contains("no notice"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_not_signed_by_its_origin_is_refused_and_nothing_stored() {
    let net = network(&[LUOHU, SHUANGLIU, WANCHENG], None).await;
    let stored = || async {
        net.store(1)
            .count_notices(Direction::Inbound)
            .await
            .unwrap()
    };
    let before = stored().await;
    let from_luohu = exchange_as(&net, 0, 1).await;
    let notice = |k| {
        wire(
            birth(SHUANGLIU, woman(k), "2026-10-03"),
            LUOHU,
            &migrex::clock::SystemClock,
        )
    };
    let refused = |acks: Vec<pb::NoticeAck>| {
        let e = acks[0].error.clone().expect("refused");
        assert_eq!(e.code, Code::PermissionDenied as i32, "{}", e.message);
        assert_eq!(e.field, "notice.proof");
        e.message
    };
    let send = |n: pb::Notice| {
        let mut c = from_luohu.clone();
        async move {
            c.deliver_notices(pb::DeliverNoticesRequest {
                notices: vec![n],
                batch: None,
            })
            .await
            .unwrap()
            .into_inner()
            .acks
        }
    };
    // Unsigned: refused (no accept_unsigned in this network).
    let why = refused(send(notice(1)).await);
    assert!(why.contains("not signed"), "{why}");
    // Signed by another district's key, in its own name.
    let by_wancheng = sign_as(&node_signer(&net, 2), notice(2));
    let why = refused(send(by_wancheng).await);
    assert!(why.contains(&format!("signed by {WANCHENG}")), "{why}");
    // Signed by another district's key in Luohu's name, over Luohu's
    // connection: the signature is not Luohu's.
    let mut forged = sign_as(&node_signer(&net, 2), notice(3));
    forged.proof.as_mut().unwrap().signer = LUOHU.into();
    let why = refused(send(forged.clone()).await);
    assert!(why.contains("not by the key"), "{why}");
    // The same, with Wancheng's certificate attached as if relayed.
    forged.proof.as_mut().unwrap().certificate = node_signer(&net, 2).certificate().to_vec();
    let why = refused(send(forged).await);
    assert!(why.contains(&format!("speaks for {WANCHENG}")), "{why}");
    assert_eq!(stored().await, before, "nothing stored");
    // The call's own batch (docs/protocol.md §4.1): one signature over the
    // call, each notice its index.
    let call = |request: pb::DeliverNoticesRequest| {
        let mut c = from_luohu.clone();
        async move { c.deliver_notices(request).await.unwrap().into_inner() }
    };
    let refused_all = |r: &pb::DeliverNoticesResponse| -> Vec<String> {
        r.acks
            .iter()
            .map(|a| {
                let e = a.error.clone().expect("refused");
                assert_eq!(e.code, Code::PermissionDenied as i32, "{}", e.message);
                assert_eq!(e.field, "notice.proof");
                e.message
            })
            .collect()
    };
    // Signed by Wancheng's key in Luohu's name: every notice of it refused.
    let mut forged = call_signed_by(&node_signer(&net, 2), vec![notice(5), notice(6)]);
    forged.batch.as_mut().unwrap().signer = LUOHU.into();
    let why = refused_all(&call(forged).await);
    assert_eq!(why.len(), 2);
    assert!(why.iter().all(|w| w.contains("not by the key")), "{why:?}");
    // Luohu's batch with one notice changed after signing: the root moves,
    // and the call's notices are all refused.
    let mut changed = call_signed_by(&node_signer(&net, 0), vec![notice(7), notice(8)]);
    changed.notices[1].id = uuid::Uuid::new_v4().to_string();
    let why = refused_all(&call(changed).await);
    assert!(why.iter().all(|w| w.contains("not by the key")), "{why:?}");
    // An index without the call's signature, or one index twice.
    let mut bare = call_signed_by(&node_signer(&net, 0), vec![notice(9)]);
    bare.batch = None;
    let why = refused_all(&call(bare).await);
    assert!(why[0].contains("no batch signature"), "{why:?}");
    let mut twice = call_signed_by(&node_signer(&net, 0), vec![notice(10), notice(11)]);
    twice.notices[1].proof = twice.notices[0].proof.clone();
    let why = refused_all(&call(twice).await);
    assert!(
        why.iter().all(|w| w.contains("not in the signed batch")),
        "{why:?}"
    );
    assert_eq!(stored().await, before, "nothing stored");
    // Luohu's own call batch is taken; the acknowledgements come back as
    // one batch signed by Shuangliu, each with its index.
    let taken = call(call_signed_by(
        &node_signer(&net, 0),
        vec![notice(12), notice(13)],
    ))
    .await;
    assert!(
        taken.acks.iter().all(|a| a.error.is_none()),
        "{:?}",
        taken.acks
    );
    assert!(
        taken.acks.iter().all(|a| a
            .proof
            .as_ref()
            .is_some_and(migrex::proof::signer::is_index_only)),
        "{:?}",
        taken.acks
    );
    let acks = taken.batch.expect("the acknowledgements' batch");
    assert_eq!((acks.signer.as_str(), acks.size), (SHUANGLIU, 2));
    assert_eq!(stored().await, before + 2);
    let before = before + 2;
    // Luohu's own signature is taken.
    let good = sign_as(&node_signer(&net, 0), notice(4));
    let acks = send(good).await;
    assert!(acks[0].error.is_none(), "{:?}", acks[0].error);
    assert!(acks[0].proof.is_some(), "the acknowledgement is signed");
    assert_eq!(stored().await, before + 1);
}

/// docs/protocol.md §6: the origin withdraws while the destination answers,
/// each with the other's node down, so that the two replies cross on the
/// wire. Both end answered, the withdrawal on record as late on both sides,
/// nothing refused, and every step verifies at both ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_and_an_answer_that_cross_end_in_one_agreed_state() {
    let mut net = network(&[LUOHU, SHUANGLIU], None).await;
    let n = submit(&net, 0, birth(SHUANGLIU, woman(7), "2026-10-05")).await;
    wait_notice(&net, 0, &n.id, |x| x.received_at.is_some()).await;
    // The destination is down: the withdrawal waits at the origin.
    net.stop_node(1).await;
    let w = withdraw(&net, 0, &n.id).await;
    assert_eq!(w.status, NoticeStatus::Withdrawn as i32);
    // The origin is down: the destination answers, not knowing.
    net.stop_node(0).await;
    net.start_node(1, std::sync::Arc::new(migrex::clock::SystemClock))
        .await
        .unwrap();
    let answered = answer(&net, 1, &n.id).await;
    assert_eq!(answered.status, NoticeStatus::Answered as i32);
    // Both up: the two replies cross.
    net.start_node(0, std::sync::Arc::new(migrex::clock::SystemClock))
        .await
        .unwrap();
    let at_origin = wait_notice(&net, 0, &n.id, |x| {
        x.status == NoticeStatus::Answered as i32
    })
    .await;
    let at_dest = wait_notice(&net, 1, &n.id, |x| x.withdrawn_at.is_some()).await;
    assert_eq!(at_dest.status, NoticeStatus::Answered as i32);
    assert!(at_origin.feedback.is_some());
    assert_eq!(at_origin.feedback, at_dest.feedback, "the same answer");
    assert_eq!(
        at_origin.withdrawn_at, at_dest.withdrawn_at,
        "the late withdrawal is on record on both sides"
    );
    // Nothing refused on either side: both items were taken.
    for i in [0, 1] {
        outbox_settled(&net, i, std::time::Duration::from_secs(10)).await;
        let s = steps(&net, i, &n.id);
        let kinds: Vec<&str> = s.iter().map(|(k, _, _)| k.as_str()).collect();
        assert!(
            kinds.contains(&"withdrawal") && kinds.contains(&"feedback"),
            "node {i}: {s:?}"
        );
        assert!(s.iter().all(|(_, _, ok)| *ok), "node {i}: {s:?}");
    }
    // As the clerks see it: on 通报详情 at both ends the withdrawal is on
    // record as late and without effect, beside the answer.
    let Some(b) = crate::console::browser().await else {
        return;
    };
    let now = time::OffsetDateTime::now_utc();
    for (i, name, shot) in [
        (1, "li.na", "notice-late-withdrawal"),
        (0, "chen.jie", "notice-late-withdrawal-at-origin"),
    ] {
        migrex::auth::accounts::create_user(
            &net.store(i),
            name,
            migrex::auth::Role::Clerk,
            "correct-horse-1",
            now,
        )
        .await
        .unwrap();
        let console = net.nodes[i].console_url.clone();
        b.login(&console, name, "correct-horse-1").await;
        b.c.goto(&format!("{console}/notices/{}", n.id))
            .await
            .unwrap();
        b.until("the late withdrawal on 通报详情", |_, page| {
            page.contains("撤回（晚于反馈，未生效）") && page.contains("已入户核实")
        })
        .await;
        // The journey is below the notice's fields: shown where it is.
        let at_label = "const e = [...document.querySelectorAll('body *')].find(x => \
             x.children.length === 0 && x.textContent.includes('晚于反馈')); \
             if (e) { e.scrollIntoView({block: 'center'}); } return !!e;";
        assert_eq!(
            b.c.execute(at_label, vec![]).await.unwrap(),
            serde_json::Value::Bool(true)
        );
        b.shot(shot).await;
        b.phone(shot).await;
        b.c.delete_all_cookies().await.unwrap();
    }
}
