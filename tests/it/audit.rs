//! Issue 10, item 5: the access audit. Every read of a person's details and
//! every write by staff leaves an entry with who, what, which notice, a
//! keyed hash of the subject and from where; the chain verifies on a busy
//! node and names the first entry edited by hand.

use crate::common::*;
use migrex::auth::Role;
use migrex::pb;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_looked_at_whom_is_recorded_chained_and_checked() {
    let net = network(&[LUOHU, SHUANGLIU], None).await;
    let (watched, other) = (woman(90), woman(91));
    let first = submit(&net, 0, birth(SHUANGLIU, watched.clone(), "2026-10-03")).await;
    let second = submit(&net, 0, birth(SHUANGLIU, other.clone(), "2026-10-04")).await;
    // A busy node: a batch of fifty more.
    let batch: Vec<pb::Notice> = (0..50)
        .map(|i| birth(SHUANGLIU, woman(100 + i), "2026-10-05"))
        .collect();
    submit_batch(&mut net.desk(0).await.unwrap(), batch).await;
    wait_notice(&net, 0, &first.id, |n| n.received_at.is_some()).await;
    wait_notice(&net, 0, &second.id, |n| n.received_at.is_some()).await;

    let store = net.store(1);
    let clerk = migrex::setup::create_token(&store, "li.na", Role::Clerk)
        .await
        .unwrap();
    let monitor = migrex::setup::create_token(&store, "city.monitor", Role::Monitor)
        .await
        .unwrap();
    let url = &net.nodes[1].desk_url;
    let mut desk = migrex::client::connect(url, &net.ca_pem, &clerk)
        .await
        .unwrap();
    // Wait on the store itself: the test's waiting must not be audited.
    eventually("all 52 arrived", std::time::Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            let n = store
                .count_notices(migrex::domain::Direction::Inbound)
                .await
                .ok()?;
            (n == 52).then_some(())
        }
    })
    .await;
    let pending = desk
        .list_pending(pb::ListPendingRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.notices.len(), 52);
    desk.get_notice(pb::GetNoticeRequest {
        id: first.id.clone(),
    })
    .await
    .unwrap();
    desk.acknowledge_notice(pb::AcknowledgeNoticeRequest {
        id: first.id.clone(),
    })
    .await
    .unwrap();
    migrex::client::connect(url, &net.ca_pem, &monitor)
        .await
        .unwrap()
        .list_notices(pb::ListNoticesRequest::default())
        .await
        .unwrap();

    let cfg = net.nodes[1].config_path.to_str().unwrap().to_string();
    let verify = migrex_cli(&["audit", "verify", "--config", &cfg]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("chain holds"));

    let show = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["audit", "show", "--config", &cfg, "--json"];
        all.extend_from_slice(args);
        let out = migrex_cli(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let about = show(&["--subject", &watched]);
    let ops: Vec<(&str, &str, &str)> = about
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["notice_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("notice.pending", "li.na", first.id.as_str()),
            ("notice.get", "li.na", first.id.as_str()),
            ("reply.receipt", "li.na", first.id.as_str()),
        ],
        "who looked at this person, and nobody else (the monitor's masked page, newest first, did not reach this notice)"
    );
    assert!(
        about
            .iter()
            .all(|e| e["address"] == "127.0.0.1" && e["token"].is_i64())
    );
    let text = String::from_utf8_lossy(
        &migrex_cli(&["audit", "show", "--config", &cfg, "--subject", &watched]).stdout,
    )
    .to_string();
    assert!(
        !text.contains(&watched),
        "the ID number itself is not stored or shown"
    );
    let by_clerk = show(&["--token", "li.na"]);
    assert_eq!(
        by_clerk.len(),
        52 + 2,
        "52 pending rows, one notice, one receipt"
    );
    // The monitor's masked page is recorded too, marked as masked.
    let by_monitor = show(&["--token", "city.monitor"]);
    assert!(!by_monitor.is_empty());
    assert!(
        by_monitor
            .iter()
            .all(|e| e["operation"] == "notice.list (masked)"),
        "{by_monitor:?}"
    );
    // Luohu recorded its registrations, in the same transactions.
    let luohu_cfg = net.nodes[0].config_path.to_str().unwrap().to_string();
    let out = migrex_cli(&[
        "audit",
        "show",
        "--config",
        &luohu_cfg,
        "--json",
        "--subject",
        &other,
    ]);
    let at_origin: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(at_origin[0]["operation"], "notice.submit");
    assert_eq!(at_origin[0]["actor"], "admin");
    assert!(
        at_origin[1..]
            .iter()
            .all(|e| e["operation"] == "notice.get"),
        "then only the test's own look-ups (GetNotice): {at_origin:?}"
    );

    // An entry edited by hand breaks the chain there.
    let third = by_clerk[2]["seq"].as_i64().unwrap();
    tamper(
        &net,
        1,
        &format!("UPDATE access_audit SET actor = 'someone.else' WHERE seq = {third}"),
    )
    .await;
    let broken = migrex_cli(&["audit", "verify", "--config", &cfg]);
    assert!(!broken.status.success());
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(
        err.starts_with(&format!("error: audit entry {third}:"))
            && err.contains("does not match its hash"),
        "{err}"
    );
}

