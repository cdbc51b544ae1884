//! Test helpers: a network of real nodes on 127.0.0.1 (real TLS, real SQLite
//! files) in one line, notices of each kind, and polling with a deadline.

use migrex::clock::{Clock, ManualClock, SharedClock, SystemClock};
use migrex::config::Delivery;
use migrex::domain::{Category, ContraceptionMethod, NoticeKind, Sex};
use migrex::pb;
use migrex::pb::exchange_client::ExchangeClient;
pub use migrex::setup::{LocalNetwork, StoreChoice};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

pub const LUOHU: &str = "440303";
pub const SHUANGLIU: &str = "510116";
pub const WANCHENG: &str = "411302";

pub struct Net {
    pub net: LocalNetwork,
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for Net {
    type Target = LocalNetwork;
    fn deref(&self) -> &LocalNetwork {
        &self.net
    }
}
impl std::ops::DerefMut for Net {
    fn deref_mut(&mut self) -> &mut LocalNetwork {
        &mut self.net
    }
}

/// Quick retries so that outage tests run many retry rounds in little time.
pub fn fast_delivery() -> Delivery {
    Delivery {
        batch_size: 100,
        backoff_initial_ms: 20,
        backoff_max_ms: 200,
        idle_poll_ms: 200,
        ..Delivery::default()
    }
}

/// Batches of 25 and quick retries, so that a kill lands between many
/// commits on every side (the crash tests).
pub fn small_batches() -> Delivery {
    Delivery {
        batch_size: 25,
        backoff_initial_ms: 20,
        backoff_max_ms: 200,
        idle_poll_ms: 100,
        ..Delivery::default()
    }
}

/// The store the tests run on: SQLite files, or PostgreSQL databases when
/// `MIGREX_TEST_STORE=postgres` (scripts/test sets it, with the server's URL
/// in `MIGREX_TEST_POSTGRES`, for its second pass).
pub fn store_choice() -> StoreChoice {
    match std::env::var("MIGREX_TEST_STORE").as_deref() {
        Ok("postgres") => StoreChoice::Postgres {
            admin_url: std::env::var("MIGREX_TEST_POSTGRES").expect(
                "MIGREX_TEST_STORE=postgres needs MIGREX_TEST_POSTGRES (scripts/test sets both)",
            ),
        },
        _ => StoreChoice::Sqlite,
    }
}

/// Where a test that opens a store itself keeps it: a file in `dir`, or a
/// new PostgreSQL database.
pub async fn store_location(dir: &std::path::Path, label: &str) -> String {
    match store_choice() {
        StoreChoice::Sqlite => dir.join(format!("{label}.db")).display().to_string(),
        StoreChoice::Postgres { admin_url } => {
            migrex::setup::create_postgres_database(&admin_url, label)
                .await
                .unwrap()
        }
    }
}

/// Creates the nodes' folders; starts none.
pub async fn create(districts: &[&str], delivery: Delivery) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::create_with(dir.path(), districts, delivery, &store_choice())
        .await
        .unwrap();
    Net { net, dir }
}

/// Creates and starts every node, all on `clock` (the system clock if None).
pub async fn network(districts: &[&str], clock: Option<ManualClock>) -> Net {
    let mut net = create(districts, fast_delivery()).await;
    for i in 0..districts.len() {
        let c: SharedClock = match &clock {
            Some(m) => Arc::new(m.clone()),
            None => Arc::new(SystemClock),
        };
        net.start_node(i, c).await.unwrap();
    }
    net
}

/// Polls `check` until it yields Some, or panics naming `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A valid 18-character ID number from its first 17 digits.
pub fn id(first17: &str) -> String {
    migrex::domain::IdNumber::complete(first17)
}

pub fn woman(n: u32) -> String {
    id(&format!("51011619900101{:02}{}", n % 100, 2 * (n % 5)))
}

pub fn man(n: u32) -> String {
    id(&format!("51011619880202{:02}{}", n % 100, 2 * (n % 5) + 1))
}

fn person(id_number: String, hukou: &str, residence: &str) -> Option<pb::Person> {
    Some(pb::Person {
        id_number,
        name: "王芳".into(),
        hukou_district: hukou.into(),
        residence_district: residence.into(),
        ..Default::default()
    })
}

pub fn notice(
    dest: &str,
    kind: NoticeKind,
    category: Category,
    subject: String,
    details: pb::notice::Details,
) -> pb::Notice {
    pb::Notice {
        destination: dest.into(),
        kind: kind as i32,
        category: category as i32,
        subject: person(subject, dest, "440303"),
        details: Some(details),
        remarks: "测试 remarks".into(),
        ..Default::default()
    }
}

