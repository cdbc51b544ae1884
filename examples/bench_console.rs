//! Benchmark (not a test): the web console's first pages, rendered by the
//! node, with N notices stored (default 1 million; the store of
//! `bench_timeliness`, filled on the first run and kept in the folder).
//! Each page is asked for REQUESTS times over one kept-alive HTTPS
//! connection with a logged-in session, as a browser asks; the first call
//! is left out. Also the desk's first pages over gRPC, and the node's
//! memory before and after.
//!
//!     cargo run --release --example bench_console -- [NOTICES] [FOLDER] [REQUESTS]

mod common;

use migrex::auth::Role;
use migrex::auth::accounts::{create_user, login};
use migrex::clock::SystemClock;
use migrex::pb;
use migrex::store::Store;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const PASSWORD: &str = "bench-password-1";

/// One HTTPS connection to the console, kept alive, HTTP/1.1.
struct Conn {
    s: BufReader<TlsStream<TcpStream>>,
}

impl Conn {
    async fn open(url: &str, ca_pem: &str) -> Conn {
        let addr = url.trim_start_matches("https://");
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.expect("CA pem")).expect("CA");
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .expect("TLS");
        Conn {
            s: BufReader::new(s),
        }
    }

    /// GETs `path` with the session `cookie`: the status and the body.
    async fn get(&mut self, path: &str, cookie: &str) -> (u16, String) {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nCookie: migrex_session={cookie}\r\n\r\n"
        );
        self.s
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .expect("write");
        let mut line = String::new();
        self.s.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            self.s.read_line(&mut line).await.expect("header");
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().expect("length"),
                "transfer-encoding" => chunked = v.contains("chunked"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.s.read_line(&mut line).await.expect("chunk size");
                let n = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; n + 2];
                self.s.read_exact(&mut chunk).await.expect("chunk");
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            self.s.read_exact(&mut body).await.expect("body");
        }
        (status, String::from_utf8(body).expect("UTF-8 page"))
    }
}

