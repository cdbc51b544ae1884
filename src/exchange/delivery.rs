//! Delivery from the transactional outbox: one worker per peer (route).
//!
//! A worker takes the oldest waiting items of its route in order of
//! creation, sends a batch over its one long-lived connection, and records
//! the peer's acks in one transaction that also removes the delivered items.
//! A failed call leaves every item where it was, notes the attempt and the
//! error, and waits an exponentially growing, jittered, capped delay; one
//! dead peer only ever slows its own worker. Nothing is dropped: items the
//! peer refuses for good stay in the outbox, marked refused, with the reason.
//!
//! Replicas of a node sharing one database each run a worker per route, but
//! only the holder of the route's lease (`route_leases`) sends: it renews the
//! lease once half of it has run (so never sends on less than half a lease
//! left), and a call times out after half the lease, so
//! no two replicas ever send the same items at once, and the route passes to
//! another replica within one lease when its holder dies.

use super::is_final;
use super::proofs::{self, check_acks, sign_own};
use crate::config::Route;
use crate::context::NodeCtx;
use crate::domain::{clipped, peer_text, ts_from_pb};
use crate::pb;
use crate::pb::exchange_client::ExchangeClient;
use crate::proof::canonical;
use crate::store::{ItemKind, OutboxItem, Proven, Settled};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// The wait after the `failures`th failure in a row: doubling from
/// `initial`, capped at `cap`, with jitter drawn from its upper half so that
/// peers coming back are not hit by every node at the same instant.
pub fn backoff_delay(failures: u32, initial: Duration, cap: Duration) -> Duration {
    let exp = initial.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let d = exp.min(cap);
    let half = d / 2;
    half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
}

/// The client of one route's peer; made at start, so that an endpoint that
/// cannot be used stops the node from starting, and again whenever the
/// revocation list changes. The peer's certificate must chain to the
/// network CA, not be revoked, and speak for a district that covers the
/// route (`identity::Trust::peer_verifier`): otherwise the handshake fails
/// and not a byte of any notice leaves.
pub fn connect(
    ctx: &NodeCtx,
    route: &Route,
) -> Result<ExchangeClient<Channel>, tonic::transport::Error> {
    let call_timeout = Duration::from_secs(ctx.delivery.lease_secs.max(2) / 2);
    let bytes = ctx.limits.exchange_message_bytes(ctx.delivery.max_batch);
    client((&ctx.tls, &ctx.trust), route, call_timeout, bytes)
}

/// An exchange client to `route`'s node with this node's identity and
/// trust (lazy: it connects at the first call), each call bounded by
/// `call_timeout` and messages by `bytes`.
pub fn client(
    (tls, trust): (
        &crate::identity::TlsMaterial,
        &std::sync::Arc<crate::identity::Trust>,
    ),
    route: &Route,
    call_timeout: Duration,
    bytes: usize,
) -> Result<ExchangeClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(route.endpoint.clone())?
        .tls_config_with_verifier(
            tls.peer_identity(),
            trust.peer_verifier(&route.prefix, route.fingerprint.as_deref()),
        )?
        .connect_timeout(Duration::from_secs(5).min(call_timeout))
        .timeout(call_timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(ExchangeClient::new(channel)
        .max_decoding_message_size(bytes)
        .max_encoding_message_size(bytes))
}

fn decode_all<M: Message + Default>(items: &[OutboxItem]) -> Result<Vec<M>, String> {
    items
        .iter()
        .map(|i| M::decode(i.payload.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("stored outbox payload is damaged: {e}"))
}

/// The most of a peer's error text kept and logged.
const PEER_TEXT: usize = 300;

/// A failed call as the outbox and the log keep it, with the causes of a
/// transport failure (a refused certificate says why); the peer's text is
/// clipped, ID numbers in it masked and what hides in it escaped (it is
/// not ours to trust).
fn call_failed(s: tonic::Status, known: &[&str]) -> String {
    let mut text = format!(
        "{:?}: {}",
        s.code(),
        peer_text(s.message(), PEER_TEXT, known)
    );
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&s);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    clipped(&text, 2 * PEER_TEXT)
}

/// The people's names in notices, which a peer's error text must not
/// spread (`peer_text`).
fn notice_texts(notices: &[pb::Notice]) -> Vec<String> {
    use pb::notice::Details;
    let mut out = Vec::new();
    for n in notices {
        out.extend(n.subject.as_ref().map(|p| p.name.clone()));
        match &n.details {
            Some(Details::Marriage(m)) => out.push(m.spouse_name.clone()),
            Some(Details::Birth(b)) => out.push(b.child_name.clone()),
            _ => {}
        }
    }
    out
}

