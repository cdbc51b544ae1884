//! Benchmark (not a test): notices end to end between two `migrex serve`
//! processes, as operators run them — an origin (Luohu, 440303) and a
//! destination (Shuangliu, 510116) on one machine.
//!
//!     cargo run --release --example bench_e2e -- MODE [NOTICES] [sqlite | postgres://ADMIN-URL] [REPLICAS]
//!
//! MODE `e2e`: NOTICES birth notices (default 100,000) are submitted through
//! the origin's desk (`SubmitNotices`, batches of 1,000 or BENCH_BATCH from
//! 4 clients, or BENCH_CLIENTS, spread over the origin's replicas) while both nodes run; the clock runs from the
//! first submit to the moment the origin's outbox is empty, that is the last
//! acknowledgement recorded at the origin.
//!
//! MODE `backlog`: the destination is down while NOTICES notices are
//! submitted (not timed); the clock runs from the destination's start to
//! the last acknowledgement recorded at the origin.
//!
//! With BENCH_UNSIGNED=1 the same build runs with signing off (Ed25519 node
//! keys, unsigned items accepted; `common/unsigned.rs`): the figure to
//! compare the signed one with.
//!
//! With BENCH_CSV=ROWS the notices are submitted instead as CSV files of
//! ROWS rows, one after another, each by `migrex notice send --file` (as an
//! operator imports a spreadsheet), and the line adds the origin's
//! resident memory when ready and idle, before the first file.
//!
//! Both print one line per run with the rate and each process's peak
//! resident memory (VmHWM). With a PostgreSQL URL each node gets a new
//! database created through it; REPLICAS (default 1) processes serve each
//! node from it. It needs the release binary beside the example
//! (`cargo build --release --locked` builds both).

use migrex::config::Config;
use migrex::pb;
use migrex::setup::{LocalNetwork, StoreChoice};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "common/birth.rs"]
mod birth;
#[path = "common/serve.rs"]
mod serve;
#[path = "common/unsigned.rs"]
mod unsigned;
use serve::Serve;

const SUBMIT_BATCH: usize = 1_000;

fn notice(i: usize) -> pb::Notice {
    // No id: the desk gives each a time-ordered one (UUIDv7).
    birth::birth(i)
}

/// The configs of `replicas` processes of the node at `config`: the
/// first is the node's own, the others the same with their own ports.
fn replica_configs(config: &Path, replicas: usize) -> Vec<PathBuf> {
    let (c, _) = Config::load(config).expect("config");
    let mut paths = vec![config.to_path_buf()];
    for r in 1..replicas {
        let mut c = c.clone();
        let port = || format!("127.0.0.1:{}", migrex::setup::free_port().expect("port"));
        (c.listen, c.desk_listen, c.ops_listen) = (port(), port(), port());
        c.console = None;
        let path = config.with_file_name(format!("migrex-replica{r}.toml"));
        c.save(&path).expect("replica config");
        paths.push(path);
    }
    paths
}

