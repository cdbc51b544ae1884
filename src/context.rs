//! What every part of a running node shares: its district, store, clock,
//! deadlines, routes, TLS material, counters, staff authentication, and the
//! bells that wake the delivery workers. `node` builds it once at start and
//! hands it to the exchange, the service layer, the ops listener and the
//! workers; nothing here starts or serves anything.

use crate::auth::Authenticator;
use crate::calendar::{CalendarFile, Deadlines};
use crate::clock::SharedClock;
use crate::config::{Delivery, ListenLimits, Route, Settings};
use crate::domain::DistrictCode;
use crate::identity::{TlsMaterial, Trust};
use crate::metrics::Metrics;
use crate::routing::Routes;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::Notify;

pub struct NodeCtx {
    pub district: DistrictCode,
    pub store: Store,
    pub clock: SharedClock,
    pub deadlines: Deadlines,
    /// Where newer years of the holiday schedule come from.
    pub calendar_file: CalendarFile,
    /// The routes by hand and by the network directory.
    pub routes: Routes,
    /// Where the network directory is read, if this node routes by one.
    pub directory: Option<crate::config::DirectorySettings>,
    pub delivery: Delivery,
    pub tls: TlsMaterial,
    /// Signs what this node sends (docs/protocol.md); None only for a key
    /// that is not ECDSA P-256, which then sends unsigned.
    pub signer: Option<crate::proof::signer::Signer>,
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
    /// Per route: its worker's bell, and the bell rung when the peer says
    /// it is back (`Exchange.Hello`). Made when first asked for: routes come
    /// and go with the directory.
    bells: Mutex<HashMap<String, Bells>>,
    /// Routes whose items wait and that have no delivery worker yet, for
    /// the node to start one (the exchange's `workers` module).
    wanted: tokio::sync::mpsc::UnboundedSender<String>,
    /// Reconciliations asked for now (`reconcile`), served by the exchange
    /// (`exchange::reconcile::serve`), which takes the receiving end.
    reconcile_asks: (
        tokio::sync::mpsc::Sender<crate::reconcile::Ask>,
        Mutex<Option<tokio::sync::mpsc::Receiver<crate::reconcile::Ask>>>,
    ),
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
        wanted: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Self {
        let Settings {
            district,
            deadlines,
            calendar,
            routes,
            directory,
            delivery,
            limits,
            ..
        } = settings;
        let own = district.clone();
        let signer = crate::proof::signer::Signer::of(&tls, &district);
        if signer.is_none() {
            tracing::warn!(
                "the node key is not ECDSA P-256: this node sends unsigned items, which peers refuse unless they accept unsigned ones"
            );
        }
        NodeCtx {
            signer,
            auth: Authenticator::new(store.clone()),
            login_throttle: Default::default(),
            metrics: Arc::new(Metrics::default()),
            district,
            store,
            clock,
            deadlines,
            calendar_file: calendar,
            routes: Routes::new(own, routes),
            directory,
            delivery,
            tls,
            trust,
            limits,
            audit_key,
            replica,
            bells: Mutex::new(HashMap::new()),
            wanted,
            reconcile_asks: {
                // A few at a time: each one calls a peer.
                let (tx, rx) = tokio::sync::mpsc::channel(8);
                (tx, Mutex::new(Some(rx)))
            },
            failed: AtomicBool::new(false),
        }
    }

    /// Reconciles with `peer` for `period` (YYYY-MM) now, through the
    /// exchange (对账); an error says why it did not finish.
    pub async fn reconcile(
        &self,
        peer: &str,
        period: &str,
    ) -> Result<crate::reconcile::Outcome, String> {
        let (answer, outcome) = tokio::sync::oneshot::channel();
        let ask = crate::reconcile::Ask {
            peer: peer.to_string(),
            period: period.to_string(),
            answer,
        };
        self.reconcile_asks
            .0
            .try_send(ask)
            .map_err(|_| "reconciliation is busy or not running; ask again shortly".to_string())?;
        outcome
            .await
            .map_err(|_| "reconciliation stopped before it finished".to_string())?
    }

    /// The receiving end of `reconcile`'s asks, once.
    pub fn take_reconcile_asks(
        &self,
    ) -> Option<tokio::sync::mpsc::Receiver<crate::reconcile::Ask>> {
        self.reconcile_asks
            .1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Now, to the microsecond: the precision the store keeps, so that an
    /// instant read back equals the one that was acknowledged.
    pub fn now(&self) -> OffsetDateTime {
        let t = self.clock.now();
        t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
            .expect("valid nanosecond")
    }

    /// The route for a district code: by hand, by longest prefix, then by
    /// the network directory.
    pub fn route_for(&self, code: &str) -> Option<Route> {
        self.routes
            .route_for(code, self.deadlines.local_date(self.now()))
    }

    /// Whether `district`'s node answers for `code` today (`Routes::answers_for`).
    pub fn answers_for(&self, district: &DistrictCode, code: &str) -> bool {
        self.routes
            .answers_for(district, code, self.deadlines.local_date(self.now()))
    }

    /// Whether `caller` may hand this node an item `author` wrote, today
    /// (`Routes::may_speak_for`).
    pub fn may_speak_for(&self, caller: &DistrictCode, author: &str) -> bool {
        self.routes
            .may_speak_for(caller, author, self.deadlines.local_date(self.now()))
    }

    fn bells(&self, route: &str) -> Bells {
        self.bells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route.to_string())
            .or_default()
            .clone()
    }

    /// The bell of `route`'s delivery worker.
    pub fn waker(&self, route: &str) -> Arc<Notify> {
        self.bells(route).wake
    }

    /// The bell `route`'s worker waits on while it backs off: its peer is back.
    pub fn back_bell(&self, route: &str) -> Arc<Notify> {
        self.bells(route).back
    }

    /// A peer said it is back: the worker of the route that reaches
    /// `district` tries again at once (one attempt; its backoff goes on if
    /// that fails). Whether a route reaches it.
    pub fn peer_back(&self, district: &str) -> bool {
        let Some(route) = self.route_for(district) else {
            return false;
        };
        self.back_bell(route.prefix.as_str()).notify_one();
        true
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

    /// Tells the worker of `route` that new items wait (after their
    /// commit); one is started if the route has none yet.
    pub fn wake(&self, route: &str) {
        if route.is_empty() {
            return;
        }
        let bells = self.bells(route);
        bells.wake.notify_one();
        if !bells.served.load(Ordering::Acquire) {
            let _ = self.wanted.send(route.to_string());
        }
    }

    /// Whether a delivery worker of this process serves `route`.
    pub fn is_served(&self, route: &str) -> bool {
        self.bells(route).served.load(Ordering::Acquire)
    }

    /// Marks whether `route` has a delivery worker in this process; returns
    /// whether it had one before.
    pub fn set_served(&self, route: &str, served: bool) -> bool {
        self.bells(route).served.swap(served, Ordering::AcqRel)
    }
}

/// The two bells of one route.
#[derive(Clone, Default)]
struct Bells {
    wake: Arc<Notify>,
    back: Arc<Notify>,
    /// Whether a delivery worker of this process serves the route.
    served: Arc<AtomicBool>,
}
