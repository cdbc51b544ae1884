//! Wiring a node together: its listeners, its delivery workers, and an
//! orderly shutdown. No business rule lives here.
//!
//! `Node::bind` opens the store and binds the listeners (port 0 gives a free
//! port, which tests and the demo use); `BoundNode::start` serves. Every
//! listener and worker is a supervised task: if one ends while the node is
//! not stopping, the node reports not ready, stops the rest cleanly and
//! `RunningNode::run_until_stopped` returns the failure (so `migrex serve`
//! exits non-zero and systemd restarts it) instead of running half alive.

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::context::NodeCtx;
use crate::exchange::server::ExchangeService;
use crate::grpc::desk::DeskService;
use crate::grpc::stats::StatsService;
use crate::identity::{TlsMaterial, Trust, tls_incoming};
use crate::pb;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr} ({which})")]
    Bind {
        which: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("the certificate is for district {cert} but the config says {config}")]
    WrongCertificate { cert: String, config: String },
    #[error(
        "tls.crl ({source_name}): {reason}; set tls.crl to the revocation list of the CA in tls.ca_cert (a file or http:// URL), or remove it"
    )]
    Crl { source_name: String, reason: String },
    #[error("audit_key {path}: {reason}")]
    AuditKey { path: String, reason: String },
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    #[error("peers[{route}]: cannot use endpoint {endpoint}: {reason}")]
    Endpoint {
        route: String,
        endpoint: String,
        reason: String,
    },
    #[error("the {task} stopped unexpectedly ({reason}); the node stopped with it")]
    TaskFailed { task: String, reason: String },
}

pub struct Node;

/// A node whose store is open and whose listeners are bound, not yet serving.
pub struct BoundNode {
    settings: Settings,
    store: Store,
    clock: SharedClock,
    exchange: TcpListener,
    desk: TcpListener,
    ops: TcpListener,
    console: Option<TcpListener>,
}

/// What a supervised task says when it ends: its name, and why if it failed.
type TaskEnd = (String, Result<(), String>);

