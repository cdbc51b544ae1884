//! Benchmark (not a test): the memory one spreadsheet costs the node when a
//! clerk imports it through the console (批量导入), as `migrex serve` runs.
//!
//!     cargo run --release --example bench_import -- [ROWS]
//!
//! Makes an .xlsx workbook of ROWS birth notices (default 10,000), starts a
//! Luohu node (SQLite), logs in to its console as a supervisor, uploads the
//! workbook (the node reads it and shows every row), then sends 全部登记
//! (the rows judged again and stored all or nothing). Prints the node's
//! resident memory when ready (idle) and its peak (`VmHWM` from `/proc`)
//! after the upload and after the commit, for each of BENCH_ROUNDS imports
//! (default 2) of ROWS new notices one after another. Needs the binary beside the
//! example (`cargo build --release --locked` builds both).

use migrex::config::Delivery;
use migrex::setup::LocalNetwork;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/birth.rs"]
mod birth;
#[path = "common/serve.rs"]
mod serve;

/// The console, spoken to as a browser does: one HTTPS request per
/// connection, cookies kept by hand.
struct Console {
    host: String,
    tls: tokio_rustls::TlsConnector,
    cookies: Vec<String>,
}

impl Console {
    fn new(url: &str, ca_pem: &str) -> Console {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.expect("CA")).expect("CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Console {
            host: url.trim_start_matches("https://").to_string(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            cookies: Vec::new(),
        }
    }

    /// Sends `method path` with `body` of `content_type`; the answer's
    /// status and body (cookies set are kept).
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, String) {
        let tcp = tokio::net::TcpStream::connect(&self.host)
            .await
            .expect("console");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = self.tls.connect(name, tcp).await.expect("TLS");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: {}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            self.cookies.join("; "),
            body.len()
        );
        tls.write_all(head.as_bytes()).await.expect("send");
        tls.write_all(body).await.expect("send");
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await.ok();
        let text = String::from_utf8_lossy(&out).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        for c in head.lines().filter_map(|l| l.strip_prefix("set-cookie: ")) {
            let kv = c.split(';').next().unwrap().to_string();
            let name = kv.split('=').next().unwrap().to_string();
            self.cookies.retain(|k| !k.starts_with(&format!("{name}=")));
            self.cookies.push(kv);
        }
        (head[9..12].parse().expect("status"), body.to_string())
    }
}

/// The value of the first `<input|textarea name="NAME" …>` in `page`.
fn field(page: &str, name: &str) -> String {
    if let Some(rest) = page.split(&format!("name=\"{name}\" value=\"")).nth(1) {
        return rest.split('"').next().unwrap().to_string();
    }
    let rest = page
        .split(&format!("name=\"{name}\" hidden>"))
        .nth(1)
        .unwrap_or_else(|| panic!("no field {name}"));
    html_unescape(rest.split("</textarea>").next().unwrap())
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn workbook(from: usize, to: usize) -> Vec<u8> {
    let csv = birth::csv(from, to);
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (r, line) in csv.lines().enumerate() {
        for (c, v) in line.split(',').enumerate() {
            sheet.write_string(r as u32, c as u16, v).expect("cell");
        }
    }
    book.save_to_buffer().expect("workbook")
}

#[tokio::main]
async fn main() {
    migrex::cli::init_tracing("warn");
    let rows: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("ROWS"))
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let net = LocalNetwork::create(dir.path(), &["440303", "510116"], Delivery::default())
        .await
        .expect("nodes");
    let config = net.nodes[0].config_path.clone();
    let migrex = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(std::path::Path::parent)
        .map(|d| d.join("migrex"))
        .expect("target folder");
    let mut add = std::process::Command::new(&migrex)
        .args(["user", "add", "--config"])
        .arg(&config)
        .args([
            "--name",
            "chen.jie",
            "--role",
            "supervisor",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("migrex user add");
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"bench-import-0001\n")
        .expect("password");
    assert!(add.wait().expect("user add").success());
    let node = serve::Serve::start(&config);
    node.ready().await;
    let idle = node.mib("VmRSS");

    let mut c = Console::new(&net.nodes[0].console_url, &net.ca_pem);
    let (_, page) = c.send("GET", "/login", "text/plain", b"").await;
    let csrf = field(&page, "csrf");
    let login = form(&[
        ("name", "chen.jie"),
        ("password", "bench-import-0001"),
        ("csrf", &csrf),
    ]);
    let (status, _) = c
        .send(
            "POST",
            "/login",
            "application/x-www-form-urlencoded",
            &login,
        )
        .await;
    assert_eq!(status, 303, "login");
    let (_, page) = c.send("GET", "/import", "text/plain", b"").await;
    let csrf = field(&page, "csrf");

    // Twice (or BENCH_ROUNDS times): the first on a fresh node (its page
    // cache fills), then on the node as the first left it.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .map(|v| v.parse().expect("BENCH_ROUNDS"))
        .unwrap_or(2);
    let mut runs = Vec::new();
    for round in 0..rounds {
        let before = node.mib("VmRSS");
        let book = workbook(round * rows, (round + 1) * rows);
        let (upload_s, after_upload, commit_s, peak) = import(&mut c, &node, &csrf, &book).await;
        runs.push(format!(
            "import {} ({} KiB): resident before {before:.0} MiB, upload and preview {upload_s:.1} s (peak {after_upload:.0} MiB), \
             全部登记 {commit_s:.1} s, peak {peak:.0} MiB (+{:.0} above before)",
            round + 1,
            book.len() >> 10,
            peak - before
        ));
    }
    println!(
        "console import of .xlsx files of {rows} rows: node idle {idle:.0} MiB; {}",
        runs.join("; ")
    );
}

/// Uploads `book` through 批量导入 and commits it; the upload's seconds and
/// the peak after it, the commit's seconds and the peak after it.
async fn import(
    c: &mut Console,
    node: &serve::Serve,
    csrf: &str,
    book: &[u8],
) -> (f64, f64, f64, f64) {
    let t0 = Instant::now();
    let boundary = "migrexbenchboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"births.xlsx\"\r\n\
         Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(book);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, preview) = c
        .send(
            "POST",
            "/import",
            &format!("multipart/form-data; boundary={boundary}"),
            &body,
        )
        .await;
    assert_eq!(
        status,
        200,
        "preview: {}",
        &preview[..preview.len().min(2000)]
    );
    let upload_s = t0.elapsed().as_secs_f64();
    let after_upload = node.mib("VmHWM");
    let data = field(&preview, "data");
    let commit = form(&[
        ("csrf", csrf),
        ("data", &data),
        ("file_name", "births.xlsx"),
    ]);
    let t1 = Instant::now();
    let (status, done) = c
        .send(
            "POST",
            "/import/commit",
            "application/x-www-form-urlencoded",
            &commit,
        )
        .await;
    assert_eq!(status, 200, "commit");
    assert!(
        done.contains("id=\"import-done\""),
        "committed: {}",
        &done[..done.len().min(2000)]
    );
    let commit_s = t1.elapsed().as_secs_f64();
    (upload_s, after_upload, commit_s, node.mib("VmHWM"))
}
