//! Safety check (not a benchmark; issue 11's "speed must not cost
//! safety"): NOTICES notices (default 20,000) cross from an origin
//! (Luohu, 440303) to a destination (Shuangliu, 510116), two `migrex serve`
//! processes, while one or the other is killed with SIGKILL KILLS times
//! (default 20; origin and destination in turn) and started again. The
//! notices carry their own ids; a submit cut by a kill is sent again (the
//! desk answers AlreadyExists when the cut call had committed). At the end
//! every notice must be stored once at the destination, every one marked
//! delivered at the origin with the destination's first acknowledgement,
//! and the outbox empty. Exits non-zero, naming what broke, otherwise.
//!
//!     cargo run --release --example crash_check -- [NOTICES] [KILLS] [sqlite | postgres://ADMIN-URL]
//!
//! Each kill comes once the destination has stored another share of the
//! notices (NOTICES / (KILLS + 2)), so every kill lands while notices cross.

use migrex::config::{Config, Delivery};
use migrex::domain::{Direction, NoticeStatus};
use migrex::pb;
use migrex::setup::{LocalNetwork, StoreChoice};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "common/birth.rs"]
mod birth;
#[path = "common/serve.rs"]
mod serve;
use serve::Serve;

const SUBMIT_BATCH: usize = 200;

fn notice(i: usize, id: &str) -> pb::Notice {
    pb::Notice {
        id: id.to_string(),
        ..birth::birth(i)
    }
}

/// A second, reading connection to a node's store.
enum Peek {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Peek {
    async fn open(config: &Path) -> Peek {
        let (c, base) = Config::load(config).expect("config");
        let url = c.database_location(&base);
        if url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1);
            Peek::Postgres(pool.connect(&url).await.expect("store"))
        } else {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&url)
                .read_only(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1);
            Peek::Sqlite(pool.connect_with(options).await.expect("store"))
        }
    }

    async fn count(&self, sql: &'static str) -> i64 {
        match self {
            Peek::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Peek::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .expect("count")
    }

    /// Each notice of `direction`: its id, status and receipt time.
    async fn notices(&self, direction: Direction) -> Vec<(String, i32, Option<i64>)> {
        let sql =
            "SELECT id, CAST(status AS INTEGER), received_at FROM notices WHERE direction = $1";
        match self {
            Peek::Sqlite(p) => {
                sqlx::query_as(sql)
                    .bind(direction as i32)
                    .fetch_all(p)
                    .await
            }
            Peek::Postgres(p) => {
                sqlx::query_as(sql)
                    .bind(direction as i32)
                    .fetch_all(p)
                    .await
            }
        }
        .expect("notices")
    }
}

