//! Checking a notice's journey from what this node keeps (issue 23,
//! `migrex notice show --verify`): every step (the notice, the
//! destination's acknowledgement, every reply) is rebuilt in its canonical
//! form from the stored rows and checked against the proof kept beside it,
//! with the signer's certificate, which must be the network CA's. A row
//! changed by hand after the fact no longer matches what was signed, and
//! the step says so.

use super::{Result, ServiceError};
use crate::auth::Caller;
use crate::context::NodeCtx;
use crate::domain::{Direction, ts_to_pb};
use crate::identity::Trust;
use crate::pb;
use crate::proof::canonical;
use crate::proof::evidence::{self, Certificate, Evidence};
use crate::proof::sign::{Proof, verify};
use crate::store::{ACK, NOTICE, Store};
use prost::Message;
use std::collections::HashMap;

/// One step of a journey and whether it verifies.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepCheck {
    /// "notice", "ack", or the reply's kind and id ("feedback 0193…").
    pub step: String,
    /// The district that signed it, when a proof is kept.
    pub signer: String,
    /// None when it verifies (or is `pending`); else what is wrong.
    pub failure: Option<String>,
    /// What kind of wrong `failure` is.
    pub kind: Option<Failure>,
    /// A step of this node's own not sent yet: it is signed when sent, so
    /// there is nothing to verify and nothing wrong.
    pub pending: bool,
}

/// Why a step does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// A peer's step received without a signature (`accept_unsigned`).
    Unsigned,
    /// Signed by another district than the one whose step it is.
    WrongSigner,
    /// The signer's certificate is not kept.
    CertificateMissing,
    /// The signer's certificate is not the network CA's, or is revoked.
    CertificateRefused,
    /// What is stored is not what was signed: changed after the fact.
    Altered,
}

/// One step of a journey as this node keeps it: its canonical form
/// rebuilt from the stored rows, the district whose step it is, the proof
/// kept beside it, and what is wrong beyond the signature.
struct Kept {
    name: String,
    author: String,
    item: Vec<u8>,
    proof: Option<Proof>,
    mismatch: Option<String>,
    /// This node's own step (it signs it when it sends it).
    ours: bool,
}

/// Every step of notice `id`'s journey this node keeps.
async fn journey(store: &Store, id: &str) -> Result<Vec<Kept>> {
    let record = store
        .get_notice(id)
        .await?
        .ok_or_else(|| ServiceError::Refused(super::notices::not_found(id)))?;
    let mut proofs: HashMap<String, Proof> = store
        .proofs_of(id)
        .await?
        .into_iter()
        .map(|p| (p.step, p.proof))
        .collect();
    let n = &record.content;
    let outbound = record.life.direction == Direction::Outbound;
    // The notice, as its origin signed it.
    let mut steps = vec![Kept {
        name: NOTICE.into(),
        author: n.origin.clone(),
        item: canonical::notice(n),
        proof: proofs.remove(NOTICE),
        mismatch: None,
        ours: outbound,
    }];
    let replies: Vec<pb::Reply> = store
        .replies_of(id)
        .await?
        .iter()
        .filter_map(|b| pb::Reply::decode(b.as_slice()).ok())
        .collect();
    // The acknowledgement, as the destination signed it: with the deadline
    // it first counted (a provisional one moves later, each move a reply of
    // its own).
    let delivered_by_relay = replies
        .iter()
        .any(|r| matches!(r.body, Some(pb::reply::Body::Delivery(_))));
    if let Some(received_at) = record.life.received_at
        && (proofs.contains_key(ACK) || !delivered_by_relay)
    {
        let (due_at, provisional) = match record.deadline_changes.first() {
            Some(first) => (Some(first.previous_due_at), true),
            None => (record.life.due_at, record.life.due_provisional),
        };
        steps.push(Kept {
            name: ACK.into(),
            author: n.destination.clone(),
            item: canonical::ack(
                id,
                &n.destination,
                Some(&ts_to_pb(received_at)),
                due_at.map(ts_to_pb).as_ref(),
                provisional,
            ),
            proof: proofs.remove(ACK),
            mismatch: None,
            ours: !outbound,
        });
    }
    for r in &replies {
        // A delivery through a relay is the destination's acknowledgement:
        // the notice's instants must be the ones it signed.
        let mismatch = match &r.body {
            Some(pb::reply::Body::Delivery(d))
                if d.received_at != record.life.received_at.map(ts_to_pb)
                    || (record.deadline_changes.is_empty()
                        && d.due_at != record.life.due_at.map(ts_to_pb)) =>
            {
                Some("the notice's received_at or due_at is not what the destination signed".into())
            }
            _ => None,
        };
        steps.push(Kept {
            name: format!("{} {}", reply_kind(r), r.reply_id),
            author: r.author.clone(),
            item: canonical::reply(r),
            proof: proofs.remove(&r.reply_id),
            mismatch,
            ours: &r.author == if outbound { &n.origin } else { &n.destination },
        });
    }
    Ok(steps)
}

/// Checks every step of notice `id`'s journey this node keeps.
pub async fn verify_journey(store: &Store, trust: &Trust, id: &str) -> Result<Vec<StepCheck>> {
    let mut certs: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    let mut out = Vec::new();
    for step in journey(store, id).await? {
        let mut checked = check(store, trust, &mut certs, &step).await?;
        if checked.failure.is_none() && step.mismatch.is_some() {
            checked.failure = step.mismatch;
            checked.kind = Some(Failure::Altered);
        }
        out.push(checked);
    }
    Ok(out)
}

