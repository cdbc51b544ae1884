//! `migrex.v1.Exchange`: notices and replies arriving from peers.
//!
//! Every item is checked against the caller's certificate identity, parsed,
//! and stored in one transaction per batch; the acks go out only after that
//! transaction committed. Receipt is idempotent by notice id and reply id
//! (same content → the original ack; other content → ALREADY_EXISTS).
//! Items for districts this node relays (中转) are taken for forwarding
//! (`exchange::relay`) in the same transaction.

use super::inbound::{self, Received, Way, onward_proof};
use super::proofs;
use super::relay;
use crate::context::NodeCtx;
use crate::domain::{Direction, DistrictCode, NoticeStatus, Party, Reply, ReplyBody, Verdict};
use crate::grpc::{item_error, refusal};
use crate::identity::peer_district;
use crate::pb;
use crate::store::{Proven, StepProof, StoreError, Tx};
use std::sync::Arc;
use time::OffsetDateTime;
use tonic::{Code, Request, Response, Status};

pub struct ExchangeService {
    pub ctx: Arc<NodeCtx>,
}

impl ExchangeService {
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
            let onward = proof
                .as_ref()
                .map(|k| onward_proof(&k.proof, r.proof.as_ref(), sender));
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
            // sent it. Through a relay, "taken" is the relay's word, not
            // the destination's: a feedback is then taken, since the
            // destination answers only before it takes a withdrawal (which
            // then reaches it late), so both ends agree on the answer.
            Ok(Verdict::Apply)
                if notice.life.status == NoticeStatus::Withdrawn
                    && matches!(
                        reply.body,
                        ReplyBody::Receipt { .. } | ReplyBody::Feedback(_)
                    )
                    && !(notice.relayed.is_some()
                        && matches!(reply.body, ReplyBody::Feedback(_)))
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
        let pb::DeliverNoticesRequest { mut notices, batch } = req.into_inner();
        super::check_batch(&self.ctx, notices.len())?;
        let now = self.ctx.now();
        let mut admitted: Vec<_> = notices
            .iter()
            .map(|n| inbound::admit(&self.ctx, &peer, n, now))
            .collect();
        // The origin's signature, checked before anything is stored.
        let mut certified = Proven::default();
        let proven = inbound::check_notices(
            &self.ctx,
            (&sender, batch.as_ref()),
            &notices,
            &mut admitted,
            &mut certified,
        );
        // A relay hands the origin's whole proof on with the notice, with
        // the origin's certificate.
        for ((a, wire), (kept, _)) in admitted.iter().zip(notices.iter_mut()).zip(&proven) {
            if let Ok((_, Way::Onward { .. })) = a {
                wire.proof = kept
                    .as_ref()
                    .map(|k| onward_proof(&k.proof, wire.proof.as_ref(), &sender));
            }
        }
        let (acks, wake, batch) = super::retrying_races(|| async {
            let mut tx = self.ctx.store.begin().await?;
            let Received {
                mut acks,
                routes: mut wake,
                refs,
                batch,
            } = inbound::receive_notices(&self.ctx, &mut tx, &admitted, (&proven, &certified), now)
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
            Ok((acks, wake, batch))
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
            batch,
        }))
    }

    async fn deliver_replies(
        &self,
        req: Request<pb::DeliverRepliesRequest>,
    ) -> Result<Response<pb::DeliverRepliesResponse>, Status> {
        let peer = peer_district(&req, &self.ctx.trust)?;
        let sender = proofs::sender_cert(&req);
        let pb::DeliverRepliesRequest { replies, batch } = req.into_inner();
        super::check_batch(&self.ctx, replies.len())?;
        let now = self.ctx.now();
        // The authors' signatures, checked before anything is stored (a
        // reply that does not parse is refused for that by receive_reply).
        let mut certified = Proven::default();
        let verdicts = proofs::check_replies(
            &self.ctx,
            (&sender, batch.as_ref()),
            &replies,
            &mut certified,
        );
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
                whole_leaves: certified.whole_leaves.clone(),
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
