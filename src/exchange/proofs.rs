//! Signing and checking what crosses the exchange (issue 23,
//! docs/protocol.md): the origin signs the notices of each call, the
//! destination its acknowledgements, the author each reply, one signature
//! per call. The receiver checks an item before it stores it and keeps
//! the proof beside the step it covers (`store::Proven`); what does not
//! verify is refused with PERMISSION_DENIED and nothing of it is stored.
//! `[delivery] accept_unsigned` lets items without a proof in while peers
//! upgrade; a proof that is present must always verify.

use crate::context::NodeCtx;
use crate::domain::{DistrictCode, Reply};
use crate::grpc::item_error;
use crate::identity::fingerprint;
use crate::pb;
use crate::proof::canonical;
use crate::proof::sign::{self, Proof};
use crate::proof::signer::to_pb;
use crate::proof::signer::{Signer, from_pb};
use crate::store::{OutboxItem, Proven, SignerCert, StepProof};
use tonic::Code;

pub use crate::store::{ACK, NOTICE};

/// This node's certificate, to keep beside the proofs it made.
pub fn own(signer: &Signer) -> SignerCert {
    SignerCert {
        fingerprint: signer.fingerprint().to_string(),
        district: signer.district().to_string(),
        der: signer.certificate().to_vec(),
    }
}

/// A proof as a store keeps it.
pub fn stored(notice_id: &str, step: &str, proof: &Proof) -> StepProof {
    StepProof {
        notice_id: notice_id.to_string(),
        step: step.to_string(),
        proof: proof.clone(),
    }
}

/// One item handed over by a peer, to check: its canonical bytes, its
/// proof, the district that must have signed it (a notice's origin, a
/// reply's author, an acknowledgement's destination) and the step it
/// proves.
pub struct Signed<'a> {
    pub canonical: Vec<u8>,
    pub proof: Option<&'a pb::Proof>,
    pub author: &'a str,
    pub notice_id: String,
    pub step: String,
}

/// A proof read from the wire with the certificate to check it with.
type Ready<'a> = (Proof, &'a [u8]);

