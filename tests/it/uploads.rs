//! Uploads a node must survive (issue 20): a clerk's 1.5 KB workbook whose
//! cells span A1:XFD1048576 and a deflate bomb are refused on 批量导入 with
//! the limit named, while a `migrex serve` process keeps serving with its
//! peak memory read from /proc; a monitor's upload is refused from the
//! request's head, before its body is read.

use crate::common::*;
use crate::console::browser;
use fantoccini::Locator;
use migrex::auth::Role;
use migrex::auth::accounts::create_user;
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A /proc/PID/status figure in KiB (`VmHWM`: peak resident, `VmRSS`: now).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn sparse_workbook() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "destination").unwrap();
    sheet.write_string(1_048_575, 16_383, "x").unwrap();
    book.save_to_buffer().unwrap()
}

/// A workbook-shaped zip whose shared strings inflate to 256 MiB.
fn deflate_bomb() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("xl/sharedStrings.xml", opts).unwrap();
    zip.write_all(b"<?xml version=\"1.0\"?><sst uniqueCount=\"1\"><si><t>")
        .unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..256 {
        zip.write_all(&chunk).unwrap();
    }
    zip.write_all(b"</t></si></sst>").unwrap();
    zip.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_workbooks_are_refused_and_the_node_serves_on() {
    let Some(b) = browser().await else { return };
    let net = create(&[LUOHU], fast_delivery()).await;
    let config = net.nodes[0].config_path.clone();
    let store = migrex::setup::open_store(&config).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    create_user(&store, "li.na", Role::Clerk, "correct-horse-1", now)
        .await
        .unwrap();
    create_user(&store, "zhou.jian", Role::Monitor, "correct-horse-2", now)
        .await
        .unwrap();
    store.close().await;
    let serve = spawn_serve(&config);
    wait_ready(&net.nodes[0].ops_url).await;
    let pid = serve.id();
    let console = net.nodes[0].console_url.clone();

    let dir = tempfile::tempdir().unwrap();
    let sparse = dir.path().join("sparse.xlsx");
    std::fs::write(&sparse, sparse_workbook()).unwrap();
    let bomb = dir.path().join("bomb.xlsx");
    let bytes = deflate_bomb();
    assert!(bytes.len() < 2 << 20, "{} bytes", bytes.len());
    std::fs::write(&bomb, bytes).unwrap();

    b.login(&console, "li.na", "correct-horse-1").await;
    for (file, limit) in [(&sparse, "10000"), (&bomb, "64 MiB")] {
        b.c.goto(&format!("{console}/import")).await.unwrap();
        b.c.find(Locator::Id("file"))
            .await
            .unwrap()
            .send_keys(file.to_str().unwrap())
            .await
            .unwrap();
        b.click("#check").await;
        b.until("the import's refusal", |_, page| {
            page.contains("id=\"import-error\"")
        })
        .await;
        let said = b.text_of("#import-error").await;
        assert!(said.contains(limit), "{said}");
        b.shot(&format!(
            "import-{}",
            file.file_stem().unwrap().to_str().unwrap()
        ))
        .await;
    }
    // The node serves on, and never held much.
    assert!(
        http_get(&net.nodes[0].ops_url, "/healthz")
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    let peak = memory_kib(pid, "VmHWM");
    eprintln!("migrex serve peak resident: {} MiB", peak >> 10);
    assert!(peak < 150 << 10, "peak resident {} MiB", peak >> 10);

    // A monitor's upload: refused from the head, its 8 MB body never sent.
    b.c.goto(&format!("{console}/logout")).await.ok();
    b.c.delete_all_cookies().await.unwrap();
    b.login(&console, "zhou.jian", "correct-horse-2").await;
    let session =
        b.c.get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ");
    let answer = raw_post(&net.ca_pem, &console, "/import", &session, 8_000_000).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // Refusals carry the console's security headers too, HSTS among them.
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{answer}"
    );
}

/// Sends a POST's head announcing `length` bytes and none of them; the
/// answer's first bytes, read within 5 s.
async fn raw_post(ca_pem: &str, console: &str, path: &str, cookie: &str, length: usize) -> String {
    let connector = tls_client(ca_pem, &[]);
    let host = console.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: {length}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut got))
        .await
        .expect("answered without the body")
        .unwrap();
    String::from_utf8_lossy(&got[..n]).to_string()
}
