//! Benchmark (not a test): what a node with a long history costs to start
//! and to read, measured from outside a `migrex serve` process as operators
//! run it — one node (Shuangliu, 510116) whose SQLite store holds N notices
//! of three years (default 10 million; the store of `common`, filled on the
//! first run and kept in the folder).
//!
//!     cargo run --release --example bench_reads -- [NOTICES] [FOLDER] [REQUESTS]
//!
//! Prints: the time from spawning the process to `/readyz` answering 200,
//! its resident memory then (idle), `Desk.ListPending`'s first page of 50
//! (a clerk's 待办, audited) and a closed month's `Stats.GetTimeliness` by
//! peer and kind (a monitor's assessment month) over gRPC with TLS, each
//! asked REQUESTS times (default 200) after one call left out, as median
//! and p99, and the process's resident memory after the lists and at its
//! peak. The files are in the page cache (the fill or an earlier run wrote
//! them): these are warm figures.

mod common;
#[path = "common/serve.rs"]
mod serve;

use migrex::auth::Role;
use migrex::domain::Direction;
use migrex::pb;
use migrex::store::Store;
use std::time::Instant;
use time::OffsetDateTime;

/// Median and p99 of `ms`, in milliseconds.
fn quantiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let (total, folder, rest) = common::args(10_000_000, "target/bench-reads");
    let requests: usize = rest
        .first()
        .map(|s| s.parse().expect("REQUESTS is a number"))
        .unwrap_or(200)
        .max(1);
    let net = common::node_with_notices(total, &folder).await;
    let node = &net.nodes[0];

    // A clerk's desk token and a monitor's, made before the node starts.
    let tz = migrex::calendar::timezone("Asia/Shanghai").expect("tz");
    let store = Store::open(folder.join("510116/migrex.db").to_str().expect("path"), tz)
        .await
        .expect("store");
    let clerk = migrex::setup::create_token(&store, "bench-clerk", Role::Clerk)
        .await
        .expect("token");
    let monitor = migrex::setup::create_token(&store, "bench-monitor", Role::Monitor)
        .await
        .expect("token");
    store.close().await;

    let t0 = Instant::now();
    let serve = serve::Serve::start(&node.config_path);
    serve.ready().await;
    let ready = t0.elapsed().as_secs_f64();
    let idle = serve.mib("VmRSS");

    let mut desk = migrex::client::connect(&node.desk_url, &net.ca_pem, &clerk)
        .await
        .expect("desk");
    let mut pending = Vec::with_capacity(requests);
    for i in 0..=requests {
        let t = Instant::now();
        let r = desk
            .list_pending(pb::ListPendingRequest::default())
            .await
            .expect("ListPending");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(r.get_ref().notices.len(), 50, "a full first page");
        if i > 0 {
            pending.push(ms);
        }
    }

    // The month a monthly assessment reports: two months back, every
    // deadline of it passed.
    let today = OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("offset"))
        .date();
    let m = i32::from(u8::from(today.month())) - 3;
    let month = format!(
        "{}-{:02}",
        today.year() + m.div_euclid(12),
        m.rem_euclid(12) + 1
    );
    let mut stats = migrex::client::connect_stats(&node.desk_url, &net.ca_pem, &monitor)
        .await
        .expect("stats");
    let mut timeliness = Vec::with_capacity(requests);
    for i in 0..=requests {
        let t = Instant::now();
        let r = stats
            .get_timeliness(pb::GetTimelinessRequest {
                period: month.clone(),
                direction: Direction::Inbound as i32,
                by_peer: true,
                by_kind: true,
            })
            .await
            .expect("GetTimeliness");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert!(!r.get_ref().rows.is_empty(), "the month has figures");
        if i > 0 {
            timeliness.push(ms);
        }
    }
    let (p50, p99) = quantiles(pending);
    let (t50, t99) = quantiles(timeliness);
    println!(
        "reads at {total} stored: ready in {ready:.2} s; idle RSS {idle:.0} MiB; \
         ListPending first page median {p50:.1} ms p99 {p99:.1} ms; \
         month {month} GetTimeliness median {t50:.1} ms p99 {t99:.1} ms; \
         RSS after the reads {:.0} MiB, peak {:.0} MiB",
        serve.mib("VmRSS"),
        serve.mib("VmHWM"),
    );
}
