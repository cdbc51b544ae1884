//! What every part of a running node shares: its district, store, clock,
//! deadlines, routes, TLS material, counters, staff authentication, and the
//! bells that wake the delivery workers. `node` builds it once at start and
//! hands it to the exchange, the service layer, the ops listener and the
//! workers; nothing here starts or serves anything.

use crate::auth::Authenticator;
use crate::calendar::{CalendarFile, Deadlines};
use crate::clock::SharedClock;
use crate::config::{Delivery, ListenLimits, Route, Settings, route_for};
use crate::domain::DistrictCode;
use crate::identity::{TlsMaterial, Trust};
use crate::metrics::Metrics;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use time::OffsetDateTime;
use tokio::sync::Notify;

pub struct NodeCtx {
    pub district: DistrictCode,
    pub store: Store,
    pub clock: SharedClock,
    pub deadlines: Deadlines,
    /// Where newer years of the holiday schedule come from.
    pub calendar_file: CalendarFile,
    pub routes: Vec<Route>,
    pub delivery: Delivery,
    pub tls: TlsMaterial,
    /// The network CA and its current revocation list.
    pub trust: Arc<Trust>,
    pub limits: ListenLimits,
    /// Keys the access audit's hashes of ID numbers.
    pub audit_key: crate::audit::SubjectKey,
    pub metrics: Arc<Metrics>,
    pub auth: Authenticator,
    /// Console login guesses per source address.
    pub login_throttle: crate::auth::throttle::LoginThrottle,
    /// This process among the replicas of the node (they share the
    /// district, certificate and PostgreSQL database): host name and exchange
    /// address, stable across restarts, so a replica restarted after a crash
    /// takes its own delivery leases back at once.
    pub replica: String,
    wakers: HashMap<String, Arc<Notify>>,
    /// Per route: rung when the peer says it is back (`Exchange.Hello`).
    back: HashMap<String, Arc<Notify>>,
    /// Set when a part of the node stopped: it is no longer ready.
    failed: AtomicBool,
}

impl NodeCtx {
    /// The context of a node configured by `settings`, on `store`, with
    /// `tls` loaded from its files and `trust` in its CA; `replica` names
    /// this process.
    pub fn new(
        settings: Settings,
        store: Store,
        clock: SharedClock,
        (tls, trust): (TlsMaterial, Arc<Trust>),
        audit_key: crate::audit::SubjectKey,
        replica: String,
    ) -> Self {
        let Settings {
            district,
            deadlines,
            calendar,
            routes,
            delivery,
            limits,
            ..
        } = settings;
        let bells = || {
            routes
                .iter()
                .map(|r| (r.prefix.to_string(), Arc::new(Notify::new())))
                .collect::<HashMap<_, _>>()
        };
        let (wakers, back) = (bells(), bells());
        NodeCtx {
            auth: Authenticator::new(store.clone()),
            login_throttle: Default::default(),
            metrics: Arc::new(Metrics::default()),
            district,
            store,
            clock,
            deadlines,
            calendar_file: calendar,
            routes,
            delivery,
            tls,
            trust,
            limits,
            audit_key,
            replica,
            wakers,
            back,
            failed: AtomicBool::new(false),
        }
    }

    /// Now, to the microsecond: the precision the store keeps, so that an
    /// instant read back equals the one that was acknowledged.
    pub fn now(&self) -> OffsetDateTime {
        let t = self.clock.now();
        t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
            .expect("valid nanosecond")
    }

    /// The route for a district code, by longest prefix.
    pub fn route_for(&self, code: &str) -> Option<&Route> {
        route_for(&self.routes, code)
    }

    /// The bell of `route`'s delivery worker.
    pub fn waker(&self, route: &str) -> Option<Arc<Notify>> {
        self.wakers.get(route).cloned()
    }

    /// The bell `route`'s worker waits on while it backs off: its peer is back.
    pub fn back_bell(&self, route: &str) -> Option<Arc<Notify>> {
        self.back.get(route).cloned()
    }

    /// A peer said it is back: the worker of the route that reaches
    /// `district` tries again at once (one attempt; its backoff goes on if
    /// that fails). Whether a route reaches it.
    pub fn peer_back(&self, district: &str) -> bool {
        let Some(route) = self.route_for(district) else {
            return false;
        };
        match self.back.get(&route.prefix.to_string()) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }

    /// Records that a part of the node stopped: `/readyz` answers not ready
    /// from now on, while the rest stops.
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Whether every part of the node still runs.
    pub fn is_whole(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }

    /// Tells the worker of `route` that new items wait (after their commit).
    pub fn wake(&self, route: &str) {
        if let Some(n) = self.wakers.get(route) {
            n.notify_one();
        }
    }
}
