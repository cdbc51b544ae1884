//! Checking a notice's journey from what this node keeps (issue 23,
//! `migrex notice show --verify`): every step (the notice, the
//! destination's acknowledgement, every reply) is rebuilt in its canonical
//! form from the stored rows and checked against the proof kept beside it,
//! with the signer's certificate, which must be the network CA's. A row
//! changed by hand after the fact no longer matches what was signed, and
//! the step says so.

use super::{Result, ServiceError};
use crate::domain::ts_to_pb;
use crate::identity::Trust;
use crate::pb;
use crate::proof::canonical;
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
    /// None when it verifies; else what is wrong.
    pub failure: Option<String>,
}

impl StepCheck {
    pub fn verified(&self) -> bool {
        self.failure.is_none()
    }
}

/// Checks every step of notice `id`'s journey this node keeps.
pub async fn verify_journey(store: &Store, trust: &Trust, id: &str) -> Result<Vec<StepCheck>> {
    let record = store
        .get_notice(id)
        .await?
        .ok_or_else(|| ServiceError::Refused(super::notices::not_found(id)))?;
    let proofs: HashMap<String, String> = store
        .proofs_of(id)
        .await?
        .into_iter()
        .map(|p| (p.step, p.proof))
        .collect();
    let mut certs: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    let mut steps = Vec::new();
    let n = &record.content;
    // The notice, as its origin signed it.
    steps.push(
        check(
            store,
            trust,
            &mut certs,
            (NOTICE.into(), &n.origin),
            &canonical::notice(n),
            proofs.get(NOTICE),
        )
        .await?,
    );
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
        let item = canonical::ack(
            id,
            &n.destination,
            Some(&ts_to_pb(received_at)),
            due_at.map(ts_to_pb).as_ref(),
            provisional,
        );
        steps.push(
            check(
                store,
                trust,
                &mut certs,
                (ACK.into(), &n.destination),
                &item,
                proofs.get(ACK),
            )
            .await?,
        );
    }
    for r in &replies {
        let name = format!("{} {}", reply_kind(r), r.reply_id);
        let mut step = check(
            store,
            trust,
            &mut certs,
            (name, &r.author),
            &canonical::reply(r),
            proofs.get(&r.reply_id),
        )
        .await?;
        // A delivery through a relay is the destination's acknowledgement:
        // the notice's instants must be the ones it signed.
        if let (Some(pb::reply::Body::Delivery(d)), None) = (&r.body, &step.failure)
            && (d.received_at != record.life.received_at.map(ts_to_pb)
                || (record.deadline_changes.is_empty()
                    && d.due_at != record.life.due_at.map(ts_to_pb)))
        {
            step.failure = Some(
                "the notice's received_at or due_at is not what the destination signed".into(),
            );
        }
        steps.push(step);
    }
    Ok(steps)
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

/// One step against its kept proof; `author` is the district that must
/// have signed it.
async fn check(
    store: &Store,
    trust: &Trust,
    certs: &mut HashMap<String, Option<Vec<u8>>>,
    (step, author): (String, &str),
    item: &[u8],
    proof: Option<&String>,
) -> Result<StepCheck> {
    let mut out = StepCheck {
        step,
        signer: String::new(),
        failure: None,
    };
    let Some(json) = proof else {
        out.failure = Some("no signature kept (received unsigned, or not sent yet)".into());
        return Ok(out);
    };
    let proof: Proof = match serde_json::from_str(json) {
        Ok(p) => p,
        Err(e) => {
            out.failure = Some(format!("the kept proof cannot be read: {e}"));
            return Ok(out);
        }
    };
    out.signer = proof.signer.clone();
    if !proof.signer.starts_with(author) && !author.starts_with(&proof.signer) {
        out.failure = Some(format!(
            "signed by {}, not by {author} whose step it is",
            proof.signer
        ));
        return Ok(out);
    }
    if !certs.contains_key(&proof.cert) {
        let der = store.certificate(&proof.cert).await?.map(|c| c.der);
        certs.insert(proof.cert.clone(), der);
    }
    let Some(der) = certs.get(&proof.cert).and_then(Option::as_ref) else {
        out.failure = Some("the signer's certificate is not kept".into());
        return Ok(out);
    };
    if let Err(e) = trust.vouches_for(der) {
        out.failure = Some(e);
    } else if let Err(e) = verify(item, &proof, der) {
        out.failure = Some(e.to_string());
    }
    Ok(out)
}