/// Submits every notice in batches, again after each cut call, until all
/// are committed.
async fn submit_all(
    url: String,
    ca: String,
    token: String,
    ids: Arc<Vec<String>>,
    resent: Arc<AtomicUsize>,
) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut desk = None;
    let mut start = 0;
    while start < ids.len() {
        assert!(
            Instant::now() < deadline,
            "submits did not end in 10 minutes"
        );
        if desk.is_none() {
            match migrex::client::connect(&url, &ca, &token).await {
                Ok(d) => desk = Some(d.max_encoding_message_size(64 << 20)),
                Err(_) => {
                    // The origin is down: look again shortly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        let end = (start + SUBMIT_BATCH).min(ids.len());
        let notices = (start..end).map(|i| notice(i, &ids[i])).collect();
        let d = desk.as_mut().expect("desk");
        match d
            .submit_notices(pb::SubmitNoticesRequest {
                notices,
                validate_only: false,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                assert!(
                    r.committed && r.refused == 0,
                    "refused: {:?}",
                    r.results.first()
                );
                start = end;
            }
            // A call cut by a kill had committed: the batch is stored.
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                resent.fetch_add(1, Ordering::Relaxed);
                start = end;
            }
            Err(_) => {
                resent.fetch_add(1, Ordering::Relaxed);
                desk = None;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    migrex::cli::init_tracing("warn");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total: usize = args
        .first()
        .map(|s| s.parse().expect("NOTICES"))
        .unwrap_or(20_000);
    let kills: usize = args.get(1).map(|s| s.parse().expect("KILLS")).unwrap_or(20);
    let store = match args.get(2).map(String::as_str) {
        None | Some("sqlite") => StoreChoice::Sqlite,
        Some(url) => StoreChoice::Postgres {
            admin_url: url.to_string(),
        },
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // Small delivery batches and short retries, so that kills land between
    // many commits on both sides and the origin comes back soon.
    let delivery = Delivery {
        batch_size: 50,
        backoff_initial_ms: 20,
        backoff_max_ms: 200,
        idle_poll_ms: 100,
        ..Delivery::default()
    };
    let net = LocalNetwork::create_with(dir.path(), &["440303", "510116"], delivery, &store)
        .await
        .expect("nodes");
    let configs: Vec<PathBuf> = net.nodes.iter().map(|n| n.config_path.clone()).collect();
    let mut nodes: Vec<Option<Serve>> = configs.iter().map(|p| Some(Serve::start(p))).collect();
    for n in nodes.iter().flatten() {
        n.ready().await;
    }
    let origin = Peek::open(&configs[0]).await;
    let destination = Peek::open(&configs[1]).await;
    const INBOUND: &str = "SELECT COUNT(*) FROM notices WHERE direction = 2";
    assert_eq!(Direction::Inbound as i32, 2, "INBOUND's direction");

    let ids: Arc<Vec<String>> = Arc::new(
        (0..total)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect(),
    );
    let resent = Arc::new(AtomicUsize::new(0));
    let submitted = Arc::new(AtomicBool::new(false));
    let submitter = {
        let (url, ca, token) = (
            net.nodes[0].desk_url.clone(),
            net.ca_pem.clone(),
            net.nodes[0].admin_token.clone(),
        );
        let (ids, resent, submitted) = (ids.clone(), resent.clone(), submitted.clone());
        tokio::spawn(async move {
            submit_all(url, ca, token, ids, resent).await;
            submitted.store(true, Ordering::Relaxed);
        })
    };

    let t0 = Instant::now();
    let step = (total / (kills + 2)).max(1) as i64;
    let mut last = 0;
    for k in 0..kills {
        // Wait (polling, with a deadline) until another share has crossed.
        let deadline = Instant::now() + Duration::from_secs(300);
        let at = loop {
            let n = destination.count(INBOUND).await;
            if n >= last + step {
                break n;
            }
            assert!(
                !submitter.is_finished() || submitted.load(Ordering::Relaxed),
                "the submits stopped (see above)"
            );
            assert!(
                n < total as i64,
                "every notice crossed after only {k} of {kills} kills; use more notices"
            );
            assert!(
                Instant::now() < deadline,
                "no progress for 5 minutes at {n} of {total}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let victim = k % 2;
        // Dropping a Serve kills its process with SIGKILL and reaps it.
        nodes[victim] = None;
        eprintln!(
            "  kill {} of {kills}: the {} at {at} of {total} stored at the destination, {:.1} s",
            k + 1,
            ["origin", "destination"][victim],
            t0.elapsed().as_secs_f64()
        );
        let back = Serve::start(&configs[victim]);
        back.ready().await;
        nodes[victim] = Some(back);
        last = at;
    }

    // Everything committed at the origin and acknowledged, with a deadline.
    submitter.await.expect("submitter");
    let deadline = Instant::now() + Duration::from_secs(300);
    while origin.count("SELECT COUNT(*) FROM outbox").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox did not empty in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resident: Vec<String> = nodes
        .iter()
        .flatten()
        .map(|n| format!("{:.0}", n.mib("VmRSS")))
        .collect();
    drop(nodes);

    let sent = origin.notices(Direction::Outbound).await;
    let received: HashMap<String, (i32, Option<i64>)> = destination
        .notices(Direction::Inbound)
        .await
        .into_iter()
        .map(|(id, status, at)| (id, (status, at)))
        .collect();
    let mut faults = Vec::new();
    if sent.len() != total {
        faults.push(format!(
            "the origin holds {} outbound notices, not {total}",
            sent.len()
        ));
    }
    let stored = destination.count(INBOUND).await;
    if stored != total as i64 || received.len() != total {
        faults.push(format!(
            "the destination stored {stored} notices, not {total}"
        ));
    }
    let wanted: std::collections::HashSet<&String> = ids.iter().collect();
    let mut not_delivered = 0;
    let mut other_ack = 0;
    let mut missing = 0;
    for (id, status, at) in &sent {
        if !wanted.contains(id) {
            faults.push(format!(
                "the origin holds notice {id}, which was never submitted"
            ));
        }
        if *status != NoticeStatus::Delivered as i32 {
            not_delivered += 1;
        }
        match received.get(id) {
            None => missing += 1,
            Some((_, r)) if r != at => other_ack += 1,
            Some(_) => {}
        }
    }
    for (count, what) in [
        (not_delivered, "not marked delivered at the origin"),
        (missing, "missing at the destination"),
        (
            other_ack,
            "acknowledged at the origin with another receipt time than the destination's",
        ),
    ] {
        if count > 0 {
            faults.push(format!("{count} notices {what}"));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if faults.is_empty() {
        println!(
            "crash check: {total} notices crossed in {secs:.1} s with {kills} kills (SIGKILL; origin and destination in turn), {} submits sent again; each stored once, delivered, acknowledged with the destination's first receipt; resident MiB at the end {}",
            resent.load(Ordering::Relaxed),
            resident.join(" / ")
        );
    } else {
        eprintln!("crash check FAILED after {kills} kills:");
        for f in &faults {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}
