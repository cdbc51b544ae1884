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
use crate::proof::sign::{self, Proof, ProofError};
use crate::proof::signer::{CallSigned, Signer, from_pb, index_only, is_index_only};
use crate::proof::tree::{self, Hash};
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
pub fn stored(notice_id: &str, step: &str, proof: Proof) -> StepProof {
    StepProof {
        notice_id: notice_id.to_string(),
        step: step.to_string(),
        proof,
    }
}

/// One item handed over by a peer, to check: its canonical bytes, its
/// proof, the district that must have signed it (a notice's origin, a
/// reply's author, an acknowledgement's destination) and the step it
/// proves. An item this node hands on (`onward`) gets its whole proof back,
/// path included, to travel on with.
pub struct Signed<'a> {
    pub canonical: Vec<u8>,
    pub proof: Option<&'a pb::Proof>,
    pub author: &'a str,
    pub notice_id: String,
    pub step: String,
    pub onward: bool,
}

/// An item's canonical bytes, made only when it carries a proof: an
/// unsigned item (taken during an upgrade) is never hashed.
pub fn canonical_if_signed(
    proof: Option<&pb::Proof>,
    canonical: impl FnOnce() -> Vec<u8>,
) -> Vec<u8> {
    if proof.is_some() {
        canonical()
    } else {
        Vec::new()
    }
}

/// A proof read from the wire, before its signature is checked.
enum Ready<'a> {
    /// Unsigned, taken during an upgrade.
    Unsigned,
    /// A whole proof, with the certificate to check it with.
    Whole(Proof, &'a [u8]),
    /// An index into the call's batch (`pb::CallBatch`).
    Member(u64),
}

