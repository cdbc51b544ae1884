//! Reconciliation on the exchange (对账, docs/protocol.md §8): a node
//! answers a peer's questions about their month (`answer`, behind
//! `Exchange.Reconcile`) and asks its own (`run`): the root first, then only
//! the buckets whose digests differ, down to the notices and facts that
//! differ. A difference is named, never overwritten.

use crate::context::NodeCtx;
use crate::pb;
use crate::pb::exchange_client::ExchangeClient;
use crate::reconcile::{Ask, Bucket, Facts, LEAF_MAX, MAX_PREFIXES, Month, Outcome};
use crate::stats::Period;
use tonic::transport::Channel;

/// The month `period` (YYYY-MM) as instants [from, to) in microseconds.
pub fn month_range(ctx: &NodeCtx, period: &str) -> Result<(i64, i64), String> {
    let p = Period::parse("period", period).map_err(|e| e.to_string())?;
    match p.months() {
        Some((a, b)) if a == b => {}
        _ => return Err(format!("period: {period:?} is not one month (YYYY-MM)")),
    }
    let (from, to) = p.bounds(ctx.deadlines.tz);
    Ok((crate::store::micros(from), crate::store::micros(to)))
}

/// This node's month with `peer`.
pub async fn month(ctx: &NodeCtx, peer: &str, period: &str) -> Result<Month, String> {
    let range = month_range(ctx, period)?;
    let facts = ctx
        .store
        .month_facts(peer, range)
        .await
        .map_err(|e| format!("store: {e}"))?;
    Ok(Month::new(facts))
}

fn child(b: Bucket) -> pb::ReconcileChild {
    pb::ReconcileChild {
        prefix: b.prefix,
        count: b.count,
        digest: b.digest.to_vec(),
    }
}

/// The answer about `prefixes` of `month`: each bucket's count and digest,
/// and its leaves when it holds at most `LEAF_MAX` notices, else its 16
/// children.
pub fn answer(month: &Month, prefixes: &[String]) -> pb::ReconcileResponse {
    let buckets = prefixes
        .iter()
        .map(|p| {
            let b = month.bucket(p);
            let small = b.count as usize <= LEAF_MAX;
            pb::ReconcileBucket {
                prefix: b.prefix,
                count: b.count,
                digest: b.digest.to_vec(),
                leaves_given: small,
                leaves: if small {
                    month.leaves(p).into_iter().map(Facts::to_pb).collect()
                } else {
                    Vec::new()
                },
                children: if small {
                    Vec::new()
                } else {
                    month.children(p).into_iter().map(child).collect()
                },
            }
        })
        .collect();
    pb::ReconcileResponse { buckets }
}

/// Reconciles this node's month `period` with `peer` over `client`.
pub async fn run(
    ctx: &NodeCtx,
    client: &mut ExchangeClient<Channel>,
    peer: &str,
    period: &str,
) -> Result<Outcome, String> {
    let mine = month(ctx, peer, period).await?;
    let mut outcome = Outcome {
        peer: peer.to_string(),
        period: period.to_string(),
        notices: mine.len(),
        round_trips: 0,
        divergent: Vec::new(),
    };
    let mut frontier = vec![String::new()];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for chunk in frontier.chunks(MAX_PREFIXES) {
            outcome.round_trips += 1;
            let answer = client
                .reconcile(pb::ReconcileRequest {
                    period: period.to_string(),
                    prefixes: chunk.to_vec(),
                })
                .await
                .map_err(|s| format!("the peer {peer}: {:?}: {}", s.code(), s.message()))?
                .into_inner();
            for b in answer.buckets {
                let own = mine.bucket(&b.prefix);
                if own.count == b.count && own.digest.as_slice() == b.digest.as_slice() {
                    continue;
                }
                if b.leaves_given {
                    let theirs: Vec<Facts> = b.leaves.iter().map(Facts::from_pb).collect();
                    outcome.divergent.extend(crate::reconcile::compare_leaves(
                        &mine.leaves(&b.prefix),
                        &theirs,
                    ));
                } else {
                    for c in b.children {
                        let own = mine.bucket(&c.prefix);
                        if own.count != c.count || own.digest.as_slice() != c.digest.as_slice() {
                            if !crate::reconcile::valid_prefix(&c.prefix)
                                || !c.prefix.starts_with(&b.prefix)
                                || c.prefix.len() != b.prefix.len() + 1
                            {
                                return Err(format!(
                                    "the peer {peer} answered a bucket it was not asked about"
                                ));
                            }
                            next.push(c.prefix);
                        }
                    }
                }
            }
        }
        frontier = next;
    }
    outcome
        .divergent
        .sort_by(|a, b| a.notice_id.cmp(&b.notice_id));
    Ok(outcome)
}

