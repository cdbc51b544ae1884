//! Notices arriving from a peer, before and as they are stored: the checks
//! that need no store (`admit`), the origin's proofs (`check_notices`), one
//! transaction's worth of rows (`receive_notices`) and the signed
//! acknowledgements (`sign_acks`). `exchange::server` calls these in that
//! order and answers only after the transaction committed.

use super::proofs::{self, Signed};
use super::relay;
use crate::calendar::Due;
use crate::context::NodeCtx;
use crate::domain::{
    CLOCK_SKEW, Delivery, Direction, DistrictCode, NoticeContent, NoticeStatus, ParseContext,
    ts_to_pb,
};
use crate::grpc::{item_error, refusal};
use crate::pb;
use crate::proof::canonical;
use crate::proof::sign::Proof;
use crate::proof::signer::{index_only, to_pb};
use crate::service::{ServiceError, replies};
use crate::store::{EventKey, NewNotice, Proven, Refs, StepProof, StoreError, Tx};
use std::collections::HashMap;
use time::OffsetDateTime;
use tonic::Code;

/// A notice past the checks that need no store, with where it goes; or
/// its refusal.
pub type Admitted = Result<(NoticeContent, Way), Box<pb::NoticeAck>>;

/// What `receive_notices` gives back: each item's ack (None for those
/// forwarded), the routes to wake, the proof references to write, and the
/// signature over the call's acknowledgements.
pub struct Received {
    pub acks: Vec<Option<pb::NoticeAck>>,
    pub routes: Vec<String>,
    pub refs: Refs,
    pub batch: Option<pb::CallBatch>,
}

/// The proof an item travels on with from a relay: its author's whole
/// proof (path included), with the certificate it came with, or the
/// calling node's when it came from its author.
pub fn onward_proof(kept: &Proof, wire: Option<&pb::Proof>, sender: &[u8]) -> pb::Proof {
    let mut p = to_pb(kept);
    p.certificate = match wire {
        Some(w) if !w.certificate.is_empty() => w.certificate.clone(),
        _ => sender.to_vec(),
    };
    p
}

/// A notice's proof as checked (None when unsigned or refused) and its
/// content hash when checking it made it already.
pub type Checked = (Option<StepProof>, Option<Vec<u8>>);

/// Where an admitted notice goes.
pub enum Way {
    /// Stored here; `via_relay`: handed over by a relay, not by its
    /// origin's node, which learns of its arrival by a `Delivery` reply.
    Here { via_relay: bool },
    /// Forwarded by this node as a relay, through this route.
    Onward { route: String },
}

/// The checks of one notice that need no store: it parses, comes from
/// the calling peer's district (or one it relays for, or through this
/// node's relay) and is for ours or one this node relays for. A refusal
/// is its ack.
pub fn admit(ctx: &NodeCtx, peer: &DistrictCode, n: &pb::Notice, now: OffsetDateTime) -> Admitted {
    let refuse = |error| {
        Box::new(pb::NoticeAck {
            notice_id: n.id.clone(),
            error: Some(error),
            ..Default::default()
        })
    };
    // Tolerance for clocks of two nodes on either side of midnight.
    let today = ctx.deadlines.local_date(now + CLOCK_SKEW);
    let content =
        NoticeContent::parse(n, &ParseContext { today }).map_err(|e| refuse(refusal(&e.into())))?;
    let origin = content.origin.as_str();
    if !ctx.may_speak_for(peer, origin) {
        return Err(refuse(item_error(
            Code::PermissionDenied,
            format!(
                "notice.origin {origin} is not the calling peer's district {peer} nor one it relays for"
            ),
            "notice.origin",
        )));
    }
    let destination = content.destination.as_str();
    let way = if ctx.answers_for(&ctx.district, destination) {
        Way::Here {
            via_relay: !ctx.answers_for(peer, origin),
        }
    } else {
        Way::Onward {
            route: relay::route(ctx, origin, destination, "notice.destination").map_err(refuse)?,
        }
    };
    Ok((content, way))
}