pub fn birth(dest: &str, subject: String, born_on: &str) -> pb::Notice {
    notice(
        dest,
        NoticeKind::Birth,
        Category::Notification,
        subject,
        pb::notice::Details::Birth(pb::BirthDetails {
            born_on: born_on.into(),
            child_sex: Sex::Female as i32,
            birth_order: 2,
            child_name: "李小红".into(),
            place_of_delivery: "罗湖区人民医院".into(),
        }),
    )
}

pub fn pregnancy(dest: &str, subject: String, confirmed_on: &str) -> pb::Notice {
    notice(
        dest,
        NoticeKind::Pregnancy,
        Category::VerificationRequest,
        subject,
        pb::notice::Details::Pregnancy(pb::PregnancyDetails {
            confirmed_on: confirmed_on.into(),
            gestational_weeks: 10,
            expected_delivery_on: "2027-06-01".into(),
            within_policy: Some(false),
        }),
    )
}

pub fn marriage(dest: &str, subject: String, registered_on: &str) -> pb::Notice {
    notice(
        dest,
        NoticeKind::Marriage,
        Category::Notification,
        subject,
        pb::notice::Details::Marriage(pb::MarriageDetails {
            registered_on: registered_on.into(),
            spouse_id_number: man(77),
            spouse_name: "李强".into(),
            registry_office: "罗湖区婚姻登记处".into(),
        }),
    )
}

pub fn contraception(dest: &str, subject: String, performed_on: &str) -> pb::Notice {
    notice(
        dest,
        NoticeKind::Contraception,
        Category::VerificationRequest,
        subject,
        pb::notice::Details::Contraception(pb::ContraceptionDetails {
            method: ContraceptionMethod::IudInsertion as i32,
            performed_on: performed_on.into(),
            provider: "妇幼保健院".into(),
        }),
    )
}

/// Submits through node `i`'s desk and returns the stored notice.
pub async fn submit(net: &LocalNetwork, i: usize, n: pb::Notice) -> pb::Notice {
    net.desk(i)
        .await
        .unwrap()
        .submit_notice(pb::SubmitNoticeRequest { notice: Some(n) })
        .await
        .unwrap()
        .into_inner()
}