/// The free texts of replies (corrected values, remarks), likewise.
fn reply_texts(replies: &[pb::Reply]) -> Vec<String> {
    let mut out = Vec::new();
    for r in replies {
        if let Some(pb::reply::Body::Feedback(f)) = &r.body {
            out.extend(f.corrections.values().cloned());
            out.push(f.remarks.clone());
        }
    }
    out
}

/// How each item of a call ended, from the peer's acks: refused for good,
/// to be retried (None: no usable ack, or a passing refusal), or what
/// `delivered` makes of its ack. Peers answer in request order, so the ack
/// at the same position is checked first and a search is only the fallback.
fn settle_each<A>(
    items: &[OutboxItem],
    known: &[&str],
    acks: &[A],
    key: impl Fn(&OutboxItem) -> Option<&str>,
    ack_of: impl Fn(&A) -> (&str, Option<&pb::ItemError>),
    delivered: impl Fn(&OutboxItem, &A) -> Option<Settled>,
) -> Vec<Option<Settled>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let id = key(item)?;
            let ack = acks
                .get(i)
                .filter(|a| ack_of(a).0 == id)
                .or_else(|| acks.iter().find(|a| ack_of(a).0 == id))?;
            match ack_of(ack).1 {
                Some(e) if is_final(e.code) => Some(Settled::Refused {
                    seq: item.seq,
                    error: format!(
                        "refused by {}: {}",
                        item.target,
                        peer_text(&e.message, PEER_TEXT, known)
                    ),
                }),
                Some(_) => None,
                None => delivered(item, ack),
            }
        })
        .collect()
}

/// Sends one run of same-kind items; returns how each one ended and the
/// proofs to keep, or the reason the whole call failed.
async fn send(
    ctx: &NodeCtx,
    client: &mut ExchangeClient<Channel>,
    route: &str,
    items: &[OutboxItem],
) -> Result<(Vec<Option<Settled>>, Proven), String> {
    let mut proven = Proven::default();
    let (results, signed) = if items[0].kind.is_notice() {
        let mut notices: Vec<pb::Notice> = decode_all(items)?;
        let (signed, batch) = sign_own(
            ctx,
            items,
            &mut notices,
            (canonical::notice, |n: &mut pb::Notice, p| n.proof = Some(p)),
            &mut proven,
        );
        let names = notice_texts(&notices);
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        // What checking the acknowledgements needs of each notice, kept
        // instead of a copy of the call.
        let ends: Vec<(String, String)> = notices
            .iter()
            .map(|n| (n.id.clone(), n.destination.clone()))
            .collect();
        let request = pb::DeliverNoticesRequest { notices, batch };
        let response = client
            .deliver_notices(request)
            .await
            .map_err(|s| call_failed(s, &known))?
            .into_inner();
        let bad = check_acks(ctx, &ends, &response, &mut proven);
        let results = settle_each(
            items,
            &known,
            &response.acks,
            |item| Some(item.notice_id.as_str()),
            |a| (a.notice_id.as_str(), a.error.as_ref()),
            |item, ack| {
                if item.kind == ItemKind::RelayNotice {
                    // Relayed on: the next node holds it, whether the
                    // destination or another relay.
                    return Some(Settled::Forwarded {
                        seq: item.seq,
                        kind: item.kind,
                        id: item.notice_id.clone(),
                    });
                }
                if ack.relayed {
                    return Some(Settled::HandedOn {
                        seq: item.seq,
                        notice_id: item.notice_id.clone(),
                        relay: route.to_string(),
                    });
                }
                if bad.contains(&item.notice_id) {
                    return None;
                }
                Some(Settled::NoticeDelivered {
                    seq: item.seq,
                    notice_id: item.notice_id.clone(),
                    received_at: ts_from_pb("received_at", ack.received_at.as_ref()).ok()?,
                    due_at: ts_from_pb("due_at", ack.due_at.as_ref()).ok()?,
                    due_provisional: ack.due_provisional,
                })
            },
        );
        (results, signed)
    } else {
        let mut replies: Vec<pb::Reply> = decode_all(items)?;
        let (signed, batch) = sign_own(
            ctx,
            items,
            &mut replies,
            (canonical::reply, |r: &mut pb::Reply, p| r.proof = Some(p)),
            &mut proven,
        );
        let values = reply_texts(&replies);
        let known: Vec<&str> = values.iter().map(String::as_str).collect();
        let request = pb::DeliverRepliesRequest { replies, batch };
        let acks = client
            .deliver_replies(request)
            .await
            .map_err(|s| call_failed(s, &known))?;
        let results = settle_each(
            items,
            &known,
            &acks.into_inner().acks,
            |item| item.reply_id.as_deref(),
            |a| (a.reply_id.as_str(), a.error.as_ref()),
            |item, ack| {
                Some(if item.kind == ItemKind::RelayReply {
                    Settled::Forwarded {
                        seq: item.seq,
                        kind: item.kind,
                        id: ack.reply_id.clone(),
                    }
                } else {
                    Settled::ReplyDelivered {
                        seq: item.seq,
                        reply_id: ack.reply_id.clone(),
                        late: ack.late,
                    }
                })
            },
        );
        (results, signed)
    };
    // This node's own proofs of what the peer took.
    let any_signed = signed.iter().any(Option::is_some);
    for ((item, result), proof) in items.iter().zip(&results).zip(signed) {
        let (Some(proof), Some(settled)) = (proof, result) else {
            continue;
        };
        let step = match settled {
            Settled::NoticeDelivered { .. } | Settled::HandedOn { .. } => proofs::NOTICE,
            Settled::ReplyDelivered { reply_id, .. } => reply_id.as_str(),
            _ => continue,
        };
        proven
            .proofs
            .push(proofs::stored(&item.notice_id, step, proof));
    }
    if let (Some(signer), true) = (&ctx.signer, any_signed) {
        proven.certificate(proofs::own(signer));
    }
    Ok((results, proven))
}