/// Stores the admitted notices for this node in `tx` and returns the ack
/// of each item, in order (None for those it forwards), and the routes
/// of the `Delivery` replies it queued. Each step is one statement for the whole batch:
/// which ids are known (a redelivery gets its original ack, other
/// content with a known id is refused), which events are already open
/// (the later notice is flagged `duplicate_of` the earliest), then one
/// insert. Within the batch, items behave as if received one by one.
pub async fn receive_notices(
    ctx: &NodeCtx,
    tx: &mut Tx,
    admitted: &[Admitted],
    (proven, certified): (&[Checked], &Proven),
    now: OffsetDateTime,
) -> Result<Received, StoreError> {
    let fresh: Vec<&NoticeContent> = admitted
        .iter()
        .filter_map(|a| match a {
            Ok((c, Way::Here { .. })) => Some(c),
            _ => None,
        })
        .collect();
    let ids: Vec<String> = fresh.iter().map(|c| c.id.to_string()).collect();
    let known = tx.notice_receipts(&ids).await?;
    let new: Vec<&NoticeContent> = fresh
        .iter()
        .zip(&ids)
        .filter(|(_, id)| !known.contains_key(*id))
        .map(|(c, _)| *c)
        .collect();
    let mut open = tx.open_events(&new).await?;
    let mut taken: HashMap<String, (Vec<u8>, Due)> = HashMap::new();
    let mut rows = Vec::new();
    let mut deliveries = Vec::new();
    let mut acks = Vec::with_capacity(admitted.len());
    let mut kept = Vec::new();
    for (item, (proof, hash)) in admitted.iter().zip(proven) {
        let (content, via_relay) = match item {
            Ok((c, Way::Here { via_relay })) => (c, *via_relay),
            Ok((_, Way::Onward { .. })) => {
                acks.push(None);
                continue;
            }
            Err(refused) => {
                acks.push(Some(pb::NoticeAck::clone(refused)));
                continue;
            }
        };
        let id = content.id.to_string();
        let hash = hash.clone().unwrap_or_else(|| content.content_hash());
        let stored = known
            .get(&id)
            .map(|s| {
                let due = s.due_at.map(|at| (at, s.due_provisional));
                (s.content_hash.as_slice(), s.received_at, due)
            })
            .or_else(|| {
                taken
                    .get(&id)
                    .map(|(h, due)| (h.as_slice(), Some(now), Some((due.at, due.provisional))))
            });
        if let Some((stored_hash, received_at, due)) = stored {
            acks.push(Some(if stored_hash != hash.as_slice() {
                pb::NoticeAck {
                    notice_id: id.clone(),
                    error: Some(item_error(
                        Code::AlreadyExists,
                        format!("notice {id} was received before with other content"),
                        "notice.id",
                    )),
                    ..Default::default()
                }
            } else {
                pb::NoticeAck {
                    notice_id: id,
                    received_at: received_at.map(ts_to_pb),
                    due_at: due.map(|(at, _)| ts_to_pb(at)),
                    due_provisional: due.is_some_and(|(_, p)| p),
                    ..Default::default()
                }
            }));
            continue;
        }
        let rule = ctx
            .deadlines
            .policy
            .rule_for(content.category, content.kind(), content.urgency);
        let due = ctx.deadlines.due(now, rule);
        let event = EventKey::of(content);
        let duplicate_of = open.get(&event).cloned();
        match &duplicate_of {
            Some(first) => {
                tracing::info!(notice = %id, duplicate_of = %first, subject = %content.subject.id_number.masked(), "same event reported again; flagged as duplicate");
            }
            None => {
                open.insert(event, id.clone());
            }
        }
        taken.insert(id.clone(), (hash, due));
        kept.extend(proof.clone());
        if via_relay {
            deliveries.push((
                content,
                Delivery {
                    received_at: now,
                    due_at: due.at,
                    provisional: due.provisional,
                },
            ));
        }
        rows.push(NewNotice {
            content,
            direction: Direction::Inbound,
            status: NoticeStatus::Pending,
            received: Some((now, due)),
            duplicate_of,
            acknowledged: None,
            answered: None,
            proofs: (None, None),
        });
        acks.push(Some(pb::NoticeAck {
            notice_id: id,
            received_at: Some(ts_to_pb(now)),
            due_at: Some(ts_to_pb(due.at)),
            due_provisional: due.provisional,
            ..Default::default()
        }));
    }
    // The acknowledgements are signed, and every proof's batch kept,
    // before the rows are written: a new row is written with its
    // proofs' references, not updated after.
    let mut proven = Proven {
        proofs: kept,
        certificates: certified.certificates.clone(),
        whole_leaves: certified.whole_leaves.clone(),
    };
    let batch = sign_acks(ctx, admitted, &mut acks, &mut proven);
    let mut refs = tx.keep_batches(&proven).await?;
    for row in &mut rows {
        row.proofs = refs.take_notice(&row.content.id.to_string());
    }
    tx.insert_notices(&rows).await?;
    let mut routes = Vec::new();
    for (content, delivery) in deliveries {
        match replies::queue_delivery(ctx, tx, content, delivery).await {
            Ok(route) => routes.push(route),
            Err(ServiceError::Store(e)) => return Err(e),
            Err(ServiceError::Refused(e)) => {
                return Err(StoreError::Corrupt(format!("delivery reply: {e}")));
            }
        }
    }
    routes.dedup();
    Ok(Received {
        acks,
        routes,
        refs,
        batch,
    })
}