/// Registers `notices` as one batch through `desk` (all or nothing) and
/// returns their ids; panics naming the first refused one.
pub async fn submit_batch(
    desk: &mut migrex::client::Desk,
    notices: Vec<pb::Notice>,
) -> Vec<String> {
    let r = desk
        .submit_notices(pb::SubmitNoticesRequest {
            notices,
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.committed,
        "{:?}",
        r.results.iter().find(|x| x.error.is_some())
    );
    r.results.into_iter().map(|x| x.notice_id).collect()
}

/// Every notice `ListNotices` gives for `direction` (0: both), walked in
/// pages of `size`.
pub async fn list_all(
    desk: &mut migrex::client::Desk,
    direction: i32,
    size: u32,
) -> Vec<pb::Notice> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = desk
            .list_notices(pb::ListNoticesRequest {
                direction,
                page_size: size,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(r.notices);
        if r.next_page_token.is_empty() {
            return out;
        }
        token = r.next_page_token;
    }
}

pub async fn get(net: &LocalNetwork, i: usize, id: &str) -> Option<pb::Notice> {
    net.desk(i)
        .await
        .unwrap()
        .get_notice(pb::GetNoticeRequest { id: id.into() })
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Waits until node `i` holds notice `id` in a state `done` accepts.
pub async fn wait_notice(
    net: &LocalNetwork,
    i: usize,
    id: &str,
    done: impl Fn(&pb::Notice) -> bool,
) -> pb::Notice {
    eventually(
        &format!("notice {id} on node {i}"),
        Duration::from_secs(20),
        || async { get(net, i, id).await.filter(|n| done(n)) },
    )
    .await
}

/// The CA, certificate and key in node `i`'s folder.
pub fn node_tls(net: &LocalNetwork, i: usize) -> migrex::identity::TlsMaterial {
    let dir = net.nodes[i].config_path.parent().unwrap();
    migrex::identity::TlsMaterial::load(
        &dir.join("ca.crt"),
        &dir.join("node.crt"),
        &dir.join("node.key"),
    )
    .unwrap()
}

/// An Exchange client that presents node `from`'s certificate to node `to`.
pub async fn exchange_as(net: &LocalNetwork, from: usize, to: usize) -> ExchangeClient<Channel> {
    ExchangeClient::new(peer_channel(&node_tls(net, from), &net.nodes[to].exchange_url).await)
}

/// A channel to an exchange listener at `url`, presenting `tls`'s certificate.
pub async fn peer_channel(tls: &migrex::identity::TlsMaterial, url: &str) -> Channel {
    Endpoint::from_shared(url.to_string())
        .unwrap()
        .tls_config(tls.peer_client_config())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Notices signed by node `from` in one batch, as its delivery signs
/// them (docs/protocol.md). What is signed is the notice as any node
/// stores it (parsed and written out again), which is what a node sends.
pub fn signed(net: &LocalNetwork, from: usize, notices: Vec<pb::Notice>) -> Vec<pb::Notice> {
    signed_by(&node_signer(net, from), notices)
}

/// One notice signed by `signer`.
pub fn sign_as(signer: &migrex::proof::signer::Signer, n: pb::Notice) -> pb::Notice {
    signed_by(signer, vec![n]).remove(0)
}

/// The canonical form of each notice as a receiver stores it.
fn canonical_notices(notices: &[pb::Notice]) -> Vec<Vec<u8>> {
    use migrex::domain::{NoticeContent, ParseContext};
    let ctx = ParseContext {
        today: time::macros::date!(9999 - 12 - 31),
    };
    notices
        .iter()
        .map(|n| {
            let stored = NoticeContent::parse(n, &ctx).map_or_else(|_| n.clone(), |c| c.to_wire());
            migrex::proof::canonical::notice(&stored)
        })
        .collect()
}

/// Notices signed by `signer` as a node's delivery signs a call: one
/// `CallBatch`, each notice carrying its index only.
pub fn call_signed_by(
    signer: &migrex::proof::signer::Signer,
    mut notices: Vec<pb::Notice>,
) -> pb::DeliverNoticesRequest {
    let signed = signer.sign_call(&canonical_notices(&notices));
    for (n, p) in notices.iter_mut().zip(&signed.proofs) {
        n.proof = Some(migrex::proof::signer::index_only(p.index));
    }
    pb::DeliverNoticesRequest {
        notices,
        batch: Some(signed.batch),
    }
}

fn signed_by(
    signer: &migrex::proof::signer::Signer,
    mut notices: Vec<pb::Notice>,
) -> Vec<pb::Notice> {
    let items = canonical_notices(&notices);
    for (n, p) in notices.iter_mut().zip(signer.sign(&items)) {
        n.proof = Some(migrex::proof::signer::to_pb(&p));
    }
    notices
}

/// Replies signed by node `from` in one batch, likewise.
pub fn signed_replies(
    net: &LocalNetwork,
    from: usize,
    mut replies: Vec<pb::Reply>,
) -> Vec<pb::Reply> {
    let signer = node_signer(net, from);
    let items: Vec<Vec<u8>> = replies
        .iter()
        .map(|r| {
            let stored =
                migrex::domain::Reply::parse(r).map_or_else(|_| r.clone(), |x| x.to_wire());
            migrex::proof::canonical::reply(&stored)
        })
        .collect();
    for (r, p) in replies.iter_mut().zip(signer.sign(&items)) {
        r.proof = Some(migrex::proof::signer::to_pb(&p));
    }
    replies
}

/// Node `i`'s signer, from its key and certificate files.
pub fn node_signer(net: &LocalNetwork, i: usize) -> migrex::proof::signer::Signer {
    let tls = node_tls(net, i);
    let district = tls.own_district().unwrap();
    migrex::proof::signer::Signer::of(&tls, &district).unwrap()
}

/// A complete wire notice as an origin node would send it.
pub fn wire(mut n: pb::Notice, origin: &str, clock: &dyn Clock) -> pb::Notice {
    n.id = uuid::Uuid::new_v4().to_string();
    n.origin = origin.into();
    n.urgency = migrex::domain::Urgency::Normal as i32;
    n.reply_required = migrex::domain::ReplySort::Feedback as i32;
    n.created_at = Some(migrex::domain::ts_to_pb(clock.now()));
    n
}

/// A child process that is killed when the test lets go of it, so that a
/// failing test leaves no node running.
pub struct Serve(pub std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Serve {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}
impl std::ops::DerefMut for Serve {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

/// Runs the `migrex` binary with `args` to its end, as an operator would.
pub fn migrex_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
        .args(args)
        .env("MIGREX_LOG", "warn")
        .output()
        .unwrap()
}

/// `migrex serve --config PATH` as its own process, the way operators run it.
pub fn spawn_serve(config: &std::path::Path) -> Serve {
    Serve(
        std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
            .args(["serve", "--config"])
            .arg(config)
            .env("MIGREX_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start migrex serve"),
    )
}

/// GETs a path of an ops listener; Some(status line) when it answered.
pub async fn http_get(ops_url: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = ops_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// Waits until the node behind `ops_url` answers /readyz with 200.
pub async fn wait_ready(ops_url: &str) {
    eventually(
        &format!("{ops_url}/readyz"),
        Duration::from_secs(30),
        || async {
            http_get(ops_url, "/readyz")
                .await
                .filter(|r| r.starts_with("HTTP/1.1 200"))
        },
    )
    .await;
}

/// The value of one sample in a /metrics text, by its name and labels.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Node `node`'s timeliness rows for `period` through `Stats.GetTimeliness`.
pub async fn timeliness_rows(
    net: &LocalNetwork,
    node: usize,
    period: &str,
    direction: migrex::domain::Direction,
    by_peer: bool,
    by_kind: bool,
) -> Vec<pb::TimelinessRow> {
    net.stats(node)
        .await
        .unwrap()
        .get_timeliness(pb::GetTimelinessRequest {
            period: period.into(),
            direction: direction as i32,
            by_peer,
            by_kind,
        })
        .await
        .unwrap()
        .into_inner()
        .rows
}

/// Runs `promtool test rules` over the alert rules in
/// deploy/prometheus/migrex-alerts.yml with `tests` (the YAML of a rule
/// test file's `tests:` list, without that key) and returns what it
/// printed when it failed. None when promtool is not installed: allowed
/// outside CI (scripts/test installs it), a failure under `CI=true`.
pub fn promtool_test(evaluation_interval: &str, tests: &str) -> Option<Result<(), String>> {
    let ok = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is not installed (scripts/test installs Debian's prometheus package)"
        );
        eprintln!("!!! promtool not found: the alert rule check is SKIPPED");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/migrex-alerts.yml"
    );
    std::fs::copy(rules, dir.path().join("migrex-alerts.yml")).unwrap();
    let file = dir.path().join("test.yml");
    std::fs::write(
        &file,
        format!(
            "rule_files: [migrex-alerts.yml]\nevaluation_interval: {evaluation_interval}\ntests:\n{tests}"
        ),
    )
    .unwrap();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// A TLS client that trusts the network CA in `ca_pem` and offers `alpn`
/// (no client certificate: what a browser or a stranger has).
pub fn tls_client(ca_pem: &str, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
}

/// A TCP connection to `addr` ("127.0.0.1:PORT") from the source address
/// `from` (any of 127.0.0.0/8 on Linux).
pub async fn connect_from(from: [u8; 4], addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from((from, 0)))?;
    socket.connect(addr.parse().unwrap()).await
}

/// Runs one SQL statement on node `i`'s database, as someone with access to
/// the database files would.
pub async fn tamper(net: &LocalNetwork, i: usize, sql: &str) {
    let db = migrex::config::Settings::load(&net.nodes[i].config_path)
        .unwrap()
        .database;
    if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let url = format!("sqlite://{}", db.trim_start_matches("sqlite://"));
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

/// This month in Beijing time, as a period ("2026-12").
pub fn this_month() -> String {
    let now = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+8));
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// Waits (bounded) until node `i`'s outbox holds nothing waiting and
/// nothing refused: every item it sent was taken.
pub async fn outbox_settled(net: &Net, i: usize, within: std::time::Duration) {
    eventually("nothing waiting, nothing refused", within, || async {
        let waiting = net.store(i).outbox_counts().await.unwrap();
        waiting
            .iter()
            .all(|w| w.waiting == 0 && w.refused == 0)
            .then_some(())
    })
    .await;
}

/// The origin's clerk at node `i` withdraws notice `id` (撤回).
pub async fn withdraw(net: &Net, i: usize, id: &str) -> pb::Notice {
    net.desk(i)
        .await
        .unwrap()
        .withdraw_notice(pb::WithdrawNoticeRequest {
            id: id.to_string(),
            reason: "登记有误".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The destination's clerk at node `i` answers notice `id`: confirmed.
pub async fn answer(net: &Net, i: usize, id: &str) -> pb::Notice {
    net.desk(i)
        .await
        .unwrap()
        .submit_feedback(pb::SubmitFeedbackRequest {
            id: id.to_string(),
            feedback: Some(pb::Feedback {
                result: migrex::domain::FeedbackResult::Confirmed as i32,
                remarks: "已入户核实".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
}