/// Tells the peer of `route` that this node is here (again), so that it
/// sends what waits for us at once (`Exchange.Hello`); best effort, within
/// 5 s.
pub async fn say_hello(mut client: ExchangeClient<Channel>, route: String) {
    let hello = tokio::time::timeout(Duration::from_secs(5), client.hello(pb::HelloRequest {}));
    match hello.await {
        Ok(Ok(_)) => tracing::debug!(route = %route, "told the peer this node is back"),
        Ok(Err(s)) => {
            tracing::debug!(route = %route, error = %s.message(), "the peer did not hear that this node is back")
        }
        Err(_) => tracing::debug!(route = %route, "the peer did not answer hello"),
    }
}

/// Runs the delivery worker of one route until `shutdown`.
pub async fn run(
    ctx: Arc<NodeCtx>,
    mut route: Route,
    mut client: ExchangeClient<Channel>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let prefix = route.prefix.to_string();
    let d = ctx.delivery.clone();
    let (initial, cap) = (
        Duration::from_millis(d.backoff_initial_ms),
        Duration::from_millis(d.backoff_max_ms),
    );
    let mut failures: u32 = 0;
    // Whether the retry time of the waiting items was already waited for:
    // not yet when the worker starts, so a restart keeps each item's
    // schedule instead of retrying everything at once.
    let mut waited = false;
    let mut alerted = false;
    let lease = time::Duration::seconds(d.lease_secs.max(2) as i64);
    let mut trusted = ctx.trust.generation();
    // Until when this replica holds the route's lease, as it last wrote it.
    let mut held_until: Option<time::OffsetDateTime> = None;
    // The acks of the batch sent last, being recorded while the next batch
    // travels; and the last item sent, after which the next batch starts.
    let mut settling = Settling(None);
    let mut after: i64 = 0;
    let back = ctx.back_bell(&prefix);
    let mut routed = ctx.routes.generation();
    // Which of the route's endpoints is in use, and how many were tried
    // since the last success: a failed call moves to the next one at once;
    // a round in which all failed backs off.
    let (mut turn, mut tried) = (0usize, 0usize);
    // Tell the peer this node is here (again): it sends what waits for us
    // at once. Beside the delivery: a peer that is down or slow delays
    // nothing, and hears it when it says hello itself.
    tokio::spawn(say_hello(client.clone(), prefix.clone()));
    while !shutdown.is_cancelled() {
        if ctx.routes.generation() != routed {
            // A new directory: this route may be gone (its items were
            // moved to the route that reaches them now) or moved.
            routed = ctx.routes.generation();
            match ctx.routes.by_prefix(&prefix) {
                None => {
                    tracing::info!(route = %prefix, "route no longer in use; its worker stops");
                    break;
                }
                Some(now) if now != route => {
                    tracing::info!(route = %prefix, from = %route.endpoint, to = %now.endpoint, "the peer moved; connecting to its new endpoint");
                    route = now;
                    (turn, tried) = (0, 0);
                    trusted = u64::MAX;
                    failures = 0;
                }
                Some(_) => {}
            }
        }
        if ctx.trust.generation() != trusted {
            // A new revocation list (or endpoint): the open connection was
            // checked against the old one.
            trusted = ctx.trust.generation();
            match connect(&ctx, &route.turned(turn)) {
                Ok(c) => client = c,
                Err(e) => {
                    tracing::error!(route = %prefix, error = %e, "cannot make a new connection to the peer")
                }
            }
        }
        let now = ctx.now();
        // The lease is renewed once half of it has run, not before every
        // batch (a durable write each time): a call times out after half
        // the lease, so one started while more than half remains ends
        // before the lease does.
        let renew = held_until.is_none_or(|until| until - now < lease / 2);
        // Reads may be cut short by shutdown: a store that does not answer
        // must not hold the node up when it stops.
        let claim = if renew {
            tokio::select! {
                r = ctx.store.claim_route(&prefix, &ctx.replica, now, now + lease) => r,
                _ = shutdown.cancelled() => break,
            }
        } else {
            Ok(true)
        };
        match claim {
            Ok(true) => {
                if renew {
                    held_until = Some(now + lease);
                }
            }
            Ok(false) => {
                held_until = None;
                settling.finish(&mut after).await;
                // Another replica delivers this route; look again later.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(d.idle_poll_ms)) => {},
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            Err(e) => {
                held_until = None;
                settling.finish(&mut after).await;
                tracing::error!(route = %prefix, error = %e, "cannot take the delivery lease");
                failures += 1;
                tokio::select! { _ = tokio::time::sleep(backoff_delay(failures, initial, cap)) => {}, _ = shutdown.cancelled() => break }
                continue;
            }
        }
        let read = tokio::select! {
            r = ctx.store.outbox_batch(&prefix, after, d.batch_size.max(1)) => r,
            _ = shutdown.cancelled() => break,
        };
        let batch = match read {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(route = %prefix, error = %e, "cannot read the outbox");
                failures += 1;
                tokio::select! { _ = tokio::time::sleep(backoff_delay(failures, initial, cap)) => {}, _ = shutdown.cancelled() => break }
                continue;
            }
        };
        if batch.is_empty() {
            if after != 0 {
                // Everything sent: once its acks are recorded, look again
                // from the head (a failed record leaves items there).
                settling.finish(&mut after).await;
                after = 0;
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {},
                _ = tokio::time::sleep(Duration::from_millis(d.idle_poll_ms)) => {},
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        let head = &batch[0];
        if !waited && head.next_attempt_at > now {
            failures = failures.max(head.attempts);
            let wait = Duration::try_from(head.next_attempt_at - now).unwrap_or(cap);
            tracing::info!(route = %prefix, attempts = head.attempts, retry_in_ms = wait.min(cap).as_millis() as u64, "waiting for the stored retry time");
            // Bounded by the cap: a clock moved by hand cannot stall delivery.
            tokio::select! {
                _ = tokio::time::sleep(wait.min(cap)) => {},
                _ = back.notified() => tracing::info!(route = %prefix, "the peer is back; sending now"),
                _ = shutdown.cancelled() => break,
            }
        }
        // One call carries notices or replies; order of creation is kept
        // across calls.
        let run_len = batch
            .iter()
            .take_while(|i| i.kind.is_notice() == batch[0].kind.is_notice())
            .count();
        let items = &batch[..run_len];
        let sent = std::time::Instant::now();
        let outcome = send(&ctx, &mut client, &prefix, items).await;
        tracing::debug!(route = %prefix, items = items.len(), ms = sent.elapsed().as_millis() as u64, "batch sent");
        ctx.metrics.delivery_attempt(&prefix, outcome.is_err());
        let now = ctx.now();
        match outcome {
            Ok((results, proven)) => {
                let settled: Vec<Settled> = results.iter().flatten().cloned().collect();
                for s in &settled {
                    if let Settled::Refused { error, .. } = s {
                        tracing::error!(route = %prefix, error = %error, "peer refused an item for good; it stays in the outbox, marked refused");
                    }
                }
                // One record at a time, in order: the previous batch's first.
                settling.finish(&mut after).await;
                let unsettled: Vec<i64> = items
                    .iter()
                    .zip(&results)
                    .filter(|(_, r)| r.is_none())
                    .map(|(i, _)| i.seq)
                    .collect();
                waited = false;
                tried = 0;
                if unsettled.is_empty() {
                    if failures > 0 || alerted {
                        tracing::info!(route = %prefix, "peer reachable again; delivering");
                    }
                    failures = 0;
                    alerted = false;
                    // The acks are recorded while the next batch travels.
                    after = items[items.len() - 1].seq;
                    settling.start(&ctx, &prefix, (settled, proven), now);
                    continue;
                }
                settling.start(&ctx, &prefix, (settled, proven), now);
                settling.finish(&mut after).await;
                after = 0;
                failures += 1;
                let delay = backoff_delay(failures, initial, cap);
                let _ = ctx
                    .store
                    .outbox_failed(
                        &unsettled,
                        "peer could not store the item; will retry",
                        now + delay,
                    )
                    .await;
                waited = true;
                tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = shutdown.cancelled() => break }
            }
            Err(error) => {
                settling.finish(&mut after).await;
                after = 0;
                if tried + 1 < route.endpoints() {
                    // Another endpoint of the node (a replica): at once.
                    tried += 1;
                    turn += 1;
                    let next = route.turned(turn);
                    tracing::warn!(route = %prefix, next = %next.endpoint, error = %error, "delivery failed; trying the node's next endpoint");
                    match connect(&ctx, &next) {
                        Ok(c) => client = c,
                        Err(e) => {
                            tracing::error!(route = %prefix, endpoint = %next.endpoint, error = %e, "cannot make a connection to the endpoint")
                        }
                    }
                    waited = true;
                    continue;
                }
                tried = 0;
                failures += 1;
                let delay = backoff_delay(failures, initial, cap);
                let seqs: Vec<i64> = items.iter().map(|i| i.seq).collect();
                if let Err(e) = ctx.store.outbox_failed(&seqs, &error, now + delay).await {
                    tracing::error!(route = %prefix, error = %e, "cannot record the failed attempt");
                }
                let age = now - items[0].created_at;
                if age.whole_seconds() as u64 >= d.undelivered_alert_secs && !alerted {
                    alerted = true;
                    tracing::error!(route = %prefix, endpoint = %route.turned(turn).endpoint, waiting = batch.len(), oldest_age_secs = age.whole_seconds(), attempts = items[0].attempts + 1, error = %error, "UNDELIVERED: peer unreachable past the alert threshold; retries go on");
                } else {
                    tracing::warn!(route = %prefix, endpoint = %route.turned(turn).endpoint, attempt = failures, retry_in_ms = delay.as_millis() as u64, error = %error, "delivery failed; will retry");
                }
                waited = true;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = back.notified() => tracing::info!(route = %prefix, "the peer is back; sending now"),
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    settling.finish(&mut after).await;
    tracing::debug!(route = %prefix, "delivery worker stopped");
}

/// The recording of one batch's acks (`Store::settle`), running while the
/// next batch is sent. At most one runs; a later one starts only after it.
struct Settling(Option<tokio::task::JoinHandle<bool>>);

impl Settling {
    fn start(
        &mut self,
        ctx: &Arc<NodeCtx>,
        route: &str,
        (settled, proven): (Vec<Settled>, Proven),
        now: time::OffsetDateTime,
    ) {
        debug_assert!(self.0.is_none());
        let (ctx, route) = (ctx.clone(), route.to_string());
        self.0 = Some(tokio::spawn(async move {
            match ctx.store.settle(&settled, &proven, now).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(route = %route, error = %e, "cannot record delivery; the items will be sent again");
                    false
                }
            }
        }));
    }

    /// Waits for the recording under way, if any; when it failed, the next
    /// batch starts again from the head of the queue (`after` = 0), so its
    /// items are sent again (and answered by the peer with their first ack).
    async fn finish(&mut self, after: &mut i64) {
        if let Some(task) = self.0.take()
            && !task.await.unwrap_or(false)
        {
            *after = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (i, cap) = (Duration::from_millis(100), Duration::from_secs(5));
        for _ in 0..100 {
            let d1 = backoff_delay(1, i, cap);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d4 = backoff_delay(4, i, cap);
            assert!(d4 >= Duration::from_millis(400) && d4 <= Duration::from_millis(800));
            let d30 = backoff_delay(30, i, cap);
            assert!(d30 >= Duration::from_millis(2500) && d30 <= cap);
        }
    }
}