/// Reconciles with `peer` for `period` through the route that reaches it.
pub async fn with_peer(ctx: &NodeCtx, peer: &str, period: &str) -> Result<Outcome, String> {
    let route = ctx
        .route_for(peer)
        .ok_or_else(|| format!("peer: no route to {peer}"))?;
    let mut client = super::delivery::connect(ctx, &route)
        .map_err(|e| format!("peer: cannot connect to {}: {e}", route.endpoint))?;
    let mut outcome = run(ctx, &mut client, peer, period).await?;
    repair(ctx, &mut outcome).await;
    if let Err(e) = ctx
        .store
        .record_reconciliation(
            peer,
            period,
            outcome.notices,
            outcome.divergent.len(),
            ctx.now(),
        )
        .await
    {
        tracing::warn!(peer = %peer, period = %period, error = %e, "the reconciliation (对账) could not be recorded");
    }
    ctx.metrics.reconciled(peer, outcome.divergent.len());
    if outcome.divergent.is_empty() {
        tracing::info!(peer = %peer, period = %period, notices = outcome.notices, round_trips = outcome.round_trips, "reconciled (对账): both sides agree");
    } else {
        tracing::warn!(peer = %peer, period = %period, notices = outcome.notices, divergent = outcome.divergent.len(), round_trips = outcome.round_trips, "reconciled (对账): the sides disagree on some notices");
    }
    Ok(outcome)
}

/// The most divergent notices one reconciliation repairs.
const MAX_REPAIRS: usize = 1000;

/// The sort of this node's own reply (`ReplyBody::sort_code`) that carries
/// `fact` to the peer: the destination's receipt, feedback, deadline
/// changes and relayed delivery; the origin's withdrawal.
fn carried_by(outbound: bool, fact: &str) -> Option<i64> {
    use crate::domain::ReplyBody;
    match (outbound, fact) {
        (false, "acknowledged_at") => Some(1),
        (false, "answered_at" | "feedback") => Some(2),
        (false, "due_at") => Some(ReplyBody::DEADLINE_CHANGE),
        (false, "received_at") => Some(5),
        (true, "withdrawn_at") => Some(3),
        _ => None,
    }
}

/// Repairs what can be repaired without overwriting anything: where the
/// peer lacks a fact this node holds and wrote itself, the reply that
/// carries it is queued again for the peer (which takes a reply it holds
/// as a duplicate). A fact both sides hold differently stays named.
async fn repair(ctx: &NodeCtx, outcome: &mut Outcome) {
    let mut woken = std::collections::HashSet::new();
    for d in outcome
        .divergent
        .iter_mut()
        .filter(|d| !d.lacking_at_peer.is_empty())
        .take(MAX_REPAIRS)
    {
        let rec = match ctx.store.get_notice(&d.notice_id).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(notice_id = %d.notice_id, error = %e, "reconciliation repair: the notice cannot be read");
                continue;
            }
        };
        let outbound = rec.life.direction == crate::domain::Direction::Outbound;
        let sorts: Vec<i64> = d
            .lacking_at_peer
            .iter()
            .filter_map(|f| carried_by(outbound, f))
            .collect();
        let n = &rec.content;
        let target = if outbound { &n.destination } else { &n.origin };
        let Some(route) = ctx.route_for(target).filter(|_| !sorts.is_empty()) else {
            continue;
        };
        let prefix = route.prefix.to_string();
        match ctx
            .store
            .requeue_own_replies(&d.notice_id, &sorts, (&prefix, target), ctx.now())
            .await
        {
            Ok(ids) => {
                if !ids.is_empty() {
                    tracing::info!(notice_id = %d.notice_id, replies = ids.len(), peer = %outcome.peer, "reconciliation (对账): replies the peer lacks are sent again");
                    woken.insert(prefix);
                }
                d.resent = ids;
            }
            Err(e) => {
                tracing::warn!(notice_id = %d.notice_id, error = %e, "reconciliation repair: replies cannot be queued again");
            }
        }
    }
    for route in woken {
        ctx.wake(&route);
    }
}