/// The next page's link on a list page, if it has one.
fn next_link(body: &str) -> Option<String> {
    let at = body.find("id=\"next-page\"")?;
    let start = body[..at].rfind("href=\"")? + 6;
    let end = start + body[start..].find('"')?;
    // As a browser reads the attribute (askama escapes `&` as `&#38;`).
    Some(body[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

/// The node's resident memory, in MiB (Linux).
fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn summary(what: &str, mut ms: Vec<f64>, extra: &str) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{what}: {} requests; median {:.1} ms, p99 {:.1} ms, max {:.1} ms{extra}",
        ms.len(),
        at(0.5),
        at(0.99),
        ms[ms.len() - 1]
    );
}

#[tokio::main]
async fn main() {
    let (total, folder, rest) = common::args(1_000_000, "target/bench-console");
    let requests: usize = rest
        .first()
        .map(|s| s.parse().expect("REQUESTS is a number"))
        .unwrap_or(200);
    let mut net = common::node_with_notices(total, &folder).await;

    // A clerk and a monitor with console sessions, and a clerk's desk
    // token, made in the store before the node starts.
    let tz = migrex::calendar::timezone("Asia/Shanghai").expect("tz");
    let store = Store::open(folder.join("510116/migrex.db").to_str().expect("path"), tz)
        .await
        .expect("store");
    let now = time::OffsetDateTime::now_utc();
    let mut sessions = Vec::new();
    for (name, role) in [
        ("bench-clerk", Role::Clerk),
        ("bench-monitor", Role::Monitor),
    ] {
        // The second run finds the accounts made by the first.
        let _ = create_user(&store, name, role, PASSWORD, now).await;
        sessions.push(
            login(&store, name, PASSWORD, now)
                .await
                .expect("login")
                .token,
        );
    }
    let (clerk, monitor) = (sessions[0].clone(), sessions[1].clone());
    let desk_token = migrex::setup::create_token(&store, "bench-desk", Role::Clerk)
        .await
        .expect("token");
    store.close().await;

    net.start_node(0, Arc::new(SystemClock))
        .await
        .expect("start");
    let url = net.nodes[0].console_url.clone();
    let rss_start = rss_mib();
    let mut conn = Conn::open(&url, &net.ca_pem).await;
    let period = {
        let today = now.to_offset(time::UtcOffset::from_hms(8, 0, 0).expect("offset"));
        format!(
            "{}-Q{}",
            today.year(),
            (u8::from(today.month()) - 1) / 3 + 1
        )
    };
    let pages = [
        (
            "待办 /pending (clerk)",
            "/pending".to_string(),
            &clerk,
            "待办",
        ),
        (
            "已发送 /sent (clerk)",
            "/sent".to_string(),
            &clerk,
            "已发送",
        ),
        (
            "已办 /handled (clerk)",
            "/handled".to_string(),
            &clerk,
            "已办",
        ),
        (
            // Every stored notice has this name: the worst a name can be.
            "综合查询 /search by name, 王芳 (clerk)",
            "/search?q=%E7%8E%8B%E8%8A%B3".to_string(),
            &clerk,
            "综合查询",
        ),
        (
            // One of the hundred ID numbers the fill uses: 11,000 notices
            // each, far more than a person has.
            "综合查询 /search by ID number (clerk)",
            format!(
                "/search?q={}",
                migrex::domain::IdNumber::complete("51011619900101000")
            ),
            &clerk,
            "综合查询",
        ),
        (
            "综合查询 /search received births, no name (clerk)",
            "/search?direction=INBOUND&kind=BIRTH".to_string(),
            &clerk,
            "综合查询",
        ),
        (
            "统计 /stats, this month (monitor)",
            "/stats".to_string(),
            &monitor,
            "统计",
        ),
        (
            "统计 /stats, this quarter by peer and kind (monitor)",
            format!("/stats?period={period}&by_peer=1&by_kind=1"),
            &monitor,
            "统计",
        ),
    ];
    for (what, path, cookie, marker) in pages {
        let (status, body) = conn.get(&path, cookie).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(marker), "{path} shows {marker}");
        let rows = body.matches("<tr").count();
        let mut ms = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let (status, _) = conn.get(&path, cookie).await;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200);
        }
        summary(
            what,
            ms,
            &format!(" ({} KiB, {rows} table rows)", body.len() / 1024),
        );
    }

    // 待办 followed by its 下一页 links, 50 pages deep: each page is its own
    // index walk from where the last one ended.
    let (_, mut body) = conn.get("/pending", &clerk).await;
    let (mut ms, mut seen) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let Some(link) = next_link(&body) else { break };
        assert!(!seen.contains(&link), "下一页 leads back to {link}");
        seen.push(link.clone());
        let t = Instant::now();
        let (status, b) = conn.get(&link, &clerk).await;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{link}");
        body = b;
    }
    if !ms.is_empty() {
        let what = format!("待办 下一页, pages 2 to {} (clerk)", ms.len() + 1);
        summary(&what, ms, "");
    }

    // The desk's first pages over gRPC, as the CLI asks for them.
    let mut desk = migrex::client::connect(&net.nodes[0].desk_url, &net.ca_pem, &desk_token)
        .await
        .expect("desk");
    let (mut pending, mut listed) = (Vec::new(), Vec::new());
    for i in 0..=requests.min(100) {
        let t = Instant::now();
        let r = desk
            .list_pending(pb::ListPendingRequest::default())
            .await
            .expect("ListPending");
        let a = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(r.get_ref().notices.len(), 50);
        let t = Instant::now();
        let r = desk
            .list_notices(pb::ListNoticesRequest::default())
            .await
            .expect("ListNotices");
        let b = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(r.get_ref().notices.len(), 50);
        if i > 0 {
            pending.push(a);
            listed.push(b);
        }
    }
    summary("Desk.ListPending, first page of 50 (gRPC)", pending, "");
    summary("Desk.ListNotices, first page of 50 (gRPC)", listed, "");
    println!(
        "node memory (resident): {rss_start:.0} MiB after start, {:.0} MiB after the requests",
        rss_mib()
    );
    net.stop_all().await;
}
