//! Benchmark (not a test): notices accepted per second by one node — the
//! receiving side of the exchange, with everything it does per notice
//! (validation, idempotency check, duplicate-event check, deadline, insert,
//! commit before the ack) — on SQLite or on PostgreSQL with one or more
//! replicas sharing the database.
//!
//!     cargo run --release --example bench_throughput -- [NOTICES] [sqlite | postgres://ADMIN-URL] [REPLICAS]
//!
//! A peer (440303) delivers NOTICES notices (default 200,000) in batches of
//! 500 over 8 concurrent TLS connections, spread over the replicas; the
//! clock runs from the first call to the last acknowledgement. With a
//! PostgreSQL URL, a new database is created through it for the run. With
//! BENCH_UNSIGNED=1 nothing is signed (`common/unsigned.rs`).

use migrex::clock::SystemClock;
use migrex::config::Config;
use migrex::node::Node;
use migrex::pb;
use migrex::setup::{LocalNetwork, StoreChoice};
use std::sync::Arc;
use std::time::Instant;

#[path = "common/birth.rs"]
mod birth;
#[path = "common/unsigned.rs"]
mod unsigned;

const BATCH: usize = 500;
const CONNECTIONS: usize = 8;

/// Notice `i` as an origin node sends it: in the form every node stores
/// (parsed and written out again), which is what its origin signs.
fn notice(i: usize) -> pb::Notice {
    let n = pb::Notice {
        id: uuid::Uuid::new_v4().to_string(),
        origin: "440303".into(),
        created_at: Some(migrex::domain::ts_to_pb(time::OffsetDateTime::now_utc())),
        ..birth::birth(i)
    };
    let ctx = migrex::domain::ParseContext {
        today: time::macros::date!(9999 - 12 - 31),
    };
    migrex::domain::NoticeContent::parse(&n, &ctx)
        .expect("a valid notice")
        .to_wire()
}

#[tokio::main]
async fn main() {
    migrex::cli::init_tracing("warn");
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args
        .get(1)
        .map(|s| s.parse().expect("NOTICES"))
        .unwrap_or(200_000);
    let store = match args.get(2).map(String::as_str) {
        None | Some("sqlite") => StoreChoice::Sqlite,
        Some(url) => StoreChoice::Postgres {
            admin_url: url.to_string(),
        },
    };
    let replicas: usize = args
        .get(3)
        .map(|s| s.parse().expect("REPLICAS"))
        .unwrap_or(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let net = LocalNetwork::create_with(
        dir.path(),
        &["440303", "510116"],
        unsigned::delivery(),
        &store,
    )
    .await
    .expect("nodes");
    unsigned::apply(&net);
    // The receiving node, as `replicas` processes' worth of nodes on one store.
    let (config, base) = Config::load(&net.nodes[1].config_path).expect("config");
    let mut running = Vec::new();
    let mut urls = Vec::new();
    for r in 0..replicas {
        let mut c = config.clone();
        if r > 0 {
            let port = || format!("127.0.0.1:{}", migrex::setup::free_port().expect("port"));
            (c.listen, c.desk_listen, c.ops_listen) = (port(), port(), port());
            c.console = None;
        }
        urls.push(format!("https://{}", c.listen));
        let settings = migrex::config::Settings::from_config(&c, &base, &net.nodes[1].config_path)
            .expect("settings");
        let node = Node::bind(settings, Arc::new(SystemClock))
            .await
            .expect("bind")
            .start()
            .await
            .expect("start");
        running.push(node);
    }
    let tls = {
        let d = net.nodes[0].config_path.parent().expect("folder");
        migrex::identity::TlsMaterial::load(
            &d.join("ca.crt"),
            &d.join("node.crt"),
            &d.join("node.key"),
        )
        .expect("tls")
    };
    // The origin signs each batch as its delivery does (docs/protocol.md):
    // inside the timed loop, so its cost is part of the figure.
    // None with BENCH_UNSIGNED=1 (an Ed25519 key): the batches go unsigned.
    let signer = Arc::new(migrex::proof::signer::Signer::of(
        &tls,
        &tls.own_district().expect("district"),
    ));
    assert_eq!(signer.is_none(), unsigned::wanted(), "the node key");
    let batches: Vec<Vec<pb::Notice>> = (0..total)
        .map(notice)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| c.to_vec())
        .collect();
    let work = Arc::new(std::sync::Mutex::new(batches));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..CONNECTIONS {
        let url = urls[k % urls.len()].clone();
        let tls = tls.clone();
        let work = work.clone();
        let signer = signer.clone();
        tasks.spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(url)
                .expect("url")
                .tls_config(tls.peer_client_config())
                .expect("tls")
                .connect()
                .await
                .expect("connect");
            let mut client = pb::exchange_client::ExchangeClient::new(channel)
                .max_encoding_message_size(64 << 20);
            let mut accepted = 0usize;
            loop {
                let Some(mut batch) = work.lock().expect("lock").pop() else {
                    return accepted;
                };
                // As the origin's delivery signs: the call's batch, each
                // notice carrying its index.
                let call = signer.as_ref().as_ref().map(|signer| {
                    let items: Vec<Vec<u8>> =
                        batch.iter().map(migrex::proof::canonical::notice).collect();
                    let signed = signer.sign_call(&items);
                    for (n, p) in batch.iter_mut().zip(&signed.proofs) {
                        n.proof = Some(migrex::proof::signer::index_only(p.index));
                    }
                    signed.batch
                });
                let acks = client
                    .deliver_notices(pb::DeliverNoticesRequest {
                        notices: batch,
                        batch: call,
                    })
                    .await
                    .expect("DeliverNotices")
                    .into_inner()
                    .acks;
                assert!(
                    acks.iter().all(|a| a.error.is_none()),
                    "{:?}",
                    acks.iter().find(|a| a.error.is_some())
                );
                accepted += acks.len();
            }
        });
    }
    let mut accepted = 0;
    while let Some(n) = tasks.join_next().await {
        accepted += n.expect("task");
    }
    let secs = t0.elapsed().as_secs_f64();
    let stored = running[0]
        .ctx
        .store
        .count_notices(migrex::domain::Direction::Inbound)
        .await
        .expect("count");
    println!(
        "{} with {replicas} replica(s): {accepted} notices accepted in {secs:.1} s = {:.0} notices/s ({stored} stored)",
        match store {
            StoreChoice::Sqlite => "SQLite",
            StoreChoice::Postgres { .. } => "PostgreSQL",
        },
        accepted as f64 / secs
    );
    for r in running {
        r.shutdown().await;
    }
}