/// Issue 23, item 4: the chain is keyed with the node's audit key and its
/// head is signed into a checkpoint outside the database, so an entry
/// appended by someone without the key, the last entries deleted, or all
/// of them, are each reported by `migrex audit verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_audit_cannot_be_cut_short_or_added_to() {
    let mut net = network(&[LUOHU, SHUANGLIU], None).await;
    let batch: Vec<pb::Notice> = (0..40)
        .map(|i| birth(SHUANGLIU, woman(200 + i), "2026-10-05"))
        .collect();
    submit_batch(&mut net.desk(0).await.unwrap(), batch).await;
    let store = net.store(0);
    let (head, head_hash) = store.audit_head().await.unwrap().unwrap();
    assert!(head >= 40, "{head} entries");
    assert!(head_hash.starts_with(migrex::audit::KEYED), "{head_hash}");
    let config = net.nodes[0].config_path.clone();
    let settings = migrex::config::Settings::load(&config).unwrap();
    let path = migrex::audit::checkpoint::path_beside(&settings.audit_key);
    // The node signs the new head into its checkpoint within a second.
    eventually(
        "the checkpoint holds the head",
        std::time::Duration::from_secs(20),
        || {
            let path = path.clone();
            let head_hash = head_hash.clone();
            async move {
                let c = migrex::audit::checkpoint::Checkpoint::read(&path).ok()??;
                (c.seq == head && c.hash == head_hash).then_some(())
            }
        },
    )
    .await;
    net.stop_node(0).await;
    let cfg = config.to_str().unwrap();
    let verify = || {
        let out = migrex_cli(&["audit", "verify", "--config", cfg]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, said) = verify();
    assert!(
        ok && said.contains("holds the head its checkpoint"),
        "{said}"
    );

    // An entry appended with a correct plain hash by someone with the
    // database but not the audit key.
    let forged = head + 1;
    let access = migrex::audit::Access {
        actor: "admin".into(),
        token: Some(1),
        operation: "notice.get".into(),
        notice_id: "forged".into(),
        subject: String::new(),
        address: "127.0.0.1".into(),
    };
    let at = 1_791_000_000_000_000i64;
    let hash = migrex::audit::chain_hash(None, &head_hash, forged, at, &access);
    tamper(
        &net,
        0,
        &format!(
            "INSERT INTO access_audit (seq, at, actor, token_id, operation, notice_id, subject, address, prev_hash, hash) \
             VALUES ({forged}, {at}, 'admin', 1, 'notice.get', 'forged', '', '127.0.0.1', '{head_hash}', '{hash}')"
        ),
    )
    .await;
    let (ok, said) = verify();
    assert!(
        !ok && said.contains(&format!(
            "audit entry {forged}: was not written with the node's audit key"
        )),
        "{said}"
    );
    tamper(
        &net,
        0,
        &format!("DELETE FROM access_audit WHERE seq = {forged}"),
    )
    .await;
    assert!(verify().0, "as it was");

    // The last 20 entries deleted.
    tamper(
        &net,
        0,
        &format!("DELETE FROM access_audit WHERE seq > {}", head - 20),
    )
    .await;
    let (ok, said) = verify();
    assert!(
        !ok && said.contains(&format!("entries {} to {head} were deleted", head - 19)),
        "{said}"
    );
    // All of them.
    tamper(&net, 0, "DELETE FROM access_audit").await;
    let (ok, said) = verify();
    assert!(!ok && said.contains("all of them were deleted"), "{said}");
    // A checkpoint edited to match is no longer the node's.
    let mut edited = migrex::audit::checkpoint::Checkpoint::read(&path)
        .unwrap()
        .unwrap();
    edited.seq = 0;
    edited.write(&path).unwrap();
    let (ok, said) = verify();
    assert!(
        !ok && said.contains("not signed by this node's key"),
        "{said}"
    );

    // The checkpoint removed too: the node's own folder says nothing any
    // more, but the peer kept the head this node sent it when it stopped.
    std::fs::remove_file(&path).unwrap();
    let out = migrex_cli(&["audit", "verify", "--config", cfg, "--offline"]);
    assert!(out.status.success(), "alone, nothing to compare with");
    let (ok, said) = verify();
    assert!(
        !ok && said.contains(&format!(
            "the access audit is empty, but the head peer {SHUANGLIU} keeps of"
        )) && said.contains(&format!("counted {head} entries: all of them were deleted")),
        "{said}"
    );
    let kept = net.store(1).witnessed_heads(LUOHU).await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        (kept[0].seq, kept[0].hash.as_str()),
        (head, head_hash.as_str())
    );

    // A witness keeps only a head of the caller's own audit, signed with
    // the caller's key; a refusal keeps nothing.
    let mut exchange = exchange_as(&net, 0, 1).await;
    let mut longer = migrex::exchange::witness::to_pb(&kept[0]);
    longer.seq += 100;
    let mut theirs = migrex::exchange::witness::to_pb(&kept[0]);
    theirs.district = SHUANGLIU.into();
    for (bad, field) in [(longer, "signature"), (theirs, "district")] {
        let refused = exchange.keep_audit_head(bad).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().starts_with(field),
            "{}",
            refused.message()
        );
    }
    assert_eq!(net.store(1).witnessed_heads(LUOHU).await.unwrap(), kept);
}