/// Items waiting in the origin's outbox, read from its store as a second
/// reader (the seq range: two index look-ups however long the queue).
enum Outbox {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

// Each a single MIN or MAX, which both planners answer from the key alone.
const WAITING: &str = "SELECT (SELECT MIN(seq) FROM outbox), (SELECT MAX(seq) FROM outbox)";

impl Outbox {
    async fn open(url: &str) -> Outbox {
        if url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1);
            Outbox::Postgres(pool.connect(url).await.expect("origin store"))
        } else {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(url)
                .read_only(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1);
            Outbox::Sqlite(pool.connect_with(options).await.expect("origin store"))
        }
    }

    async fn waiting(&self) -> i64 {
        let (min, max): (Option<i64>, Option<i64>) = match self {
            Outbox::Sqlite(p) => sqlx::query_as(WAITING).fetch_one(p).await,
            Outbox::Postgres(p) => sqlx::query_as(WAITING).fetch_one(p).await,
        }
        .expect("outbox");
        match (min, max) {
            (Some(a), Some(b)) => b - a + 1,
            _ => 0,
        }
    }

    /// Polls until the outbox is empty; prints progress every few seconds.
    /// Returns the seconds from `t0` to the first acknowledgement seen (the
    /// first item gone from the outbox).
    async fn drained(&self, t0: Instant, total: usize) -> f64 {
        let mut said = Instant::now();
        let mut first_ack = None;
        loop {
            let left = self.waiting().await;
            if first_ack.is_none() && left < total as i64 {
                first_ack = Some(t0.elapsed().as_secs_f64());
            }
            if left == 0 {
                return first_ack.unwrap_or(0.0);
            }
            if said.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "  {:.0} s: about {left} of {total} still waiting at the origin",
                    t0.elapsed().as_secs_f64()
                );
                said = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn submit_all(net: &LocalNetwork, desks: &[String], total: usize) {
    let work = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .map(|v| v.parse().expect("BENCH_CLIENTS"))
        .unwrap_or(4);
    for k in 0..clients {
        let url = desks[k % desks.len()].clone();
        let (ca, token) = (net.ca_pem.clone(), net.nodes[0].admin_token.clone());
        let work = work.clone();
        tasks.spawn(async move {
            let mut desk = migrex::client::connect(&url, &ca, &token)
                .await
                .expect("desk")
                .max_encoding_message_size(64 << 20);
            let batch: usize = std::env::var("BENCH_BATCH")
                .map(|v| v.parse().expect("BENCH_BATCH"))
                .unwrap_or(SUBMIT_BATCH);
            loop {
                let start = work.fetch_add(batch, std::sync::atomic::Ordering::Relaxed);
                if start >= total {
                    return;
                }
                let notices = (start..(start + batch).min(total)).map(notice).collect();
                let r = desk
                    .submit_notices(pb::SubmitNoticesRequest {
                        notices,
                        validate_only: false,
                    })
                    .await
                    .expect("SubmitNotices")
                    .into_inner();
                assert!(
                    r.committed && r.refused == 0,
                    "refused: {:?}",
                    r.results.first()
                );
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("submit task");
    }
}

/// Submits `total` notices as CSV files of `rows` rows, one after another,
/// each through `migrex notice send --config CONFIG --file F`.
fn submit_csv(config: &Path, token: &str, folder: &Path, total: usize, rows: usize) {
    let migrex = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("migrex"))
        .expect("target folder");
    let file = folder.join("notices.csv");
    for from in (0..total).step_by(rows.max(1)) {
        std::fs::write(&file, birth::csv(from, (from + rows).min(total))).expect("csv");
        let out = std::process::Command::new(&migrex)
            .args(["notice", "send", "--config"])
            .arg(config)
            .arg("--file")
            .arg(&file)
            .env("MIGREX_LOG", "error")
            .env("MIGREX_TOKEN", token)
            .output()
            .expect("migrex notice send");
        assert!(
            out.status.success(),
            "notice send: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::main]
async fn main() {
    migrex::cli::init_tracing("warn");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args
        .first()
        .map(String::as_str)
        .unwrap_or("e2e")
        .to_string();
    assert!(
        mode == "e2e" || mode == "backlog",
        "MODE is e2e or backlog, not {mode}"
    );
    let total: usize = args
        .get(1)
        .map(|s| s.parse().expect("NOTICES"))
        .unwrap_or(100_000);
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
    let origin_configs = replica_configs(&net.nodes[0].config_path, replicas);
    let destination_configs = replica_configs(&net.nodes[1].config_path, replicas);
    let desks: Vec<String> = origin_configs
        .iter()
        .map(|p| format!("https://{}", Config::load(p).expect("config").0.desk_listen))
        .collect();
    let (origin_config, base) = Config::load(&net.nodes[0].config_path).expect("config");
    let origin_db = match &store {
        StoreChoice::Sqlite => base.join(&origin_config.database).display().to_string(),
        StoreChoice::Postgres { .. } => origin_config.database.clone(),
    };
    let outbox = Outbox::open(&origin_db).await;
    let origin: Vec<Serve> = origin_configs.iter().map(|p| Serve::start(p)).collect();
    for s in &origin {
        s.ready().await;
    }
    let csv_rows: Option<usize> = std::env::var("BENCH_CSV")
        .ok()
        .map(|v| v.parse().expect("BENCH_CSV: rows per file"));
    let idle = origin[0].mib("VmRSS");
    let submit = || async {
        match csv_rows {
            Some(rows) => {
                let (config, folder) = (net.nodes[0].config_path.clone(), dir.path().to_path_buf());
                let token = net.nodes[0].admin_token.clone();
                tokio::task::spawn_blocking(move || {
                    submit_csv(&config, &token, &folder, total, rows)
                })
                .await
                .expect("csv submits")
            }
            None => submit_all(&net, &desks, total).await,
        }
    };
    let start_destination = || async {
        let d: Vec<Serve> = destination_configs
            .iter()
            .map(|p| Serve::start(p))
            .collect();
        for s in &d {
            s.ready().await;
        }
        d
    };
    let (secs, first_ack, destination) = if mode == "e2e" {
        let destination = start_destination().await;
        let t0 = Instant::now();
        submit().await;
        eprintln!("  submitted in {:.1} s", t0.elapsed().as_secs_f64());
        // Acknowledgements arrive while the submits go on; the outbox is
        // watched only after them, so no first-ack time is claimed here.
        outbox.drained(t0, total).await;
        (t0.elapsed().as_secs_f64(), None, destination)
    } else {
        let t = Instant::now();
        submit().await;
        eprintln!(
            "  {total} queued in {:.1} s while the destination is down; origin resident {:.0} MiB, peak {:.0} MiB",
            t.elapsed().as_secs_f64(),
            origin[0].mib("VmRSS"),
            origin[0].mib("VmHWM"),
        );
        let t0 = Instant::now();
        let destination = start_destination().await;
        // The origin tries again when its backoff says (up to
        // delivery.backoff_max_ms after a long outage): the clock counts
        // that wait, and the line shows it apart.
        let first_ack = outbox.drained(t0, total).await;
        (t0.elapsed().as_secs_f64(), Some(first_ack), destination)
    };
    let peaks = |s: &[Serve]| {
        s.iter()
            .map(|p| format!("{:.0}", p.mib("VmHWM")))
            .collect::<Vec<_>>()
            .join("+")
    };
    let how = csv_rows.map_or_else(String::new, |r| format!(" as CSV files of {r} rows"));
    println!(
        "{mode} {} replicas={replicas}{how}: {total} notices in {secs:.1} s = {:.0} notices/s{}; origin idle {idle:.0} MiB; peak RSS MiB origin {} destination {}",
        match store {
            StoreChoice::Sqlite => "sqlite",
            StoreChoice::Postgres { .. } => "postgres",
        },
        total as f64 / secs,
        first_ack
            .map(|s| format!("; first ack after {s:.1} s"))
            .unwrap_or_default(),
        peaks(&origin),
        peaks(&destination),
    );
    drop(origin);
    drop(destination);
}
