//! Prometheus metrics on the ops listener's `/metrics` (OpenMetrics text).
//!
//! Two kinds: counters the process keeps (delivery attempts and failures per
//! peer, gRPC requests per method and status, their latency), and figures
//! read from the store at each scrape (notices by direction, kind, peer and
//! status; overdue open; the outbox per peer; this month's timeliness
//! figures from `stats::timeliness`, the same path `Stats.GetTimeliness` runs,
//! so the two always agree). Label values are bounded: peers are districts,
//! methods are the known gRPC methods; no ID number or notice id is a label.

use crate::config::Route;
use crate::domain::Direction;
use crate::stats::{GroupCounts, Period, rows, timeliness};
use crate::store::{Store, StoreError};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use time::OffsetDateTime;

type Labels = Vec<(String, String)>;
type RateFamily = Family<Labels, Gauge<f64, AtomicU64>>;

/// A peer's label: always a six-digit division code, so that label values
/// stay bounded by the divisions that exist — the county (first six digits)
/// of a street code a peer puts on its notices, and for a route that covers
/// a province or a city (`41`, `4103`) that division's own code (`410000`,
/// `410300`), as the national division table writes it.
pub fn peer_label(code: &str) -> std::borrow::Cow<'_, str> {
    match code.get(..6) {
        Some(county) => county.into(),
        None => format!("{code:0<6}").into(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The gRPC methods that may appear as a label; anything else is "other".
const METHODS: &[&str] = &[
    "/migrex.v1.Exchange/DeliverNotices",
    "/migrex.v1.Exchange/DeliverReplies",
    "/migrex.v1.Desk/SubmitNotice",
    "/migrex.v1.Desk/SubmitNotices",
    "/migrex.v1.Desk/GetNotice",
    "/migrex.v1.Desk/ListPending",
    "/migrex.v1.Desk/AcknowledgeNotice",
    "/migrex.v1.Desk/SubmitFeedback",
    "/migrex.v1.Desk/ListNotices",
    "/migrex.v1.Desk/WithdrawNotice",
    "/migrex.v1.Stats/GetTimeliness",
    "/migrex.v1.Stats/ListOverdue",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];

pub struct Metrics {
    registry: Registry,
    delivery_attempts: Family<Labels, Counter>,
    delivery_failures: Family<Labels, Counter>,
    rpc_requests: Family<Labels, Counter>,
    rpc_duration: Family<Labels, Histogram, fn() -> Histogram>,
    directory_refused: Counter,
    relay_taken: Counter,
    reconcile_divergent: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("migrex");
        let delivery_attempts = Family::<Labels, Counter>::default();
        let delivery_failures = Family::<Labels, Counter>::default();
        let rpc_requests = Family::<Labels, Counter>::default();
        let rpc_duration: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        registry.register(
            "delivery_attempts",
            "Calls made to deliver a batch to a peer",
            delivery_attempts.clone(),
        );
        registry.register(
            "delivery_failures",
            "Delivery calls to a peer that failed (retried)",
            delivery_failures.clone(),
        );
        registry.register(
            "rpc_requests",
            "gRPC requests served, by method and status code",
            rpc_requests.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "Time to serve a gRPC request, by method",
            rpc_duration.clone(),
        );
        let directory_refused = Counter::default();
        registry.register(
            "directory_refreshes_failed",
            "Readings of the network directory in which no source gave a document this node takes (unreachable, bad signature, expired, older); the one in use is kept",
            directory_refused.clone(),
        );
        let relay_taken = Counter::default();
        registry.register(
            "relay_taken",
            "Notices and replies this node took as a relay (中转) for other districts, to forward them",
            relay_taken.clone(),
        );
        let reconcile_divergent = Family::<Labels, Gauge>::default();
        registry.register(
            "reconcile_divergent_notices",
            "Notices on which this node and the peer disagreed at the last reconciliation (对账) of the current and previous three months",
            reconcile_divergent.clone(),
        );
        Metrics {
            reconcile_divergent,
            relay_taken,
            directory_refused,
            registry,
            delivery_attempts,
            delivery_failures,
            rpc_requests,
            rpc_duration,
        }
    }
}

/// Queues by label: what waits, what was refused for good, the oldest
/// item's age (the outbox per route, the relay's per district).
#[derive(Default)]
struct Queues {
    waiting: Family<Labels, Gauge>,
    refused: Family<Labels, Gauge>,
    oldest: Family<Labels, Gauge>,
}

impl Queues {
    fn add(&self, l: Labels, waiting: i64, refused: i64, age: i64) {
        self.waiting.get_or_create(&l).inc_by(waiting);
        self.refused.get_or_create(&l).inc_by(refused);
        let oldest = self.oldest.get_or_create(&l);
        oldest.set(oldest.get().max(age));
    }

    /// Registers `{prefix}_{waiting name}`, `{prefix}_refused` and
    /// `{prefix}_oldest_age_seconds`.
    fn register(
        self,
        scrape: &mut Registry,
        prefix: &str,
        [waiting, waiting_help]: [&str; 2],
        refused_help: &str,
        oldest_help: &str,
    ) {
        scrape.register(format!("{prefix}_{waiting}"), waiting_help, self.waiting);
        scrape.register(format!("{prefix}_refused"), refused_help, self.refused);
        scrape.register(
            format!("{prefix}_oldest_age_seconds"),
            oldest_help,
            self.oldest,
        );
    }
}

fn direction_name(d: Direction) -> &'static str {
    if d == Direction::Inbound {
        "inbound"
    } else {
        "outbound"
    }
}