/// Checks items handed over by the node whose certificate is `sender`
/// (the TLS peer's, or the one a response names); a proof naming its own
/// certificate (a relayed item) is checked with that one, which must be the
/// network CA's and not revoked. Per item: the proof to keep (None for an
/// unsigned item this node accepts during an upgrade) or the refusal; the
/// certificates of the signers go into `proven`.
pub fn check(
    ctx: &NodeCtx,
    sender: &[u8],
    field: &str,
    items: &[Signed<'_>],
    proven: &mut Proven,
) -> Vec<Result<Option<StepProof>, pb::ItemError>> {
    let refuse = |what: String| item_error(Code::PermissionDenied, what, &format!("{field}.proof"));
    // First what needs no signature check: presence, sizes, certificate,
    // who signed.
    let mut ready: Vec<Result<Option<Ready>, pb::ItemError>> = Vec::new();
    // Asked once per call, not per item: which certificates the CA vouches
    // for, and which signers may sign for which authors.
    let mut vouched: Vec<&[u8]> = Vec::new();
    let mut allowed: Vec<(String, &str)> = Vec::new();
    for item in items {
        ready.push((|| {
            let Some(wire) = item.proof else {
                return if ctx.delivery.accept_unsigned {
                    Ok(None)
                } else {
                    Err(refuse(format!(
                        "{field}.proof: not signed; this node takes only signed items \
                         ([delivery] accept_unsigned is off)"
                    )))
                };
            };
            let proof = from_pb(wire).map_err(|e| refuse(format!("{field}.proof: {e}")))?;
            let cert: &[u8] = if wire.certificate.is_empty() {
                sender
            } else {
                if !vouched.contains(&wire.certificate.as_slice()) {
                    ctx.trust
                        .vouches_for(&wire.certificate)
                        .map_err(|e| refuse(format!("{field}.proof.certificate: {e}")))?;
                    vouched.push(&wire.certificate);
                }
                &wire.certificate
            };
            if !allowed
                .iter()
                .any(|(s, a)| *s == proof.signer && *a == item.author)
            {
                let signer = DistrictCode::parse("proof.signer", &proof.signer)
                    .map_err(|e| refuse(format!("{field}.proof.signer: {e}")))?;
                if signer.as_str() != item.author && !ctx.answers_for(&signer, item.author) {
                    return Err(refuse(format!(
                        "{field}.proof: signed by {signer}, not by {} whose item it is",
                        item.author
                    )));
                }
                allowed.push((proof.signer.clone(), item.author));
            }
            Ok(Some((proof, cert)))
        })());
    }
    let signed: Vec<(&[u8], &Proof, &[u8])> = items
        .iter()
        .zip(&ready)
        .filter_map(|(item, r)| match r {
            Ok(Some((p, cert))) => Some((item.canonical.as_slice(), p, *cert)),
            _ => None,
        })
        .collect();
    let mut verdicts = sign::verify_many(signed).into_iter();
    let mut fingerprints: Vec<(&[u8], String)> = Vec::new();
    let mut whole = WholeBatches {
        limit: items.len(),
        batches: Vec::new(),
    };
    let out = items
        .iter()
        .zip(ready)
        .map(|(item, r)| {
            let Some((mut proof, cert)) = r? else {
                return Ok(None);
            };
            verdicts
                .next()
                .expect("a verdict per signed item")
                .map_err(|e| refuse(format!("{field}.proof: {e}")))?;
            match fingerprints.iter().find(|(c, _)| *c == cert) {
                Some((_, fp)) => proof.cert = fp.clone(),
                None => {
                    proof.cert = fingerprint(cert);
                    fingerprints.push((cert, proof.cert.clone()));
                    proven.certificate(SignerCert {
                        fingerprint: proof.cert.clone(),
                        district: proof.signer.clone(),
                        der: cert.to_vec(),
                    });
                }
            }
            whole.add(&proof, &item.canonical);
            Ok(Some(stored(&item.notice_id, &item.step, &proof)))
        })
        .collect();
    whole.keep(proven);
    out
}

/// The batches a call carried whole (every index of each, once): their
/// leaf hashes are kept once instead of a path per item, as a node keeps
/// its own batches'.
struct WholeBatches {
    /// No batch larger than the call's items can be whole.
    limit: usize,
    /// Per signature: the batch's leaves by index.
    batches: Vec<(Vec<u8>, Vec<Option<crate::proof::tree::Hash>>)>,
}

impl WholeBatches {
    fn add(&mut self, proof: &Proof, canonical: &[u8]) {
        let at = match self
            .batches
            .iter()
            .position(|(sig, _)| *sig == proof.signature)
        {
            Some(at) => at,
            // A batch larger than the call is never whole (and is not
            // allocated for).
            None if proof.size as usize <= self.limit => {
                self.batches
                    .push((proof.signature.clone(), vec![None; proof.size as usize]));
                self.batches.len() - 1
            }
            None => return,
        };
        if let Some(slot) = self.batches[at].1.get_mut(proof.index as usize) {
            *slot = Some(crate::proof::tree::leaf_hash(canonical));
        }
    }

    fn keep(self, proven: &mut Proven) {
        for (signature, leaves) in self.batches {
            if let Some(leaves) = leaves.into_iter().collect::<Option<Vec<_>>>() {
                proven.whole_leaves.push((signature, leaves));
            }
        }
    }
}

/// Signs this node's own items of a call (a relay's carry their author's
/// proof already) as one batch; returns each item's proof, and the batch's
/// leaf hashes go into `proven` (a node keeps those of the batches it holds
/// whole, its own always).
pub fn sign_own<T>(
    ctx: &NodeCtx,
    items: &[OutboxItem],
    wire: &mut [T],
    (canonical, set): (impl Fn(&T) -> Vec<u8>, impl Fn(&mut T, pb::Proof)),
    proven: &mut Proven,
) -> Vec<Option<Proof>> {
    let mut out = vec![None; items.len()];
    let Some(signer) = &ctx.signer else {
        return out;
    };
    let own: Vec<usize> = (0..items.len())
        .filter(|&i| !items[i].kind.is_relayed())
        .collect();
    if own.is_empty() {
        return out;
    }
    let bytes: Vec<Vec<u8>> = own.iter().map(|&i| canonical(&wire[i])).collect();
    let (proofs, leaves) = signer.sign_keeping(&bytes);
    if let Some(first) = proofs.first() {
        proven.whole_leaves.push((first.signature.clone(), leaves));
    }
    for (i, p) in own.into_iter().zip(proofs) {
        set(&mut wire[i], to_pb(&p));
        out[i] = Some(p);
    }
    out
}

/// The destination's signed acknowledgements of this node's notices,
/// checked before they are recorded: the ids of those that do not verify
/// (they are sent again), and the proofs of those that do.
pub fn check_acks(
    ctx: &NodeCtx,
    notices: &[pb::Notice],
    response: &pb::DeliverNoticesResponse,
    proven: &mut Proven,
) -> std::collections::HashSet<String> {
    let by_id: std::collections::HashMap<&str, &pb::Notice> =
        notices.iter().map(|n| (n.id.as_str(), n)).collect();
    let items: Vec<Signed> = response
        .acks
        .iter()
        .filter(|a| a.error.is_none() && !a.relayed && a.received_at.is_some())
        .filter_map(|a| {
            let n = by_id.get(a.notice_id.as_str())?;
            Some(Signed {
                canonical: canonical::ack(
                    &a.notice_id,
                    &n.destination,
                    a.received_at.as_ref(),
                    a.due_at.as_ref(),
                    a.due_provisional,
                ),
                proof: a.proof.as_ref(),
                author: n.destination.as_str(),
                notice_id: a.notice_id.clone(),
                step: ACK.to_string(),
            })
        })
        .collect();
    let vouched = items.iter().all(|i| i.proof.is_none())
        || ctx.trust.vouches_for(&response.certificate).is_ok();
    let mut bad = std::collections::HashSet::new();
    let verdicts = if vouched {
        check(ctx, &response.certificate, "ack", &items, proven)
    } else {
        items
            .iter()
            .map(|_| {
                Err(item_error(
                    tonic::Code::PermissionDenied,
                    "ack: the certificate the acknowledgements came with is not the network CA's",
                    "certificate",
                ))
            })
            .collect()
    };
    for (item, verdict) in items.iter().zip(verdicts) {
        match verdict {
            Ok(p) => proven.proofs.extend(p),
            Err(e) => {
                tracing::warn!(notice = %item.notice_id, error = %e.message, "the destination's acknowledgement does not verify; not recorded, sent again");
                bad.insert(item.notice_id.clone());
            }
        }
    }
    bad
}

/// The author's proof of each reply that parses; None for one that
/// does not.
#[allow(clippy::type_complexity)]
pub fn check_replies(
    ctx: &NodeCtx,
    sender: &[u8],
    replies: &[pb::Reply],
    certified: &mut Proven,
) -> Vec<Option<Result<Option<StepProof>, pb::ItemError>>> {
    let parsed: Vec<Option<Reply>> = replies.iter().map(|r| Reply::parse(r).ok()).collect();
    let (at, items): (Vec<usize>, Vec<Signed>) = parsed
        .iter()
        .zip(replies)
        .enumerate()
        .filter_map(|(i, (p, wire))| {
            let reply = p.as_ref()?;
            Some((
                i,
                Signed {
                    canonical: canonical::reply(&reply.to_wire()),
                    proof: wire.proof.as_ref(),
                    author: reply.author.as_str(),
                    notice_id: reply.notice_id.to_string(),
                    step: reply.reply_id.to_string(),
                },
            ))
        })
        .unzip();
    let mut out = vec![None; replies.len()];
    for (i, v) in at
        .into_iter()
        .zip(check(ctx, sender, "reply", &items, certified))
    {
        out[i] = Some(v);
    }
    out
}

/// The calling node's certificate (DER), as its TLS handshake presented it.
pub fn sender_cert<T>(req: &tonic::Request<T>) -> Vec<u8> {
    req.peer_certs()
        .and_then(|c| c.first().map(|c| c.as_ref().to_vec()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(signature: u8, index: u64, size: u64) -> Proof {
        Proof {
            signer: "440303".into(),
            index,
            size,
            path: Vec::new(),
            signature: vec![signature],
            cert: String::new(),
        }
    }

    #[test]
    fn only_a_batch_carried_whole_keeps_its_leaves() {
        let mut whole = WholeBatches {
            limit: 4,
            batches: Vec::new(),
        };
        // Batch 1 whole (out of order), batch 2 missing index 1, batch 3
        // claiming more items than the call holds.
        for (sig, index, size) in [(1, 1, 2), (2, 0, 2), (1, 0, 2), (3, 0, 1_000_000)] {
            whole.add(
                &proof(sig, index, size),
                format!("item {sig}/{index}").as_bytes(),
            );
        }
        assert_eq!(whole.batches.len(), 2, "the oversized one is not allocated");
        let mut proven = Proven::default();
        whole.keep(&mut proven);
        assert_eq!(proven.whole_leaves.len(), 1);
        let (sig, leaves) = &proven.whole_leaves[0];
        assert_eq!(sig, &vec![1u8]);
        assert_eq!(
            leaves,
            &vec![
                crate::proof::tree::leaf_hash(b"item 1/0"),
                crate::proof::tree::leaf_hash(b"item 1/1")
            ]
        );
    }
}