/// A serving node.
pub struct RunningNode {
    pub ctx: Arc<NodeCtx>,
    pub exchange_addr: SocketAddr,
    pub desk_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    /// The web console's address, when it has one.
    pub console_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: JoinSet<TaskEnd>,
    /// The tasks by name, to stop one as a crash would (tests).
    handles: Vec<(String, AbortHandle)>,
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
    pub async fn bind(settings: Settings, clock: SharedClock) -> Result<BoundNode, NodeError> {
        let store = Store::open_with(
            &settings.database,
            settings.deadlines.tz,
            settings.database_connections,
        )
        .await?;
        let console = match &settings.console {
            Some((listen, _)) => Some(bind("console", listen).await?),
            None => None,
        };
        Ok(BoundNode {
            exchange: bind("exchange", &settings.listen).await?,
            desk: bind("desk", &settings.desk_listen).await?,
            ops: bind("ops", &settings.ops_listen).await?,
            console,
            settings,
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
        let s = self.settings;
        let tls = TlsMaterial::load(&s.tls.ca_cert, &s.tls.cert, &s.tls.key)?;
        let cert_district = tls.own_district()?;
        if cert_district != s.district {
            return Err(NodeError::WrongCertificate {
                cert: cert_district.to_string(),
                config: s.district.to_string(),
            });
        }
        // The revocation list is read before anything serves: a node that
        // cannot read the one it is told to use does not start.
        let trust = Trust::new(&tls, s.tls.crl.clone())?;
        let loaded = trust.refresh().await.map_err(|e| NodeError::Crl {
            source_name: trust.source().map(|s| s.to_string()).unwrap_or_default(),
            reason: e.to_string(),
        })?;
        if let Some(count) = loaded {
            tracing::info!(source = %trust.source().map(|s| s.to_string()).unwrap_or_default(), revoked = count, "revocation list loaded");
        }
        let crl_refresh = s.tls.crl_refresh;
        let checkpoint_path = crate::audit::checkpoint::path_beside(&s.audit_key);
        let audit_key = crate::audit::SubjectKey::load_or_create(&s.audit_key).map_err(|e| {
            NodeError::AuditKey {
                path: s.audit_key.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        let exchange_addr = self.exchange.local_addr().expect("bound");
        let desk_addr = self.desk.local_addr().expect("bound");
        let ops_addr = self.ops.local_addr().expect("bound");

        let routes = s.routes.clone();
        let console_tls = match &s.console {
            Some((_, files)) => Some(
                TlsMaterial::load(&files.ca_cert, &files.cert, &files.key)?
                    .console_server_config()?,
            ),
            None => None,
        };
        let console_addr = self
            .console
            .as_ref()
            .map(|l| l.local_addr().expect("bound"));
        let replica = format!("{}/{exchange_addr}", host_name());
        let (wanted, wanted_rx) = tokio::sync::mpsc::unbounded_channel();
        let ctx = Arc::new(NodeCtx::new(
            s,
            // Every entry this node appends to the access audit is hashed
            // under the chain key derived from its audit key.
            self.store.clone().with_audit_chain(audit_key.chain_key()),
            self.clock.clone(),
            (tls.clone(), trust.clone()),
            audit_key,
            replica,
            wanted,
        ));
        // The network directory: the one kept from before at once, a newer
        // one from its sources (awaited only when none was kept).
        let mut directory_read = false;
        if let Some(settings) = &ctx.directory {
            if let Some(held) = crate::directory::watch::held(settings, &tls.ca_ders()?) {
                tracing::info!(
                    serial = held.serial,
                    districts = held.districts.len(),
                    "network directory kept from before"
                );
                ctx.routes.apply(held);
            } else {
                directory_read = true;
                if let Err(e) = crate::directory::watch::refresh(&ctx).await {
                    tracing::warn!(error = %e, "no network directory yet; routes by hand only until one is read");
                }
            }
        }
        // Items queued under routes that changed since: move them to today's route.
        let waiting = crate::exchange::workers::reroute_waiting(&ctx).await?;
        let limits = ctx.limits.clone();
        let exchange_bytes = limits.exchange_message_bytes(ctx.delivery.max_batch);
        // Every peer's client is made before anything serves: an endpoint
        // that cannot be used is an error at start, naming its route.
        for route in &routes {
            crate::exchange::delivery::connect(&ctx, route).map_err(|e| NodeError::Endpoint {
                route: route.prefix.to_string(),
                endpoint: route.endpoint.clone(),
                reason: e.to_string(),
            })?;
        }
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut handles = Vec::new();

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<pb::exchange_server::ExchangeServer<ExchangeService>>()
            .await;
        health
            .set_serving::<pb::desk_server::DeskServer<DeskService>>()
            .await;
        health
            .set_serving::<pb::stats_server::StatsServer<StatsService>>()
            .await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(|e| NodeError::Reflection(e.to_string()))
        };

        let exchange = grpc_server(limits.exchange_streams)
            .layer(crate::metrics::RpcMetricsLayer(ctx.metrics.clone()))
            .layer(crate::grpc::codes::StatusLayer)
            .add_service(health_service.clone())
            .add_service(reflection()?)
            .add_service(
                pb::exchange_server::ExchangeServer::new(ExchangeService { ctx: ctx.clone() })
                    .max_decoding_message_size(exchange_bytes)
                    .max_encoding_message_size(exchange_bytes),
            )
            .serve_with_incoming_shutdown(
                tls_incoming(
                    self.exchange,
                    tls.exchange_server_config(&trust)?,
                    limits.exchange(),
                ),
                shutdown.clone().cancelled_owned(),
            );
        let name = "exchange listener".to_string();
        handles.push((
            name.clone(),
            tasks.spawn(async move { (name, exchange.await.map_err(|e| e.to_string())) }),
        ));

        let desk_bytes = limits.desk_message_bytes;
        let desk = grpc_server(limits.max_streams)
            .layer(crate::metrics::RpcMetricsLayer(ctx.metrics.clone()))
            .layer(crate::grpc::codes::StatusLayer)
            .add_service(health_service)
            .add_service(reflection()?)
            .add_service(
                pb::desk_server::DeskServer::new(DeskService { ctx: ctx.clone() })
                    .max_decoding_message_size(desk_bytes)
                    .max_encoding_message_size(desk_bytes),
            )
            .add_service(
                pb::stats_server::StatsServer::new(StatsService { ctx: ctx.clone() })
                    .max_decoding_message_size(desk_bytes)
                    .max_encoding_message_size(desk_bytes),
            )
            .serve_with_incoming_shutdown(
                tls_incoming(self.desk, tls.desk_server_config()?, limits.listener()),
                shutdown.clone().cancelled_owned(),
            );
        let name = "desk listener".to_string();
        handles.push((
            name.clone(),
            tasks.spawn(async move { (name, desk.await.map_err(|e| e.to_string())) }),
        ));

        let ops = crate::ops::serve(self.ops, ctx.clone(), shutdown.clone());
        let name = "ops listener".to_string();
        handles.push((name.clone(), tasks.spawn(async move { (name, ops.await) })));

        let watch = crate::identity::watch(
            trust.clone(),
            tls.expiries()?,
            crl_refresh,
            shutdown.clone(),
        );
        supervise(&mut tasks, &mut handles, "revocation list watcher", watch);

        let revocations = {
            let (ctx, stop) = (ctx.clone(), shutdown.clone());
            async move {
                ctx.auth
                    .watch_revocations(std::time::Duration::from_millis(500), stop)
                    .await
            }
        };
        supervise(
            &mut tasks,
            &mut handles,
            "token revocation watcher",
            revocations,
        );

        // The access audit's signed checkpoint, outside the database.
        match crate::proof::sign::NodeKey::from_pem(&tls.key_pem, ctx.district.as_str()) {
            Some(key) => {
                // Each new checkpoint goes to the peers (witnesses) too.
                let (published, heads) = tokio::sync::watch::channel(None);
                let keeper = crate::service::audit::keep_checkpoint(
                    ctx.clone(),
                    key,
                    (checkpoint_path, published),
                    shutdown.clone(),
                );
                supervise(&mut tasks, &mut handles, "audit checkpoint", keeper);
                let witness = crate::exchange::witness::serve(ctx.clone(), heads, shutdown.clone());
                supervise(&mut tasks, &mut handles, "audit head witnesses", witness);
            }
            None => tracing::warn!(
                "the node key is not an ECDSA P-256 key: the access audit's checkpoint is not kept"
            ),
        }

        let calendar = crate::exchange::deadlines::watch(ctx.clone(), shutdown.clone());
        supervise(&mut tasks, &mut handles, "calendar watcher", calendar);

        if let (Some(listener), Some(tls)) = (self.console, console_tls) {
            let console = crate::web::serve(listener, tls, ctx.clone(), shutdown.clone());
            let name = "console listener".to_string();
            handles.push((
                name.clone(),
                tasks.spawn(async move { (name, console.await) }),
            ));
        }

        let workers =
            crate::exchange::workers::run(ctx.clone(), wanted_rx, waiting, shutdown.clone());
        supervise(&mut tasks, &mut handles, "delivery workers", workers);

        let reconcile = crate::exchange::reconcile::serve(ctx.clone(), shutdown.clone());
        supervise(&mut tasks, &mut handles, "reconciliation", reconcile);

        if ctx.directory.is_some() {
            let directory = {
                let (ctx, stop) = (ctx.clone(), shutdown.clone());
                async move {
                    if !directory_read && let Err(e) = crate::directory::watch::refresh(&ctx).await
                    {
                        tracing::warn!(error = %e, "network directory: keeping the one in use");
                    }
                    crate::directory::watch::watch(ctx, stop).await
                }
            };
            supervise(&mut tasks, &mut handles, "directory watcher", directory);
        }

        tracing::info!(district = %ctx.district, name = ctx.district.county_name(), exchange = %exchange_addr, desk = %desk_addr, ops = %ops_addr, replica = %ctx.replica, "node serving");
        Ok(RunningNode {
            ctx,
            exchange_addr,
            desk_addr,
            ops_addr,
            console_addr,
            shutdown,
            tasks,
            handles,
        })
    }
}

/// Spawns a part of the node that ends only when the node stops (its end
/// is never a failure of its own) as a supervised task named `name`.
fn supervise(
    tasks: &mut JoinSet<TaskEnd>,
    handles: &mut Vec<(String, AbortHandle)>,
    name: &str,
    part: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let name = name.to_string();
    let end = name.clone();
    handles.push((
        name,
        tasks.spawn(async move {
            part.await;
            (end, Ok(()))
        }),
    ));
}

/// A gRPC server under the listener limits: `streams` per connection and
/// header size. The server sends no keepalive pings of its own: a client's
/// answers to them would keep a connection that asks nothing open past the
/// idle timeout (`identity::Limits::idle`), which closes dead and silent
/// connections alike; clients ping while they wait for a long answer.
fn grpc_server(streams: u32) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(Some(streams.max(1)))
        .http2_max_header_list_size(Some(64 << 10))
        .concurrency_limit_per_connection(streams.max(1) as usize)
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

    /// The names of the node's supervised tasks.
    pub fn task_names(&self) -> Vec<String> {
        self.handles.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Stops the task named `name` as a crash would (tests of supervision).
    pub fn abort_task(&self, name: &str) {
        for (n, h) in &self.handles {
            if n == name {
                h.abort();
            }
        }
    }

    /// Stops accepting, waits for in-flight work to finish, closes the store.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        self.drain().await;
        self.close().await;
    }

    /// Waits for the node's tasks to end once `shutdown` is cancelled: at
    /// most `SHUTDOWN_GRACE` (a client that trickles bytes cannot hold a
    /// stopping node), then ends what is left (a delivery cut short rolls
    /// back and is sent again after the restart).
    async fn drain(&mut self) {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        let grace = crate::identity::SHUTDOWN_GRACE + std::time::Duration::from_secs(1);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                tasks = self.tasks.len(),
                "parts of the node did not stop within the shutdown grace; ending them"
            );
            self.tasks.shutdown().await;
        }
    }

    async fn close(&self) {
        // The other replicas need not wait for the leases to run out; a
        // store that does not answer is not waited for either.
        let release = self.ctx.store.release_routes(&self.ctx.replica);
        match tokio::time::timeout(std::time::Duration::from_secs(2), release).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release delivery leases; they run out by themselves")
            }
            Err(_) => {
                tracing::warn!("the store did not answer; delivery leases run out by themselves")
            }
        }
        self.ctx.store.close().await;
        tracing::info!(district = %self.ctx.district, "node stopped");
    }

    /// Which task ended, and why.
    fn why(&self, end: Result<TaskEnd, tokio::task::JoinError>) -> (String, String) {
        match end {
            Ok((task, Err(reason))) => (task, reason),
            Ok((task, Ok(()))) => (task, "it ended".to_string()),
            Err(e) => {
                let task = self
                    .handles
                    .iter()
                    .find(|(_, h)| h.id() == e.id())
                    .map_or_else(|| "a task".to_string(), |(n, _)| n.clone());
                let reason = if e.is_cancelled() {
                    "it was aborted".to_string()
                } else {
                    format!("it panicked: {e}")
                };
                (task, reason)
            }
        }
    }

    /// Serves until `shutdown_token()` is cancelled (e.g. by a signal), then
    /// shuts down. If a listener or worker ends first, the node marks itself
    /// not ready, stops the rest cleanly, and returns that failure.
    pub async fn run_until_stopped(mut self) -> Result<(), NodeError> {
        let failure = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => None,
            Some(end) = self.tasks.join_next() => {
                // A task that ends because the node is stopping is no failure.
                (!self.shutdown.is_cancelled()).then(|| self.why(end))
            }
        };
        if let Some((task, reason)) = &failure {
            self.ctx.mark_failed();
            tracing::error!(task = %task, reason = %reason, "a part of the node stopped; stopping the node");
        }
        self.shutdown.cancel();
        self.drain().await;
        self.close().await;
        match failure {
            None => Ok(()),
            Some((task, reason)) => Err(NodeError::TaskFailed { task, reason }),
        }
    }
}