impl Metrics {
    pub fn delivery_attempt(&self, route: &str, failed: bool) {
        let l = labels(&[("peer", &peer_label(route))]);
        self.delivery_attempts.get_or_create(&l).inc();
        if failed {
            self.delivery_failures.get_or_create(&l).inc();
        }
    }

    fn rpc(&self, path: &str, code: &str, seconds: f64) {
        let method = if METHODS.contains(&path) {
            path
        } else {
            "other"
        };
        self.rpc_requests
            .get_or_create(&labels(&[("method", method), ("code", code)]))
            .inc();
        self.rpc_duration
            .get_or_create(&labels(&[("method", method)]))
            .observe(seconds);
    }

    /// A reading of the network directory that took nothing.
    pub fn directory_refused(&self) {
        self.directory_refused.inc();
    }

    /// Items taken to forward as a relay.
    pub fn relayed(&self, items: usize) {
        self.relay_taken.inc_by(items as u64);
    }

    /// What the last reconciliation with `peer` found.
    pub fn reconciled(&self, peer: &str, divergent: usize) {
        self.reconcile_divergent
            .get_or_create(&labels(&[("peer", &peer_label(peer))]))
            .set(divergent as i64);
    }

    /// The exposition text: the process's counters and the store's figures
    /// at `now`, with the timeliness figures of `month` (the current one),
    /// the certificates' expiry and the holiday schedule's last year.
    pub async fn render(
        &self,
        store: &Store,
        routes: &[Route],
        (month, now): (Period, OffsetDateTime),
        certificates: &[(&'static str, i64)],
        last_covered_year: i32,
        directory: Option<&crate::directory::Directory>,
    ) -> Result<String, StoreError> {
        let mut scrape = Registry::with_prefix("migrex");

        if let Some(d) = directory {
            let serial = Gauge::<i64>::default();
            serial.set(i64::try_from(d.serial).unwrap_or(i64::MAX));
            scrape.register(
                "directory_serial",
                "The serial of the network directory (通讯录) this node routes by",
                serial,
            );
            let expiry = Gauge::<i64>::default();
            expiry.set(d.expires_at.unix_timestamp());
            scrape.register(
                "directory_expiry_timestamp_seconds",
                "When the network directory in use expires (seconds since 1970); an expired one stays in use until a newer one is read",
                expiry,
            );
        }

        let expiry = Family::<Labels, Gauge>::default();
        for (which, at) in certificates {
            expiry
                .get_or_create(&labels(&[("certificate", which)]))
                .set(*at);
        }
        scrape.register(
            "certificate_expiry_timestamp_seconds",
            "When this node's certificate and the network CA's expire (seconds since 1970); the log warns 30 days ahead",
            expiry,
        );

        let covered = Gauge::<i64>::default();
        covered.set(i64::from(last_covered_year));
        scrape.register(
            "calendar_last_covered_year",
            "The last year of the official holiday schedule (节假日安排) this node has; working-day deadlines past it are provisional",
            covered,
        );

        let notices = Family::<Labels, Gauge>::default();
        for c in store.notice_counts().await? {
            notices
                .get_or_create(&labels(&[
                    ("direction", direction_name(c.direction)),
                    ("kind", c.kind.as_str_name()),
                    ("peer", &peer_label(&c.peer)),
                    ("status", c.status.as_str_name()),
                ]))
                .inc_by(c.notices);
        }
        scrape.register(
            "notices",
            "Notices stored, by direction, kind, peer and status",
            notices,
        );

        let overdue = Family::<Labels, Gauge>::default();
        for c in store.overdue_counts(now).await? {
            overdue
                .get_or_create(&labels(&[
                    ("direction", direction_name(c.direction)),
                    ("peer", &peer_label(&c.peer)),
                ]))
                .inc_by(c.notices);
        }
        scrape.register(
            "overdue_open",
            "Notices without their reply past their deadline (all time)",
            overdue,
        );

        // Every configured peer shows, at zero when nothing waits for it;
        // routes that share a label (a county and a street in it) add up.
        let outbox = Queues::default();
        for r in routes {
            outbox.add(labels(&[("peer", &peer_label(r.prefix.as_str()))]), 0, 0, 0);
        }
        for c in store.outbox_counts().await? {
            let age = c.oldest_waiting.map_or(0, |t| (now - t).whole_seconds());
            outbox.add(
                labels(&[("peer", &peer_label(&c.route))]),
                c.waiting,
                c.refused,
                age,
            );
        }
        outbox.register(
            &mut scrape,
            "outbox",
            ["backlog", "Items waiting for delivery, per peer route"],
            "Items a peer refused for good, per peer route",
            "Age of the oldest item waiting for delivery, per peer route (0: none waiting)",
        );
        let relay = Queues::default();
        for q in store.relay_queues().await? {
            let age = q.oldest_waiting.map_or(0, |t| (now - t).whole_seconds());
            relay.add(
                labels(&[("target", &peer_label(&q.target))]),
                q.waiting,
                q.refused,
                age,
            );
        }
        relay.register(
            &mut scrape,
            "relay",
            [
                "waiting",
                "Items this node relays (中转) waiting to be forwarded, by the district they go to (label target)",
            ],
            "Relayed items the next node refused for good, by the district they go to (label target)",
            "Age of the oldest relayed item waiting, by the district it goes to",
        );

        // This month's timeliness figures, exactly as Stats.GetTimeliness computes them.
        let counts: Vec<(&str, &str, Family<Labels, Gauge>)> = [
            ("month_received", "Notices received this month (the cohort)"),
            (
                "month_receipt_expected",
                "This month's cohort: receipt expected",
            ),
            ("month_acknowledged", "This month's cohort: acknowledged"),
            (
                "month_acknowledged_timely",
                "This month's cohort: acknowledged by the deadline",
            ),
            (
                "month_feedback_expected",
                "This month's cohort: feedback expected",
            ),
            ("month_answered", "This month's cohort: answered"),
            (
                "month_answered_timely",
                "This month's cohort: answered by the deadline",
            ),
            (
                "month_overdue_open",
                "This month's cohort: without their reply past the deadline",
            ),
            (
                "month_not_yet_due",
                "This month's cohort: without their reply, not yet due",
            ),
        ]
        .into_iter()
        .map(|(n, h)| (n, h, Family::default()))
        .collect();
        let rates: Vec<(&str, &str, RateFamily)> = [
            (
                "month_receipt_rate",
                "This month's receipt rate 接收率 (absent when nothing is expected)",
            ),
            (
                "month_timely_receipt_rate",
                "This month's timely receipt rate 接收及时率",
            ),
            ("month_feedback_rate", "This month's feedback rate 反馈率"),
            (
                "month_timely_feedback_rate",
                "This month's timely feedback rate 反馈及时率",
            ),
        ]
        .into_iter()
        .map(|(n, h)| (n, h, Family::default()))
        .collect();
        for direction in [Direction::Inbound, Direction::Outbound] {
            let groups = timeliness(store, month, direction, now, true, false).await?;
            // One label per county: a peer cannot mint label values by
            // giving its notices street codes of its own choosing.
            let mut by_county: std::collections::BTreeMap<String, GroupCounts> = Default::default();
            for g in groups {
                let label = peer_label(&g.peer).to_string();
                by_county
                    .entry(label.clone())
                    .or_insert_with(|| GroupCounts {
                        peer: label,
                        ..Default::default()
                    })
                    .absorb(g.counts);
            }
            let groups: Vec<GroupCounts> = by_county.into_values().collect();
            for row in rows(&groups, true, false) {
                let l = labels(&[
                    ("direction", direction_name(direction)),
                    ("peer", &row.peer),
                ]);
                let values = [
                    row.received,
                    row.receipt_expected,
                    row.acknowledged,
                    row.acknowledged_timely,
                    row.feedback_expected,
                    row.answered,
                    row.answered_timely,
                    row.overdue_open,
                    row.not_yet_due,
                ];
                for ((_, _, f), v) in counts.iter().zip(values) {
                    f.get_or_create(&l).set(v as i64);
                }
                let rate_values = [
                    row.receipt_rate,
                    row.timely_receipt_rate,
                    row.feedback_rate,
                    row.timely_feedback_rate,
                ];
                for ((_, _, f), v) in rates.iter().zip(rate_values) {
                    if let Some(v) = v {
                        f.get_or_create(&l).set(v);
                    }
                }
            }
        }
        for (name, help, f) in counts {
            scrape.register(name, help, f);
        }
        for (name, help, f) in rates {
            scrape.register(name, help, f);
        }

        let mut out = String::new();
        encode_registry(&mut out, &self.registry).expect("writing to a String");
        encode_registry(&mut out, &scrape).expect("writing to a String");
        encode_eof(&mut out).expect("writing to a String");
        Ok(out)
    }
}

/// A tower layer that counts and times every gRPC request.
#[derive(Clone)]
pub struct RpcMetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// The gRPC status name in a response's headers (errors are trailers-only
/// responses, so their status is there); a streamed success has none yet: OK.
fn code_of(headers: &http::HeaderMap) -> &'static str {
    let code: i32 = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        _ => "OTHER",
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let start = std::time::Instant::now();
        let fut = self.inner.call(req);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                Ok(r) => code_of(r.headers()),
                Err(_) => "TRANSPORT_ERROR",
            };
            metrics.rpc(&path, code, start.elapsed().as_secs_f64());
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::peer_label;

    #[test]
    fn peer_labels_are_six_digit_division_codes() {
        assert_eq!(peer_label("510116"), "510116");
        assert_eq!(peer_label("510116001"), "510116");
        assert_eq!(peer_label("41"), "410000");
        assert_eq!(peer_label("4103"), "410300");
    }
}
