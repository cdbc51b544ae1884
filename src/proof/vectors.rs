//! The test vectors of `docs/proof-vectors.json`: sample items in their
//! canonical form, their leaf hashes, the batch's root and paths, and one
//! signature with the certificate that made it, so another implementation
//! can check its bytes and its verification against ours. The test fails
//! when this code and the file disagree; `MIGREX_WRITE_VECTORS=1 cargo test
//! --lib proof::vectors` writes the file anew (with a new signature).

use super::canonical;
use super::sign::{NodeKey, Proof, verify};
use super::tree;
use crate::pb;
use prost::Message;
use prost_types::Timestamp;
use serde_json::{Value, json};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/proof-vectors.json");

fn at(seconds: i64, micros: i32) -> Option<Timestamp> {
    Some(Timestamp {
        seconds,
        nanos: micros * 1000,
    })
}

/// An acknowledgement's canonical form, its destination being 510116.
fn ack_of_510116(a: &pb::NoticeAck) -> Vec<u8> {
    canonical::ack(
        &a.notice_id,
        "510116",
        a.received_at.as_ref(),
        a.due_at.as_ref(),
        a.due_provisional,
    )
}

/// The sample items: (name, the source message as protobuf, canonical bytes).
fn samples() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let notice = pb::Notice {
        id: "0190f3a2-7c1e-7d4b-9a51-3c2e8f6b1d20".into(),
        origin: "440303".into(),
        destination: "510116".into(),
        kind: pb::NoticeKind::Birth as i32,
        category: pb::Category::Notification as i32,
        subject: Some(pb::Person {
            id_number: "510116199001010022".into(),
            name: "王芳".into(),
            hukou_district: "510116".into(),
            residence_district: "440303".into(),
            sex: pb::Sex::Female as i32,
            birth_date: "1990-01-01".into(),
        }),
        urgency: pb::Urgency::Normal as i32,
        reply_required: pb::ReplySort::Feedback as i32,
        event_date: "2026-10-03".into(),
        details: Some(pb::notice::Details::Birth(pb::BirthDetails {
            born_on: "2026-10-03".into(),
            child_sex: pb::Sex::Male as i32,
            birth_order: 1,
            child_name: String::new(),
            place_of_delivery: "罗湖区人民医院".into(),
        })),
        remarks: "".into(),
        created_at: at(1_791_000_000, 123_456),
        reference: "440303-20261004-0001".into(),
        ..Default::default()
    };
    let reply = |id: &str, author: &str, recipient: &str, body| pb::Reply {
        reply_id: id.into(),
        notice_id: notice.id.clone(),
        author: author.into(),
        recipient: recipient.into(),
        body: Some(body),
        proof: None,
    };
    let mut feedback = pb::Feedback {
        result: pb::FeedbackResult::Corrected as i32,
        remarks: "户籍地址已核实".into(),
        responsible_district: "510116".into(),
        answered_by: "li.ming".into(),
        answered_at: at(1_791_300_000, 0),
        ..Default::default()
    };
    feedback
        .corrections
        .insert("subject.name".into(), "王芳芳".into());
    feedback
        .corrections
        .insert("event_date".into(), "2026-10-02".into());
    let replies = [
        (
            "receipt",
            reply(
                "r-1",
                "510116",
                "440303",
                pb::reply::Body::Receipt(pb::Receipt {
                    acknowledged_at: at(1_791_100_000, 5),
                    acknowledged_by: "li.ming".into(),
                }),
            ),
        ),
        (
            "feedback",
            reply(
                "r-2",
                "510116",
                "440303",
                pb::reply::Body::Feedback(feedback),
            ),
        ),
        (
            "withdrawal",
            reply(
                "r-3",
                "440303",
                "510116",
                pb::reply::Body::Withdrawal(pb::Withdrawal {
                    withdrawn_at: at(1_791_400_000, 0),
                    reason: "重复登记".into(),
                }),
            ),
        ),
        (
            "reminder",
            reply(
                "r-4",
                "440303",
                "510116",
                pb::reply::Body::Reminder(pb::Reminder {
                    reminded_at: at(1_791_200_000, 0),
                    reminded_by: "chen.jie".into(),
                    number: 1,
                }),
            ),
        ),
    ];
    let ack = pb::NoticeAck {
        notice_id: notice.id.clone(),
        received_at: at(1_791_000_100, 250_000),
        due_at: at(1_792_000_000, 0),
        ..Default::default()
    };
    let mut out = vec![
        ("notice", notice.encode_to_vec(), canonical::notice(&notice)),
        (
            "ack (destination 510116)",
            ack.encode_to_vec(),
            ack_of_510116(&ack),
        ),
    ];
    for (name, r) in replies {
        out.push((name, r.encode_to_vec(), canonical::reply(&r)));
    }
    out
}

