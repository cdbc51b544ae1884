//! `migrex.v1.Exchange`: notices and replies arriving from peers.
//!
//! Every item is checked against the caller's certificate identity, parsed,
//! and stored in one transaction per batch; the acks go out only after that
//! transaction committed. Receipt is idempotent by notice id and reply id
//! (same content → the original ack; other content → ALREADY_EXISTS).
//! Items for districts this node relays (中转) are taken for forwarding
//! (`exchange::relay`) in the same transaction.

use super::proofs::{self, Signed};
use super::relay;
use crate::calendar::Due;
use crate::context::NodeCtx;
use crate::domain::{
    CLOCK_SKEW, Delivery, Direction, DistrictCode, NoticeContent, NoticeStatus, ParseContext,
    Party, Reply, ReplyBody, Verdict, ts_to_pb,
};
use crate::grpc::{item_error, refusal};
use crate::identity::peer_district;
use crate::pb;
use crate::proof::canonical;
use crate::proof::signer::to_pb;
use crate::service::{ServiceError, replies};
use crate::store::{EventKey, NewNotice, Proven, Refs, StepProof, StoreError, Tx};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;
use tonic::{Code, Request, Response, Status};

/// A notice past the checks that need no store, with where it goes; or
/// its refusal.
type Admitted = Result<(NoticeContent, Way), Box<pb::NoticeAck>>;

/// Where an admitted notice goes.
enum Way {
    /// Stored here; `via_relay`: handed over by a relay, not by its
    /// origin's node, which learns of its arrival by a `Delivery` reply.
    Here { via_relay: bool },
    /// Forwarded by this node as a relay, through this route.
    Onward { route: String },
}

pub struct ExchangeService {
    pub ctx: Arc<NodeCtx>,
}