/// The journey's checks for 通报详情: open to whoever may read the notice
/// (its read is audited by the page that shows it).
pub async fn checks(ctx: &NodeCtx, caller: &Caller, id: &str) -> Result<Vec<StepCheck>> {
    caller.require_personal_data()?;
    verify_journey(&ctx.store, &ctx.trust, id).await
}

/// The evidence file of notice `id` for `caller` (the console's download):
/// it holds the person's details, so it is for roles that read them, and
/// each download is in the access audit as `notice.evidence`.
pub async fn download(ctx: &NodeCtx, caller: &Caller, id: &str) -> Result<Evidence> {
    caller.require_personal_data()?;
    let rec = super::notices::stored(ctx, id).await?;
    super::audit::record_reads(ctx, caller, "notice.evidence", std::slice::from_ref(&rec)).await?;
    evidence(&ctx.store, id).await
}

/// The evidence file for the node's operator (`migrex notice evidence
/// --config`, reading the database directly): written to the access audit
/// first, under `operator` (the machine's user) from "local", like a
/// download from the console.
pub async fn evidence_for_operator(
    store: &Store,
    key: &crate::audit::SubjectKey,
    operator: &str,
    id: &str,
) -> Result<Evidence> {
    let rec = store
        .get_notice(id)
        .await?
        .ok_or_else(|| ServiceError::Refused(super::notices::not_found(id)))?;
    let caller = Caller {
        name: format!("operator:{operator}"),
        role: crate::auth::Role::Admin,
        token: None,
        address: "local".into(),
    };
    let subject = rec
        .content
        .subject
        .as_ref()
        .map_or("", |s| s.id_number.as_str());
    let entries = super::audit::accesses(key, &caller, "notice.evidence", [(id, subject)]);
    store
        .append_audit(&entries, time::OffsetDateTime::now_utc())
        .await?;
    evidence(store, id).await
}

/// The evidence file of notice `id`'s journey: every step this node keeps
/// a proof of, with the signers' certificates (`proof::evidence`), each
/// rebuilt from the stored rows (a row changed by hand makes the file fail
/// where it fails here). A step without a proof is left out;
/// `verify_journey` names it.
pub async fn evidence(store: &Store, id: &str) -> Result<Evidence> {
    let mut steps = Vec::new();
    let mut certificates: Vec<Certificate> = Vec::new();
    for kept in journey(store, id).await? {
        let Some(proof) = kept.proof else {
            continue;
        };
        if !certificates.iter().any(|c| c.fingerprint == proof.cert)
            && let Some(c) = store.certificate(&proof.cert).await?
        {
            certificates.push(Certificate {
                fingerprint: c.fingerprint,
                der: c.der,
            });
        }
        // The step's name without the reply id: the item holds it.
        let step = kept
            .name
            .split(' ')
            .nth(1)
            .unwrap_or(&kept.name)
            .to_string();
        steps.push(evidence::Step {
            step,
            item: kept.item,
            proof,
        });
    }
    certificates.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    Ok(Evidence {
        form: evidence::FORM.into(),
        notice_id: id.to_string(),
        steps,
        certificates,
    })
}

fn reply_kind(r: &pb::Reply) -> &'static str {
    use pb::reply::Body;
    match r.body {
        Some(Body::Receipt(_)) => "receipt",
        Some(Body::Feedback(_)) => "feedback",
        Some(Body::Withdrawal(_)) => "withdrawal",
        Some(Body::DeadlineChange(_)) => "deadline_change",
        Some(Body::Delivery(_)) => "delivery",
        Some(Body::Reminder(_)) => "reminder",
        None => "reply",
    }
}

/// One step against its kept proof and the signer's certificate.
async fn check(
    store: &Store,
    trust: &Trust,
    certs: &mut HashMap<String, Option<Vec<u8>>>,
    step: &Kept,
) -> Result<StepCheck> {
    let mut out = StepCheck {
        step: step.name.clone(),
        signer: String::new(),
        failure: None,
        kind: None,
        pending: false,
    };
    let mut fail = |kind: Failure, why: String| {
        out.kind = Some(kind);
        out.failure = Some(why);
    };
    let Some(proof) = &step.proof else {
        if step.ours {
            out.pending = true;
        } else {
            fail(
                Failure::Unsigned,
                "no signature kept (received unsigned)".into(),
            );
        }
        return Ok(out);
    };
    if !step.author.starts_with(&proof.signer) {
        fail(
            Failure::WrongSigner,
            format!(
                "signed by {}, not by {} whose step it is",
                proof.signer, step.author
            ),
        );
        out.signer = proof.signer.clone();
        return Ok(out);
    }
    if !certs.contains_key(&proof.cert) {
        let der = store.certificate(&proof.cert).await?.map(|c| c.der);
        certs.insert(proof.cert.clone(), der);
    }
    match certs.get(&proof.cert).and_then(Option::as_ref) {
        None => fail(
            Failure::CertificateMissing,
            "the signer's certificate is not kept".into(),
        ),
        Some(der) => {
            if let Err(e) = trust.vouched_for_kept(der) {
                fail(Failure::CertificateRefused, e);
            } else if let Err(e) = verify(&step.item, proof, der) {
                fail(Failure::Altered, e.to_string());
            }
        }
    }
    out.signer = proof.signer.clone();
    Ok(out)
}