/// The file's content for these samples (without the signature part).
fn expected() -> Value {
    let samples = samples();
    let leaves: Vec<tree::Hash> = samples.iter().map(|(_, _, c)| tree::leaf_hash(c)).collect();
    let root = tree::root(&leaves);
    json!({
        "items": samples.iter().zip(&leaves).enumerate().map(|(i, ((name, pb, c), leaf))| json!({
            "name": name,
            "protobuf": hex::encode(pb),
            "canonical": hex::encode(c),
            "fields": canonical::fields(c).unwrap().iter()
                .map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            "leaf_hash": hex::encode(leaf),
            "path": tree::path(&leaves, i).iter().map(hex::encode).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "root": hex::encode(root),
        "statement": hex::encode(canonical::batch("440303", leaves.len() as u64, &root)),
    })
}

#[test]
fn the_repository_s_vectors_match_this_code() {
    let mut want = expected();
    if std::env::var_os("MIGREX_WRITE_VECTORS").is_some() {
        // A new signer: a CA and 440303's certificate, the signature over
        // the batch's statement.
        let dir = tempfile::tempdir().unwrap();
        crate::identity::ensure_ca(dir.path(), "migrex test-vector CA").unwrap();
        let code = crate::domain::DistrictCode::parse("d", "440303").unwrap();
        let (cert, key) = (dir.path().join("n.crt"), dir.path().join("n.key"));
        crate::identity::issue_node_cert(dir.path(), &code, &["localhost".into()], &cert, &key)
            .unwrap();
        let key = NodeKey::from_pem(&std::fs::read_to_string(key).unwrap(), "440303").unwrap();
        let items: Vec<Vec<u8>> = samples().into_iter().map(|(_, _, c)| c).collect();
        let proof = key.sign_batch(&items).remove(0);
        want["signature"] = json!(hex::encode(&proof.signature));
        want["signer_certificate"] = json!(std::fs::read_to_string(cert).unwrap());
        want["ca_certificate"] =
            json!(std::fs::read_to_string(crate::identity::ca_paths(dir.path()).0).unwrap());
        std::fs::write(FILE, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
    }
    let have: Value = serde_json::from_str(&std::fs::read_to_string(FILE).unwrap()).unwrap();
    for key in ["root", "statement"] {
        assert_eq!(
            have[key], want[key],
            "{key} differs from docs/proof-vectors.json"
        );
    }
    let (have_items, want_items) = (
        have["items"].as_array().unwrap(),
        want["items"].as_array().unwrap(),
    );
    assert_eq!(have_items.len(), want_items.len());
    for (h, w) in have_items.iter().zip(want_items) {
        for key in ["name", "canonical", "fields", "leaf_hash", "path"] {
            assert_eq!(h[key], w[key], "{} {key}", w["name"]);
        }
        // The protobuf input (whose map order protobuf leaves open) reads
        // back to the same canonical bytes.
        let pb_bytes = hex::decode(h["protobuf"].as_str().unwrap()).unwrap();
        let name = h["name"].as_str().unwrap();
        let canonical = match name {
            "notice" => canonical::notice(&pb::Notice::decode(&pb_bytes[..]).unwrap()),
            n if n.starts_with("ack") => {
                ack_of_510116(&pb::NoticeAck::decode(&pb_bytes[..]).unwrap())
            }
            _ => canonical::reply(&pb::Reply::decode(&pb_bytes[..]).unwrap()),
        };
        assert_eq!(json!(hex::encode(canonical)), w["canonical"], "{name}");
    }
    // The file's signature verifies every item with its path, by the
    // file's certificate, which the file's CA signed.
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let cert =
        CertificateDer::from_pem_slice(have["signer_certificate"].as_str().unwrap().as_bytes())
            .unwrap();
    let samples = samples();
    for (i, (_, _, item)) in samples.iter().enumerate() {
        let proof = Proof {
            signer: "440303".into(),
            index: i as u64,
            size: samples.len() as u64,
            path: tree::path(
                &samples
                    .iter()
                    .map(|(_, _, c)| tree::leaf_hash(c))
                    .collect::<Vec<_>>(),
                i,
            ),
            signature: hex::decode(have["signature"].as_str().unwrap()).unwrap(),
            cert: String::new(),
        };
        assert_eq!(verify(item, &proof, &cert), Ok(()), "item {i}");
    }
}
