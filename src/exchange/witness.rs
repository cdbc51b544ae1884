//! Witnessing each other's access audit (issue 23, item 4;
//! docs/protocol.md §5). A node sends the signed head of its access audit
//! (`audit::checkpoint`) to every recent peer at least daily and when it
//! stops; each peer checks the signature against the caller's certificate
//! and keeps it (`Exchange.KeepAuditHead`). `migrex audit verify` asks the
//! peers for the heads they keep (`Exchange.HeldAuditHeads`) and compares
//! them with the chain: entries deleted from the end, all of them, or a
//! chain rewritten below a head are seen from outside the node's database
//! and its folder.

use crate::audit::checkpoint::Checkpoint;
use crate::context::NodeCtx;
use crate::identity::{TlsMaterial, Trust, peer_district};
use crate::pb;
use crate::routing::Routes;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Status};

/// The longest hash or signature text taken (a keyed hash is "k1:" and 64
/// hex digits; a signature 144 hex digits at most).
const MAX_TEXT: usize = 256;
/// Peers asked or sent to at the same time.
const AT_ONCE: usize = 16;
/// When the first daily round goes, after the node starts.
const FIRST_ROUND: Duration = Duration::from_secs(300);
const EVERY: Duration = Duration::from_secs(24 * 3600);

pub fn to_pb(c: &Checkpoint) -> pb::AuditHead {
    pb::AuditHead {
        district: c.district.clone(),
        seq: c.seq,
        hash: c.hash.clone(),
        keyed_from: c.keyed_from,
        at_micros: c.at_micros,
        signature: c.signature.clone(),
    }
}

pub fn from_pb(h: &pb::AuditHead) -> Checkpoint {
    Checkpoint {
        district: h.district.clone(),
        seq: h.seq,
        hash: h.hash.clone(),
        keyed_from: h.keyed_from,
        at_micros: h.at_micros,
        signature: h.signature.clone(),
    }
}

/// `Exchange.KeepAuditHead`: the caller's head, kept when it is the
/// caller's own and signed by the key of the certificate it called with.
/// A head shorter than one kept before is kept too (it is evidence), and
/// logged.
pub async fn keep(
    ctx: &NodeCtx,
    req: Request<pb::AuditHead>,
) -> Result<pb::KeepAuditHeadResponse, Status> {
    let peer = peer_district(&req, &ctx.trust)?;
    let cert = super::proofs::sender_cert(&req);
    let head = req.into_inner();
    if head.hash.len() > MAX_TEXT || head.signature.len() > MAX_TEXT || head.seq < 0 {
        return Err(Status::invalid_argument(
            "head: seq must not be negative, hash and signature at most 256 characters",
        ));
    }
    if head.district != peer.as_str() {
        return Err(Status::permission_denied(format!(
            "district: {} is not the calling peer's district {peer}",
            crate::domain::clipped(&head.district, 20)
        )));
    }
    let head = from_pb(&head);
    if !head.signed_by(&cert) {
        return Err(Status::permission_denied(
            "signature: the head is not signed by the key of the calling node's certificate",
        ));
    }
    let kept = ctx
        .store
        .witnessed_heads(peer.as_str())
        .await
        .map_err(crate::grpc::internal)?;
    if let Some(longest) = kept.first()
        && longest.seq > head.seq
    {
        tracing::warn!(peer = %peer, kept = longest.seq, sent = head.seq, "a peer's access audit is shorter than a head it sent before; kept as sent");
    }
    ctx.store
        .keep_witnessed_head(&head, ctx.now())
        .await
        .map_err(crate::grpc::internal)?;
    tracing::debug!(peer = %peer, seq = head.seq, "peer's access audit head kept");
    Ok(pb::KeepAuditHeadResponse {})
}

/// `Exchange.HeldAuditHeads`: the caller's heads this node keeps.
pub async fn held(
    ctx: &NodeCtx,
    req: Request<pb::HeldAuditHeadsRequest>,
) -> Result<pb::HeldAuditHeadsResponse, Status> {
    let peer = peer_district(&req, &ctx.trust)?;
    let heads = ctx
        .store
        .witnessed_heads(peer.as_str())
        .await
        .map_err(crate::grpc::internal)?;
    Ok(pb::HeldAuditHeadsResponse {
        heads: heads.iter().map(to_pb).collect(),
    })
}