/// `Exchange.Reconcile`: `peer`'s questions about its month with this
/// node, checked (at most `MAX_PREFIXES` buckets, hex prefixes, one month)
/// before the month is read.
pub async fn asked(
    ctx: &NodeCtx,
    peer: &crate::domain::DistrictCode,
    r: pb::ReconcileRequest,
) -> Result<pb::ReconcileResponse, tonic::Status> {
    use crate::reconcile::valid_prefix;
    use tonic::Status;
    if r.prefixes.len() > MAX_PREFIXES {
        return Err(Status::invalid_argument(format!(
            "prefixes: at most {MAX_PREFIXES} in one request"
        )));
    }
    if let Some(bad) = r.prefixes.iter().find(|p| !valid_prefix(p)) {
        return Err(Status::invalid_argument(format!(
            "prefixes: {:?} is not lower-case hex of at most 64 digits",
            crate::domain::clipped(bad, 80)
        )));
    }
    month_range(ctx, &r.period).map_err(Status::invalid_argument)?;
    let month = month(ctx, peer.as_str(), &r.period)
        .await
        .map_err(Status::internal)?;
    tracing::debug!(peer = %peer, period = %r.period, buckets = r.prefixes.len(), "reconciliation asked");
    Ok(answer(&month, &r.prefixes))
}

/// How often every recent peer is reconciled for the current and the
/// previous three months.
const EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Until `shutdown`: answers asks (`NodeCtx::reconcile`) at once, and once
/// a day reconciles with every peer of the last three months for the
/// current and the previous three months (the first round an hour after
/// start, so a node that starts does not call every peer at once).
pub async fn serve(ctx: std::sync::Arc<NodeCtx>, shutdown: tokio_util::sync::CancellationToken) {
    let Some(mut asks) = ctx.take_reconcile_asks() else {
        return;
    };
    let mut daily = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
        EVERY,
    );
    daily.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ask = asks.recv() => {
                let Some(Ask { peer, period, answer }) = ask else { return };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _ = answer.send(with_peer(&ctx, &peer, &period).await);
                });
            }
            _ = daily.tick() => daily_round(&ctx).await,
        }
    }
}

async fn daily_round(ctx: &NodeCtx) {
    let today = ctx.deadlines.local_date(ctx.now());
    let first = today.replace_day(1).expect("day 1 exists");
    let mut months = vec![first];
    for _ in 0..3 {
        let prev = months[months.len() - 1]
            .previous_day()
            .expect("a day before");
        months.push(prev.replace_day(1).expect("day 1 exists"));
    }
    let since = crate::calendar::month_key(ctx.deadlines.tz, ctx.now() - time::Duration::days(100));
    let peers = match ctx.store.recent_peers(since as i32, 10_000).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the peers to reconcile with");
            return;
        }
    };
    for peer in peers {
        for m in &months {
            let period = format!("{:04}-{:02}", m.year(), u8::from(m.month()));
            if let Err(e) = with_peer(ctx, &peer, &period).await {
                tracing::warn!(peer = %peer, period = %period, error = %e, "reconciliation (对账) did not finish; tried again tomorrow");
                break;
            }
        }
    }
}