/// Checks items handed over by the node whose certificate is `sender`
/// (the TLS peer's, or the one a response names). Items of the call's own
/// batch (`batch`, each carrying its index) are checked together: their
/// leaves give the root, one signature by `sender` covers them all. A whole
/// proof (a relayed item) is checked with the certificate it names, which
/// must be the network CA's and not revoked, or else `sender`'s. Per item:
/// the proof to keep (None for an unsigned item this node accepts during an
/// upgrade) or the refusal; the signers' certificates and the leaves of the
/// batches carried whole go into `proven`.
pub fn check(
    ctx: &NodeCtx,
    (sender, batch): (&[u8], Option<&pb::CallBatch>),
    field: &str,
    items: &[Signed<'_>],
    proven: &mut Proven,
) -> Vec<Result<Option<StepProof>, pb::ItemError>> {
    let refuse = |what: String| item_error(Code::PermissionDenied, what, &format!("{field}.proof"));
    // First what needs no signature check: presence, sizes, certificate,
    // who signed.
    let mut ready: Vec<Result<Ready, pb::ItemError>> = Vec::new();
    // Asked once per call, not per item: which certificates the CA vouches
    // for, and which signers may sign for which authors.
    let mut vouched: Vec<&[u8]> = Vec::new();
    let mut allowed: Vec<(&str, &str)> = Vec::new();
    for item in items {
        ready.push((|| {
            let Some(wire) = item.proof else {
                return if ctx.delivery.accept_unsigned {
                    Ok(Ready::Unsigned)
                } else {
                    Err(refuse(format!(
                        "{field}.proof: not signed; this node takes only signed items \
                         ([delivery] accept_unsigned is off)"
                    )))
                };
            };
            let (signer, ready) = if is_index_only(wire) {
                let Some(b) = batch else {
                    return Err(refuse(format!(
                        "{field}.proof: an index into the call's batch, but the call carries no batch signature"
                    )));
                };
                (b.signer.as_str(), Ready::Member(wire.index))
            } else {
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
                (wire.signer.as_str(), Ready::Whole(proof, cert))
            };
            if !allowed.iter().any(|(s, a)| *s == signer && *a == item.author) {
                let code = DistrictCode::parse("proof.signer", signer)
                    .map_err(|e| refuse(format!("{field}.proof.signer: {e}")))?;
                if code.as_str() != item.author && !ctx.answers_for(&code, item.author) {
                    return Err(refuse(format!(
                        "{field}.proof: signed by {code}, not by {} whose item it is",
                        item.author
                    )));
                }
                allowed.push((signer, item.author));
            }
            Ok(ready)
        })());
    }
    // The call's batch: one root from every item that carries an index
    // (refused ones too, so one bad item does not take the others' proof).
    let members = call_batch(sender, batch, items);
    let signed: Vec<(&[u8], &Proof, &[u8])> = items
        .iter()
        .zip(&ready)
        .filter_map(|(item, r)| match r {
            Ok(Ready::Whole(p, cert)) => Some((item.canonical.as_slice(), p, *cert)),
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
            let (mut proof, cert) = match r? {
                Ready::Unsigned => return Ok(None),
                Ready::Whole(proof, cert) => {
                    verdicts
                        .next()
                        .expect("a verdict per whole proof")
                        .map_err(|e| refuse(format!("{field}.proof: {e}")))?;
                    whole.add(&proof, &item.canonical);
                    (proof, cert)
                }
                Ready::Member(index) => {
                    let m = members
                        .as_ref()
                        .map_err(|e| refuse(format!("{field}.proof: {e}")))?
                        .as_ref()
                        .ok_or_else(|| refuse(format!("{field}.proof: no batch signature")))?;
                    (m.proof(index, item.onward), sender)
                }
            };
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
            Ok(Some(stored(&item.notice_id, &item.step, proof)))
        })
        .collect();
    whole.keep(proven);
    if let Ok(Some(m)) = members {
        proven.whole_leaves.push((m.signature, m.leaves));
    }
    out
}

/// A call's own batch, checked: its leaves by index, and every item's path
/// when one of them travels on.
struct Members {
    signer: String,
    size: u64,
    signature: Vec<u8>,
    leaves: Vec<Hash>,
    paths: Option<Vec<Vec<Hash>>>,
}

impl Members {
    /// The proof of item `index` as a node keeps it: without a path (the
    /// leaves are kept once), unless it travels on.
    fn proof(&self, index: u64, onward: bool) -> Proof {
        let path = match (&self.paths, onward) {
            (Some(paths), true) => paths.get(index as usize).cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        Proof {
            signer: self.signer.clone(),
            index,
            size: self.size,
            path,
            signature: self.signature.clone(),
            cert: String::new(),
        }
    }
}

/// Checks the call's batch (`batch`, signed by `sender`) over the items
/// that carry an index: one item for each index below its size, their
/// leaves giving the root whose statement the signature must cover. None
/// when no item carries an index.
fn call_batch(
    sender: &[u8],
    batch: Option<&pb::CallBatch>,
    items: &[Signed<'_>],
) -> Result<Option<Members>, ProofError> {
    let indexed: Vec<(u64, &Signed)> = items
        .iter()
        .filter_map(|i| Some((i.proof.filter(|p| is_index_only(p))?.index, i)))
        .collect();
    let Some(b) = batch.filter(|_| !indexed.is_empty()) else {
        return Ok(None);
    };
    // Bounded by the call's items before anything is allocated for it.
    if b.size != indexed.len() as u64 {
        return Err(ProofError::NotInBatch);
    }
    if b.signature.is_empty() {
        return Err(ProofError::Unsigned);
    }
    let mut slots: Vec<Option<Hash>> = vec![None; indexed.len()];
    let mut onward = false;
    for (index, item) in indexed {
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| slots.get_mut(i))
            .ok_or(ProofError::NotInBatch)?;
        if slot.is_some() {
            return Err(ProofError::NotInBatch);
        }
        *slot = Some(tree::leaf_hash(&item.canonical));
        onward |= item.onward;
    }
    let leaves: Vec<Hash> = slots
        .into_iter()
        .collect::<Option<_>>()
        .ok_or(ProofError::NotInBatch)?;
    let (root, paths) = if onward {
        let (root, paths) = tree::root_and_paths(&leaves);
        (root, Some(paths))
    } else {
        (tree::root(&leaves), None)
    };
    let certified = crate::identity::district_of_cert(sender)
        .map_err(|_| ProofError::BadCertificate)?
        .to_string();
    if certified != b.signer {
        return Err(ProofError::OtherDistrict {
            certified,
            signer: b.signer.clone(),
        });
    }
    if !crate::identity::signed_by(
        sender,
        &sign::statement(&b.signer, b.size, &root),
        &b.signature,
    ) {
        return Err(ProofError::BadSignature);
    }
    Ok(Some(Members {
        signer: b.signer.clone(),
        size: b.size,
        signature: b.signature.clone(),
        leaves,
        paths,
    }))
}

/// The batches a call carried whole (every index of each, once): their
/// leaf hashes are kept once instead of a path per item, as a node keeps
/// its own batches'.
struct WholeBatches {
    /// No batch larger than the call's items can be whole.
    limit: usize,
    /// Per signature: the batch's leaves by index.
    batches: Vec<(Vec<u8>, Vec<Option<Hash>>)>,
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
            *slot = Some(tree::leaf_hash(canonical));
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
/// proof already) as the call's batch: each gets its index on the wire,
/// the call its `CallBatch`. Returns each item's proof as this node keeps
/// it and the batch to send; the leaf hashes go into `proven` (a node keeps
/// its own batches' always).
#[allow(clippy::type_complexity)]
pub fn sign_own<T>(
    ctx: &NodeCtx,
    items: &[OutboxItem],
    wire: &mut [T],
    (canonical, set): (impl Fn(&T) -> Vec<u8>, impl Fn(&mut T, pb::Proof)),
    proven: &mut Proven,
) -> (Vec<Option<Proof>>, Option<pb::CallBatch>) {
    let mut out = vec![None; items.len()];
    let Some(signer) = &ctx.signer else {
        return (out, None);
    };
    let own: Vec<usize> = (0..items.len())
        .filter(|&i| !items[i].kind.is_relayed())
        .collect();
    let bytes: Vec<Vec<u8>> = own.iter().map(|&i| canonical(&wire[i])).collect();
    let Some(signed) = sign_call(signer, &bytes, proven) else {
        return (out, None);
    };
    for (i, p) in own.into_iter().zip(signed.proofs) {
        set(&mut wire[i], index_only(p.index));
        out[i] = Some(p);
    }
    (out, Some(signed.batch))
}

/// Signs canonical items as a call's batch (none when there are none) and
/// keeps its leaves in `proven`.
pub fn sign_call(signer: &Signer, items: &[Vec<u8>], proven: &mut Proven) -> Option<CallSigned> {
    if items.is_empty() {
        return None;
    }
    let mut signed = signer.sign_call(items);
    proven.whole_leaves.push((
        signed.batch.signature.clone(),
        std::mem::take(&mut signed.leaves),
    ));
    Some(signed)
}

/// The destination's signed acknowledgements of this node's notices,
/// checked before they are recorded: the ids of those that do not verify
/// (they are sent again), and the proofs of those that do.
pub fn check_acks(
    ctx: &NodeCtx,
    ends: &[(String, String)],
    response: &pb::DeliverNoticesResponse,
    proven: &mut Proven,
) -> std::collections::HashSet<String> {
    let by_id: std::collections::HashMap<&str, &str> = ends
        .iter()
        .map(|(id, destination)| (id.as_str(), destination.as_str()))
        .collect();
    let items: Vec<Signed> = response
        .acks
        .iter()
        .filter(|a| a.error.is_none() && !a.relayed && a.received_at.is_some())
        .filter_map(|a| {
            let destination: &str = by_id.get(a.notice_id.as_str())?;
            Some(Signed {
                canonical: canonical_if_signed(a.proof.as_ref(), || {
                    canonical::ack(
                        &a.notice_id,
                        destination,
                        a.received_at.as_ref(),
                        a.due_at.as_ref(),
                        a.due_provisional,
                    )
                }),
                proof: a.proof.as_ref(),
                author: destination,
                notice_id: a.notice_id.clone(),
                step: ACK.to_string(),
                onward: false,
            })
        })
        .collect();
    let vouched = items.iter().all(|i| i.proof.is_none())
        || ctx.trust.vouches_for(&response.certificate).is_ok();
    let mut bad = std::collections::HashSet::new();
    let verdicts = if vouched {
        check(
            ctx,
            (&response.certificate, response.batch.as_ref()),
            "ack",
            &items,
            proven,
        )
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
/// does not (which still gives its leaf to the call's batch).
#[allow(clippy::type_complexity)]
pub fn check_replies(
    ctx: &NodeCtx,
    (sender, batch): (&[u8], Option<&pb::CallBatch>),
    replies: &[pb::Reply],
    certified: &mut Proven,
) -> Vec<Option<Result<Option<StepProof>, pb::ItemError>>> {
    let parsed: Vec<Option<Reply>> = replies.iter().map(|r| Reply::parse(r).ok()).collect();
    let items: Vec<Signed> = parsed
        .iter()
        .zip(replies)
        .map(|(p, wire)| match p {
            Some(reply) => Signed {
                canonical: canonical_if_signed(wire.proof.as_ref(), || {
                    canonical::reply(&reply.to_wire())
                }),
                proof: wire.proof.as_ref(),
                author: reply.author.as_str(),
                notice_id: reply.notice_id.to_string(),
                step: reply.reply_id.to_string(),
                onward: reply
                    .recipient
                    .as_ref()
                    .is_some_and(|to| !ctx.answers_for(&ctx.district, to.as_str())),
            },
            None => Signed {
                canonical: canonical_if_signed(wire.proof.as_ref(), || canonical::reply(wire)),
                proof: wire.proof.as_ref(),
                author: wire.author.as_str(),
                notice_id: wire.notice_id.clone(),
                step: wire.reply_id.clone(),
                onward: false,
            },
        })
        .collect();
    check(ctx, (sender, batch), "reply", &items, certified)
        .into_iter()
        .zip(&parsed)
        .map(|(v, p)| p.as_ref().map(|_| v))
        .collect()
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