impl ExchangeService {
    /// The checks of one notice that need no store: it parses, comes from
    /// the calling peer's district (or one it relays for, or through this
    /// node's relay) and is for ours or one this node relays for. A refusal
    /// is its ack.
    fn admit(&self, peer: &DistrictCode, n: &pb::Notice, now: OffsetDateTime) -> Admitted {
        let refuse = |error| {
            Box::new(pb::NoticeAck {
                notice_id: n.id.clone(),
                error: Some(error),
                ..Default::default()
            })
        };
        // Tolerance for clocks of two nodes on either side of midnight.
        let today = self.ctx.deadlines.local_date(now + CLOCK_SKEW);
        let content = NoticeContent::parse(n, &ParseContext { today })
            .map_err(|e| refuse(refusal(&e.into())))?;
        let origin = content.origin.as_str();
        if !self.ctx.may_speak_for(peer, origin) {
            return Err(refuse(item_error(
                Code::PermissionDenied,
                format!(
                    "notice.origin {origin} is not the calling peer's district {peer} nor one it relays for"
                ),
                "notice.origin",
            )));
        }
        let destination = content.destination.as_str();
        let way = if self.ctx.answers_for(&self.ctx.district, destination) {
            Way::Here {
                via_relay: !self.ctx.answers_for(peer, origin),
            }
        } else {
            Way::Onward {
                route: relay::route(&self.ctx, origin, destination, "notice.destination")
                    .map_err(refuse)?,
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
    async fn receive_notices(
        &self,
        tx: &mut Tx,
        admitted: &[Admitted],
        (proven, certified): (&[Option<StepProof>], &Proven),
        now: OffsetDateTime,
    ) -> Result<(Vec<Option<pb::NoticeAck>>, Vec<String>, Refs), StoreError> {
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
        for (item, proof) in admitted.iter().zip(proven) {
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
            let hash = content.content_hash();
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
            let rule = self.ctx.deadlines.policy.rule_for(
                content.category,
                content.kind(),
                content.urgency,
            );
            let due = self.ctx.deadlines.due(now, rule);
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
            whole_leaves: Vec::new(),
        };
        self.sign_acks(admitted, &mut acks, &mut proven);
        let mut refs = tx.keep_batches(&proven).await?;
        for row in &mut rows {
            row.proofs = refs.take_notice(&row.content.id.to_string());
        }
        tx.insert_notices(&rows).await?;
        let mut routes = Vec::new();
        for (content, delivery) in deliveries {
            match replies::queue_delivery(&self.ctx, tx, content, delivery).await {
                Ok(route) => routes.push(route),
                Err(ServiceError::Store(e)) => return Err(e),
                Err(ServiceError::Refused(e)) => {
                    return Err(StoreError::Corrupt(format!("delivery reply: {e}")));
                }
            }
        }
        routes.dedup();
        Ok((acks, routes, refs))
    }

    #[allow(clippy::too_many_arguments)]
    async fn receive_reply(
        &self,
        tx: &mut Tx,
        (peer, sender): (&DistrictCode, &[u8]),
        r: &pb::Reply,
        verdict: Option<&Result<Option<StepProof>, pb::ItemError>>,
        now: OffsetDateTime,
        wake: &mut Vec<String>,
        kept: &mut Vec<StepProof>,
    ) -> Result<pb::ReplyAck, StoreError> {
        let refuse = |error| pb::ReplyAck {
            reply_id: r.reply_id.clone(),
            error: Some(error),
            late: false,
        };
        let reply = match Reply::parse(r) {
            Ok(x) => x,
            Err(e) => return Ok(refuse(refusal(&e.into()))),
        };
        if !self.ctx.may_speak_for(peer, reply.author.as_str()) {
            return Ok(refuse(item_error(
                Code::PermissionDenied,
                format!(
                    "reply.author {} is not the calling peer's district {peer} nor one it relays for",
                    reply.author
                ),
                "reply.author",
            )));
        }
        let proof = match verdict {
            Some(Err(e)) => return Ok(refuse(e.clone())),
            Some(Ok(p)) => p.clone(),
            None => None,
        };
        if let Some(to) = &reply.recipient
            && !self.ctx.answers_for(&self.ctx.district, to.as_str())
        {
            // The author's proof travels on, with its certificate.
            let onward = r.proof.clone().map(|mut p| {
                if p.certificate.is_empty() {
                    p.certificate = sender.to_vec();
                }
                p
            });
            let (ack, route) =
                relay::take_reply(&self.ctx, tx, peer, (&reply, onward), to, now).await?;
            wake.extend(route);
            return Ok(ack);
        }
        let ok = pb::ReplyAck {
            reply_id: reply.reply_id.to_string(),
            ..Default::default()
        };
        if let Some(hash) = tx.reply_hash(&reply.reply_id.to_string()).await? {
            return Ok(if hash == reply.content_hash() {
                ok
            } else {
                refuse(item_error(
                    Code::AlreadyExists,
                    "this reply id was received before with other content",
                    "reply.reply_id",
                ))
            });
        }
        let notice_id = reply.notice_id.to_string();
        let Some(notice) = tx.get_notice(&notice_id).await? else {
            return Ok(refuse(item_error(
                Code::NotFound,
                format!("reply.notice_id: notice {notice_id} is not known here"),
                "reply.notice_id",
            )));
        };
        // The author's district, or its successor by a division-code change.
        let covered = |code: &str| self.ctx.answers_for(&reply.author, code);
        // The party the author is, as far as this node's copy says.
        let party = match notice.life.direction {
            Direction::Outbound if covered(&notice.content.destination) => Party::Destination,
            Direction::Inbound if covered(&notice.content.origin) => Party::Origin,
            _ => Party::Stranger,
        };
        match notice
            .life
            .check(party, &reply.body, now, "reply.notice_id")
        {
            // An answer that reaches a withdrawn origin crossed the
            // withdrawal only while the destination has not said it took
            // the withdrawal (docs/protocol.md §6); after that it came
            // after the withdrawal, and the destination should not have
            // sent it.
            Ok(Verdict::Apply)
                if notice.life.status == NoticeStatus::Withdrawn
                    && matches!(
                        reply.body,
                        ReplyBody::Receipt { .. } | ReplyBody::Feedback(_)
                    )
                    && tx.withdrawal_taken(&notice_id).await? =>
            {
                return Ok(refuse(item_error(
                    Code::FailedPrecondition,
                    "reply.notice_id: the destination took this notice's withdrawal before this answer",
                    "reply.notice_id",
                )));
            }
            Ok(Verdict::Apply) => {}
            // A deadline this node already holds (its notice's ack, sent
            // again after the change, carried it), or a reminder about a
            // notice answered meanwhile: kept for the journey, no refusal.
            Ok(Verdict::AlreadyDone)
                if matches!(
                    reply.body,
                    ReplyBody::DeadlineChange(_) | ReplyBody::Reminder(_)
                ) =>
            {
                tx.insert_reply(&reply, Direction::Inbound, now).await?;
                kept.extend(proof);
                return Ok(ok);
            }
            // A withdrawal that crossed the answer here (docs/protocol.md
            // §6): on record as late, the notice stays answered.
            Ok(Verdict::TooLate) => {
                if let ReplyBody::Withdrawal {
                    withdrawn_at,
                    reason,
                } = &reply.body
                {
                    tx.set_withdrawn_late(&notice_id, *withdrawn_at, reason)
                        .await?;
                }
                tx.insert_reply(&reply, Direction::Inbound, now).await?;
                kept.extend(proof);
                tracing::info!(notice = %notice_id, "a withdrawal arrived after the notice was answered; kept as too late");
                return Ok(pb::ReplyAck { late: true, ..ok });
            }
            Ok(Verdict::AlreadyDone) => {
                return Ok(refuse(item_error(
                    Code::FailedPrecondition,
                    "reply.notice_id: the notice already holds this reply; one per notice",
                    "reply.notice_id",
                )));
            }
            Err(e) => return Ok(refuse(refusal(&e))),
        }
        tx.record_reply(&notice_id, &reply.body).await?;
        tx.insert_reply(&reply, Direction::Inbound, now).await?;
        kept.extend(proof);
        Ok(ok)
    }

    /// The origin's proof of each admitted notice, checked against what
    /// this node would store; a notice that does not verify is refused
    /// (its ack says why). Per item: the proof to keep.
    fn check_notices(
        &self,
        sender: &[u8],
        notices: &[pb::Notice],
        admitted: &mut [Admitted],
        certified: &mut Proven,
    ) -> Vec<Option<StepProof>> {
        let signed: Vec<(usize, Signed)> = admitted
            .iter()
            .zip(notices)
            .enumerate()
            .filter_map(|(i, (a, wire))| {
                let (content, _) = a.as_ref().ok()?;
                Some((
                    i,
                    Signed {
                        canonical: canonical::notice(&content.to_wire()),
                        proof: wire.proof.as_ref(),
                        author: content.origin.as_str(),
                        notice_id: content.id.to_string(),
                        step: proofs::NOTICE.to_string(),
                    },
                ))
            })
            .collect();
        let (at, items): (Vec<usize>, Vec<Signed>) = signed.into_iter().unzip();
        let verdicts = proofs::check(&self.ctx, sender, "notice", &items, certified);
        let mut kept = vec![None; admitted.len()];
        for (i, verdict) in at.into_iter().zip(verdicts) {
            match verdict {
                Ok(p) => kept[i] = p,
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
    /// signature for the call) and keeps their proofs.
    fn sign_acks(
        &self,
        admitted: &[Admitted],
        acks: &mut [Option<pb::NoticeAck>],
        proven: &mut Proven,
    ) {
        let Some(signer) = &self.ctx.signer else {
            return;
        };
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
        if items.is_empty() {
            return;
        }
        let (signed, leaves) = signer.sign_keeping(&items);
        if let Some(first) = signed.first() {
            proven.whole_leaves.push((first.signature.clone(), leaves));
        }
        for (i, p) in at.into_iter().zip(signed) {
            let Some(ack) = acks[i].as_mut() else {
                continue;
            };
            ack.proof = Some(to_pb(&p));
            proven
                .proofs
                .push(proofs::stored(&ack.notice_id, proofs::ACK, &p));
        }
        proven.certificate(proofs::own(signer));
    }
}

#[tonic::async_trait]
impl pb::exchange_server::Exchange for ExchangeService {
    async fn deliver_notices(
        &self,
        req: Request<pb::DeliverNoticesRequest>,
    ) -> Result<Response<pb::DeliverNoticesResponse>, Status> {
        let started = std::time::Instant::now();
        let peer = peer_district(&req, &self.ctx.trust)?;
        let sender = proofs::sender_cert(&req);
        let mut notices = req.into_inner().notices;
        super::check_batch(&self.ctx, notices.len())?;
        let now = self.ctx.now();
        let mut admitted: Vec<_> = notices.iter().map(|n| self.admit(&peer, n, now)).collect();
        // The origin's signature, checked before anything is stored.
        let mut certified = Proven::default();
        let proven = self.check_notices(&sender, &notices, &mut admitted, &mut certified);
        // A relay hands the origin's certificate on with the notice.
        for (a, wire) in admitted.iter().zip(notices.iter_mut()) {
            if let (Ok((_, Way::Onward { .. })), Some(p)) = (a, wire.proof.as_mut())
                && p.certificate.is_empty()
            {
                p.certificate = sender.clone();
            }
        }
        let (acks, wake) = super::retrying_races(|| async {
            let mut tx = self.ctx.store.begin().await?;
            let (mut acks, mut wake, refs) = self
                .receive_notices(&mut tx, &admitted, (&proven, &certified), now)
                .await?;
            let onward: Vec<relay::Onward> = admitted
                .iter()
                .zip(&notices)
                .filter_map(|(a, wire)| match a {
                    Ok((content, Way::Onward { route })) => Some(relay::Onward {
                        content,
                        wire,
                        route: route.clone(),
                    }),
                    _ => None,
                })
                .collect();
            if !onward.is_empty() {
                let (relayed, routes) =
                    relay::take_notices(&self.ctx, &mut tx, &peer, &onward, now).await?;
                let mut relayed = relayed.into_iter();
                for slot in acks.iter_mut().filter(|a| a.is_none()) {
                    *slot = relayed.next();
                }
                wake.extend(routes);
            }
            let acks: Vec<pb::NoticeAck> = acks.into_iter().flatten().collect();
            // Proofs of notices stored before (a redelivery) keep their first.
            tx.write_refs(&refs).await?;
            tx.commit().await?;
            Ok((acks, wake))
        })
        .await?;
        drop(notices);
        for route in &wake {
            self.ctx.wake(route);
        }
        let refused = acks.iter().filter(|a| a.error.is_some()).count();
        tracing::debug!(peer = %peer, items = acks.len(), refused, ms = started.elapsed().as_millis() as u64, "notices received");
        let certificate = self
            .ctx
            .signer
            .as_ref()
            .map(|s| s.certificate().to_vec())
            .unwrap_or_default();
        Ok(Response::new(pb::DeliverNoticesResponse {
            acks,
            certificate,
        }))
    }

    async fn deliver_replies(
        &self,
        req: Request<pb::DeliverRepliesRequest>,
    ) -> Result<Response<pb::DeliverRepliesResponse>, Status> {
        let peer = peer_district(&req, &self.ctx.trust)?;
        let sender = proofs::sender_cert(&req);
        let replies = req.into_inner().replies;
        super::check_batch(&self.ctx, replies.len())?;
        let now = self.ctx.now();
        // The authors' signatures, checked before anything is stored (a
        // reply that does not parse is refused for that by receive_reply).
        let mut certified = Proven::default();
        let verdicts = proofs::check_replies(&self.ctx, &sender, &replies, &mut certified);
        let (acks, wake) = super::retrying_races(|| async {
            let mut tx = self.ctx.store.begin().await?;
            let mut acks = Vec::with_capacity(replies.len());
            let mut wake = Vec::new();
            let mut kept = Vec::new();
            for (r, verdict) in replies.iter().zip(&verdicts) {
                acks.push(
                    self.receive_reply(
                        &mut tx,
                        (&peer, &sender),
                        r,
                        verdict.as_ref(),
                        now,
                        &mut wake,
                        &mut kept,
                    )
                    .await?,
                );
            }
            let proven = Proven {
                proofs: kept,
                certificates: certified.certificates.clone(),
                whole_leaves: Vec::new(),
            };
            tx.keep_proofs(&proven).await?;
            tx.commit().await?;
            Ok((acks, wake))
        })
        .await?;
        for route in &wake {
            self.ctx.wake(route);
        }
        tracing::debug!(peer = %peer, items = acks.len(), "replies received");
        Ok(Response::new(pb::DeliverRepliesResponse { acks }))
    }

    async fn reconcile(
        &self,
        req: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let peer = peer_district(&req, &self.ctx.trust)?;
        let answer = super::reconcile::asked(&self.ctx, &peer, req.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn keep_audit_head(
        &self,
        req: Request<pb::AuditHead>,
    ) -> Result<Response<pb::KeepAuditHeadResponse>, Status> {
        super::witness::keep(&self.ctx, req)
            .await
            .map(Response::new)
    }

    async fn held_audit_heads(
        &self,
        req: Request<pb::HeldAuditHeadsRequest>,
    ) -> Result<Response<pb::HeldAuditHeadsResponse>, Status> {
        super::witness::held(&self.ctx, req)
            .await
            .map(Response::new)
    }

    async fn hello(
        &self,
        req: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        let peer = peer_district(&req, &self.ctx.trust)?;
        let routed = self.ctx.peer_back(peer.as_str());
        tracing::info!(peer = %peer, routed, "peer says it is back");
        Ok(Response::new(pb::HelloResponse {}))
    }
}
