//! The delivery workers of a node (`delivery::run`), one per route in use:
//! every route added by hand from the start, and a route of the directory
//! once items wait for it (a directory of 2,900 districts does not make
//! 2,900 idle workers). Routes come and go while the node runs: when the
//! directory changes, waiting items move to the route that now reaches
//! their destination (`reroute_waiting`) and a worker whose route is gone
//! ends (`delivery::run` notices). A scan every lease period starts a
//! worker for any route with waiting items and none here (items a replica
//! queued, or that a worker that ended left behind).

use crate::context::NodeCtx;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Moves items waiting under a route that no longer reaches their
/// destination to the one that does now (or to none: they wait, with a
/// warning, until a route reaches it). Returns the routes that hold
/// waiting items.
pub async fn reroute_waiting(ctx: &NodeCtx) -> Result<HashSet<String>, crate::store::StoreError> {
    let mut routes = HashSet::new();
    for waiting in ctx.store.outbox_targets().await? {
        let (target, queued) = (waiting.target, waiting.route);
        let now = ctx
            .route_for(&target)
            .map(|r| r.prefix.to_string())
            .unwrap_or_default();
        if now != queued {
            tracing::info!(target = %target, from = %queued, to = %now, "re-routing waiting outbox items");
            ctx.store.reroute(&target, &now).await?;
        }
        if now.is_empty() {
            tracing::warn!(target = %target, "items wait for a district no route reaches; add a peer (migrex peer add) or a directory that lists it");
        } else {
            routes.insert(now);
        }
    }
    Ok(routes)
}

/// Starts the worker of `prefix` unless this process has one.
fn start(
    ctx: &Arc<NodeCtx>,
    set: &mut JoinSet<String>,
    prefix: &str,
    shutdown: &CancellationToken,
) {
    if prefix.is_empty() || ctx.set_served(prefix, true) {
        return;
    }
    let Some(route) = ctx.routes.by_prefix(prefix) else {
        ctx.set_served(prefix, false);
        return;
    };
    let client = match super::delivery::connect(ctx, &route) {
        Ok(c) => c,
        Err(e) => {
            ctx.set_served(prefix, false);
            tracing::error!(route = %prefix, endpoint = %route.endpoint, error = %e, "cannot make a connection to the peer; its items wait");
            return;
        }
    };
    let wake = ctx.waker(prefix);
    let worker = super::delivery::run(ctx.clone(), route, client, wake, shutdown.clone());
    let prefix = prefix.to_string();
    set.spawn(async move {
        worker.await;
        prefix
    });
}

/// The most peers a node that starts says hello to besides its workers'
/// and how many at once.
const HELLO_PEERS: i64 = 3000;
const HELLO_AT_ONCE: usize = 16;

/// Tells the peers this node exchanged notices with in the last three
/// months, and has no worker for, that it is here (its workers tell
/// theirs): they may hold notices for it, and send them at once instead of
/// at their next retry. At most `HELLO_AT_ONCE` at a time.
async fn hello_recent_peers(ctx: Arc<NodeCtx>, shutdown: CancellationToken) {
    let today = ctx.deadlines.local_date(ctx.now());
    let back = today.replace_day(1).expect("day 1") - time::Duration::days(62);
    let since = back.year() * 100 + i32::from(u8::from(back.month()));
    let peers = match ctx.store.recent_peers(since, HELLO_PEERS).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the recent peers to say hello to");
            return;
        }
    };
    let mut routes = HashSet::new();
    let mut calls = JoinSet::new();
    for peer in peers {
        let Some(route) = ctx.route_for(&peer) else {
            continue;
        };
        let prefix = route.prefix.to_string();
        // A worker says hello itself.
        if ctx.is_served(&prefix) || !routes.insert(prefix.clone()) {
            continue;
        }
        let Ok(client) = super::delivery::connect(&ctx, &route) else {
            continue;
        };
        while calls.len() >= HELLO_AT_ONCE {
            calls.join_next().await;
        }
        if shutdown.is_cancelled() {
            return;
        }
        calls.spawn(super::delivery::say_hello(client, prefix));
    }
    while calls.join_next().await.is_some() {}
}

/// Runs the workers until `shutdown`: those of the routes added by hand
/// and of the routes with waiting items at once, the others when items
/// come (`wanted`, from `NodeCtx::wake`) or the directory changes.
pub async fn run(
    ctx: Arc<NodeCtx>,
    mut wanted: UnboundedReceiver<String>,
    waiting: HashSet<String>,
    shutdown: CancellationToken,
) {
    let mut set: JoinSet<String> = JoinSet::new();
    for r in ctx.routes.hand() {
        start(&ctx, &mut set, r.prefix.as_str(), &shutdown);
    }
    for prefix in &waiting {
        start(&ctx, &mut set, prefix, &shutdown);
    }
    tokio::spawn(hello_recent_peers(ctx.clone(), shutdown.clone()));
    let mut changes = ctx.routes.subscribe();
    let mut scan = tokio::time::interval(Duration::from_secs(ctx.delivery.lease_secs.max(1)));
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(prefix) = wanted.recv() => start(&ctx, &mut set, prefix.as_str(), &shutdown),
            Ok(()) = changes.changed() => match reroute_waiting(&ctx).await {
                Ok(routes) => {
                    for prefix in &routes {
                        start(&ctx, &mut set, prefix, &shutdown);
                        // Moved items, or a peer that moved: its worker
                        // tries at once, even in the middle of a backoff.
                        ctx.waker(prefix).notify_one();
                        ctx.back_bell(prefix).notify_one();
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot re-route waiting items after the directory changed"),
            },
            _ = scan.tick() => {
                if let Ok(routes) = ctx.store.waiting_routes().await {
                    for route in &routes {
                        start(&ctx, &mut set, route, &shutdown);
                    }
                }
            }
            Some(done) = set.join_next() => {
                if let Ok(prefix) = done {
                    ctx.set_served(prefix.as_str(), false);
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    while set.join_next().await.is_some() {}
}