/// The origin's proof of each admitted notice, checked against what
/// this node would store; a notice that does not verify is refused
/// (its ack says why). Per item: the proof to keep.
pub fn check_notices(
    ctx: &NodeCtx,
    (sender, batch): (&[u8], Option<&pb::CallBatch>),
    notices: &[pb::Notice],
    admitted: &mut [Admitted],
    certified: &mut Proven,
) -> Vec<Checked> {
    // The content hash of a signed notice comes from the wire form its
    // canonical form is made from, built once.
    let mut hashes: Vec<Option<Vec<u8>>> = vec![None; admitted.len()];
    // Every notice, refused ones too: each gives its leaf to the call's
    // batch (a refused one in the form it came in).
    let items: Vec<Signed> = admitted
        .iter()
        .zip(notices)
        .zip(hashes.iter_mut())
        .map(|((a, wire), hash)| match a {
            Ok((content, way)) => Signed {
                canonical: proofs::canonical_if_signed(wire.proof.as_ref(), || {
                    let stored = content.to_wire();
                    *hash = Some(NoticeContent::hash_of(&stored));
                    canonical::notice(&stored)
                }),
                proof: wire.proof.as_ref(),
                author: content.origin.as_str(),
                notice_id: content.id.to_string(),
                step: proofs::NOTICE.to_string(),
                onward: matches!(way, Way::Onward { .. }),
            },
            Err(_) => Signed {
                canonical: proofs::canonical_if_signed(wire.proof.as_ref(), || {
                    canonical::notice(wire)
                }),
                proof: wire.proof.as_ref(),
                author: wire.origin.as_str(),
                notice_id: wire.id.clone(),
                step: proofs::NOTICE.to_string(),
                onward: false,
            },
        })
        .collect();
    let verdicts = proofs::check(ctx, (sender, batch), "notice", &items, certified);
    let mut kept: Vec<Checked> = hashes.into_iter().map(|h| (None, h)).collect();
    for (i, verdict) in verdicts.into_iter().enumerate() {
        if admitted[i].is_err() {
            continue;
        }
        match verdict {
            Ok(p) => kept[i].0 = p,
            Err(error) => {
                tracing::warn!(notice = %notices[i].id, error = %error.message, "notice refused: its signature does not verify");
                admitted[i] = Err(Box::new(pb::NoticeAck {
                    notice_id: notices[i].id.clone(),
                    error: Some(error),
                    ..Default::default()
                }));
            }
        }
    }
    kept
}

/// Signs this node's acknowledgements of the notices it holds (one
/// signature for the call, each ack carrying its index) and keeps their
/// proofs; returns the call's batch.
pub fn sign_acks(
    ctx: &NodeCtx,
    admitted: &[Admitted],
    acks: &mut [Option<pb::NoticeAck>],
    proven: &mut Proven,
) -> Option<pb::CallBatch> {
    let signer = ctx.signer.as_ref()?;
    let mut at = Vec::new();
    let mut items = Vec::new();
    for (i, (a, ack)) in admitted.iter().zip(acks.iter()).enumerate() {
        if let (Ok((content, Way::Here { .. })), Some(ack)) = (a, ack)
            && ack.error.is_none()
            && ack.received_at.is_some()
        {
            at.push(i);
            items.push(canonical::ack(
                &ack.notice_id,
                content.destination.as_str(),
                ack.received_at.as_ref(),
                ack.due_at.as_ref(),
                ack.due_provisional,
            ));
        }
    }
    let signed = proofs::sign_call(signer, &items, proven)?;
    for (i, p) in at.into_iter().zip(signed.proofs) {
        let Some(ack) = acks[i].as_mut() else {
            continue;
        };
        ack.proof = Some(index_only(p.index));
        proven
            .proofs
            .push(proofs::stored(&ack.notice_id, proofs::ACK, p));
    }
    proven.certificate(proofs::own(signer));
    Some(signed.batch)
}