/// The peers of the last three months (100 days), whom the node sends its
/// head to and `audit verify` asks.
pub async fn recent_peers(
    store: &crate::store::Store,
    tz: &'static time_tz::Tz,
    now: time::OffsetDateTime,
) -> Result<Vec<String>, crate::store::StoreError> {
    let since = crate::calendar::month_key(tz, now - time::Duration::days(100));
    store.recent_peers(since as i32, 10_000).await
}

/// Sends `head` to every recent peer, `AT_ONCE` at a time, within `limit`;
/// returns how many took it and how many peers there were.
async fn send_all(ctx: &NodeCtx, head: &Checkpoint, limit: Duration) -> (usize, usize) {
    use futures_util::StreamExt;
    let peers = match recent_peers(&ctx.store, ctx.deadlines.tz, ctx.now()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the peers to send the audit head to");
            return (0, 0);
        }
    };
    let total = peers.len();
    let sent = futures_util::stream::iter(peers)
        .map(|peer| async move {
            let route = ctx.route_for(&peer).ok_or("no route")?;
            let mut client =
                super::delivery::connect(ctx, &route).map_err(|_| "cannot connect")?;
            match client.keep_audit_head(to_pb(head)).await {
                Ok(_) => Ok(()),
                Err(s) => {
                    tracing::debug!(peer = %peer, code = ?s.code(), error = %s.message(), "peer did not keep the audit head");
                    Err("refused")
                }
            }
        })
        .buffer_unordered(AT_ONCE)
        .filter(|r| std::future::ready(r.is_ok()))
        .count();
    let sent = tokio::time::timeout(limit, sent).await.unwrap_or(0);
    tracing::info!(
        seq = head.seq,
        peers = total,
        kept_by = sent,
        "access audit head sent to peers (witnesses)"
    );
    (sent, total)
}

/// Until `stop`: sends the latest checkpoint (`heads`, published by the
/// checkpoint keeper) to every recent peer daily, and once more when the
/// node stops, after the keeper's last look.
pub async fn serve(
    ctx: Arc<NodeCtx>,
    mut heads: tokio::sync::watch::Receiver<Option<Checkpoint>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut daily = tokio::time::interval_at(tokio::time::Instant::now() + FIRST_ROUND, EVERY);
    daily.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                // The keeper ends after its last look and drops its sender.
                let keeper_done = async { while heads.changed().await.is_ok() {} };
                let _ = tokio::time::timeout(Duration::from_secs(3), keeper_done).await;
                let head = heads.borrow().clone();
                if let Some(h) = head {
                    send_all(&ctx, &h, Duration::from_secs(4)).await;
                }
                return;
            }
            _ = daily.tick() => {
                let head = heads.borrow().clone();
                if let Some(h) = head {
                    send_all(&ctx, &h, Duration::from_secs(600)).await;
                }
            }
        }
    }
}

/// What one peer keeps of this node's audit: its heads, or why it could
/// not be asked.
pub struct Witnessed {
    pub peer: String,
    pub heads: Result<Vec<Checkpoint>, String>,
}

/// Asks each of `peers` (through `routes`, with this node's identity) for
/// the heads of this node's audit it keeps, `AT_ONCE` at a time, each call
/// within 10 seconds: `migrex audit verify`, without a running node.
pub async fn ask(
    (tls, trust): (&TlsMaterial, &Arc<Trust>),
    routes: &Routes,
    today: time::Date,
    peers: Vec<String>,
) -> Vec<Witnessed> {
    use futures_util::StreamExt;
    futures_util::stream::iter(peers)
        .map(|peer| async move {
            let heads = async {
                let route = routes
                    .route_for(&peer, today)
                    .ok_or_else(|| "no route to it".to_string())?;
                let mut client =
                    super::delivery::client((tls, trust), &route, Duration::from_secs(10), 1 << 20)
                        .map_err(|e| format!("cannot connect: {e}"))?;
                let held = client
                    .held_audit_heads(pb::HeldAuditHeadsRequest {})
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                Ok(held.into_inner().heads.iter().map(from_pb).collect())
            }
            .await;
            Witnessed { peer, heads }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await
}
