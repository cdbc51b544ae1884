//! Benchmark (not a test): fills one node's SQLite store with N notices
//! received over three years (default 10 million), starts the node, and
//! times `Stats.GetTimeliness` for one month grouped by peer and kind over
//! gRPC with TLS, as a monitor calls it.
//!
//!     cargo run --release --example bench_timeliness -- [NOTICES] [FOLDER]
//!
//! The folder is kept, so a second run with the same folder skips the fill.

mod common;

use migrex::clock::SystemClock;
use migrex::domain::Direction;
use migrex::pb;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;

#[tokio::main]
async fn main() {
    let (total, folder, _) = common::args(10_000_000, "target/bench-timeliness");
    let mut net = common::node_with_notices(total, &folder).await;
    net.start_node(0, Arc::new(SystemClock))
        .await
        .expect("start");
    let mut stats = net.stats(0).await.expect("stats client");
    // The month a monthly assessment reports (two months back: every deadline
    // has passed), this month (mostly not yet due), a quarter, and a range of
    // days that is not whole months (recounted from the notices).
    let today = OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("offset"))
        .date();
    let month = |back: i32| {
        let m = i32::from(u8::from(today.month())) - 1 - back;
        format!(
            "{}-{:02}",
            today.year() + m.div_euclid(12),
            m.rem_euclid(12) + 1
        )
    };
    let range = format!("{}-01..{}-15", month(2), month(2));
    for period in [month(2), month(0), format!("{}-Q1", today.year()), range] {
        let ask = || pb::GetTimelinessRequest {
            period: period.clone(),
            direction: Direction::Inbound as i32,
            by_peer: true,
            by_kind: true,
        };
        let mut times = Vec::new();
        let mut rows = 0;
        let mut received = 0;
        for i in 0..31 {
            let t = Instant::now();
            let r = stats
                .get_timeliness(ask())
                .await
                .expect("GetTimeliness")
                .into_inner();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if i > 0 {
                times.push(ms); // the first call warms the page cache
            }
            rows = r.rows.len();
            received = r.rows.iter().map(|r| r.received).sum::<u64>();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "GetTimeliness {period} INBOUND by peer and kind: {rows} rows over {received} notices; {} calls: min {:.1} ms, median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            times.len(),
            times[0],
            times[times.len() / 2],
            times[times.len() * 9 / 10],
            times[times.len() - 1]
        );
    }
    net.stop_all().await;
}
