//! A running node: its shared context, its three listeners, its delivery
//! workers, and an orderly shutdown.
//!
//! `Node::bind` opens the store and binds the listeners (port 0 gives a free
//! port, which tests and the demo use); `BoundNode::start` serves. Shutdown
//! stops accepting, lets in-flight calls finish their commits, stops the
//! workers between batches, and closes the store.

use crate::calendar::Deadlines;
use crate::clock::SharedClock;
use crate::config::{Config, Delivery, Route, resolve, route_for};
use crate::domain::DistrictCode;
use crate::identity::{TlsMaterial, tls_incoming};
use crate::pb;
use crate::store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("config: {0}")]
    Field(#[from] crate::domain::FieldError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr} ({which}): {source}")]
    Bind {
        which: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("the certificate is for district {cert} but the config says {config}")]
    WrongCertificate { cert: String, config: String },
    #[error("gRPC reflection: {0}")]
    Reflection(String),
}

/// What every part of a running node shares.
pub struct NodeCtx {
    pub district: DistrictCode,
    pub store: Store,
    pub clock: SharedClock,
    pub deadlines: Deadlines,
    pub routes: Vec<Route>,
    pub delivery: Delivery,
    pub tls: TlsMaterial,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This process among the replicas of the node (they share the
    /// district, certificate and PostgreSQL database): host name and exchange
    /// address, stable across restarts, so a replica restarted after a crash
    /// takes its own delivery leases back at once.
    pub replica: String,
    wakers: HashMap<String, Arc<Notify>>,
}

impl NodeCtx {
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

    /// Tells the worker of `route` that new items wait (after their commit).
    pub fn wake(&self, route: &str) {
        if let Some(n) = self.wakers.get(route) {
            n.notify_one();
        }
    }
}

pub struct Node;

/// A node whose store is open and whose listeners are bound, not yet serving.
pub struct BoundNode {
    pub config: Config,
    base: std::path::PathBuf,
    store: Store,
    clock: SharedClock,
    exchange: TcpListener,
    desk: TcpListener,
    ops: TcpListener,
}

/// A serving node.
pub struct RunningNode {
    pub ctx: Arc<NodeCtx>,
    pub exchange_addr: SocketAddr,
    pub desk_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

async fn bind(which: &'static str, addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind {
            which,
            addr: addr.to_string(),
            source,
        })
}

impl Node {
    pub async fn bind(
        config: Config,
        base: &Path,
        clock: SharedClock,
    ) -> Result<BoundNode, NodeError> {
        let store = Store::open(&config.database_location(base), config.tz()?).await?;
        Ok(BoundNode {
            exchange: bind("exchange", &config.listen).await?,
            desk: bind("desk", &config.desk_listen).await?,
            ops: bind("ops", &config.ops_listen).await?,
            config,
            base: base.to_path_buf(),
            store,
            clock,
        })
    }
}

impl BoundNode {
    pub fn exchange_addr(&self) -> SocketAddr {
        self.exchange.local_addr().expect("bound")
    }
    pub fn desk_addr(&self) -> SocketAddr {
        self.desk.local_addr().expect("bound")
    }
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops.local_addr().expect("bound")
    }

    pub async fn start(self) -> Result<RunningNode, NodeError> {
        let c = &self.config;
        let district = c.district()?;
        let tls = TlsMaterial::load(
            &resolve(&self.base, &c.tls.ca_cert),
            &resolve(&self.base, &c.tls.cert),
            &resolve(&self.base, &c.tls.key),
        )?;
        let cert_district = tls.own_district()?;
        if cert_district != district {
            return Err(NodeError::WrongCertificate {
                cert: cert_district.to_string(),
                config: district.to_string(),
            });
        }
        let routes = c.routes()?;
        let deadlines = c.deadlines(&self.base)?;
        let (exchange_addr, desk_addr, ops_addr) =
            (self.exchange_addr(), self.desk_addr(), self.ops_addr());

        // Items queued under routes that changed since: move them to today's route.
        for (target, queued_route) in self.store.outbox_targets().await? {
            let now_route = route_for(&routes, &target)
                .map(|r| r.prefix.to_string())
                .unwrap_or_default();
            if now_route != queued_route {
                tracing::info!(target = %target, from = %queued_route, to = %now_route, "re-routing waiting outbox items");
                self.store.reroute(&target, &now_route).await?;
            }
            if now_route.is_empty() {
                tracing::warn!(target = %target, "items wait for a district no route reaches; add a peer (migrex peer add)");
            }
        }

        let wakers = routes
            .iter()
            .map(|r| (r.prefix.to_string(), Arc::new(Notify::new())))
            .collect();
        let ctx = Arc::new(NodeCtx {
            district,
            store: self.store.clone(),
            clock: self.clock.clone(),
            deadlines,
            routes: routes.clone(),
            delivery: c.delivery.clone(),
            tls: tls.clone(),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            replica: format!("{}/{exchange_addr}", host_name()),
            wakers,
        });
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<pb::exchange_server::ExchangeServer<crate::exchange::server::ExchangeService>>().await;
        health
            .set_serving::<pb::desk_server::DeskServer<crate::desk::DeskService>>()
            .await;
        health
            .set_serving::<pb::stats_server::StatsServer<crate::stats::StatsService>>()
            .await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(|e| NodeError::Reflection(e.to_string()))
        };

        let exchange = tonic::transport::Server::builder()
            .layer(crate::metrics::RpcMetricsLayer(ctx.metrics.clone()))
            .add_service(health_service.clone())
            .add_service(reflection()?)
            .add_service(
                pb::exchange_server::ExchangeServer::new(
                    crate::exchange::server::ExchangeService { ctx: ctx.clone() },
                )
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            )
            .serve_with_incoming_shutdown(
                tls_incoming(self.exchange, tls.exchange_server_config()?),
                shutdown.clone().cancelled_owned(),
            );
        tasks.spawn(async move {
            if let Err(e) = exchange.await {
                tracing::error!(error = %e, "exchange listener failed");
            }
        });

        let desk_service = Arc::new(crate::desk::DeskService::new(ctx.clone()));
        let desk = tonic::transport::Server::builder()
            .layer(crate::metrics::RpcMetricsLayer(ctx.metrics.clone()))
            .add_service(health_service)
            .add_service(reflection()?)
            .add_service(pb::desk_server::DeskServer::from_arc(desk_service.clone()))
            .add_service(pb::stats_server::StatsServer::new(
                crate::stats::StatsService {
                    ctx: ctx.clone(),
                    desk: desk_service,
                },
            ))
            .serve_with_incoming_shutdown(
                tls_incoming(self.desk, tls.desk_server_config()?),
                shutdown.clone().cancelled_owned(),
            );
        tasks.spawn(async move {
            if let Err(e) = desk.await {
                tracing::error!(error = %e, "desk listener failed");
            }
        });

        tasks.spawn(crate::ops::serve(self.ops, ctx.clone(), shutdown.clone()));

        for route in routes {
            let wake = ctx.wakers[route.prefix.as_str()].clone();
            tasks.spawn(crate::exchange::delivery::run(
                ctx.clone(),
                route,
                wake,
                shutdown.clone(),
            ));
        }

        tracing::info!(district = %ctx.district, name = ctx.district.county_name(), exchange = %exchange_addr, desk = %desk_addr, ops = %ops_addr, replica = %ctx.replica, "node serving");
        Ok(RunningNode {
            ctx,
            exchange_addr,
            desk_addr,
            ops_addr,
            shutdown,
            tasks,
        })
    }
}

/// This machine's host name ("localhost" when it has none).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

impl RunningNode {
    /// A token that, when cancelled, stops the node.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, waits for in-flight work to finish, closes the store.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        // The other replicas need not wait for the leases to run out.
        if let Err(e) = self.ctx.store.release_routes(&self.ctx.replica).await {
            tracing::warn!(error = %e, "cannot release delivery leases; they run out by themselves");
        }
        self.ctx.store.close().await;
        tracing::info!(district = %self.ctx.district, "node stopped");
    }

    /// Serves until `shutdown_token()` is cancelled (e.g. by a signal), then shuts down.
    pub async fn run_until_stopped(self) {
        self.shutdown.cancelled().await;
        self.shutdown().await;
    }
}
