//! The README's walk-through, as a user runs it, the binary as separate
//! processes: `migrex init` and `peer add` for two districts in two
//! folders, `serve` for both (`two_districts`), then one case per thing a
//! user does: the round trip of a notice, the figures, CSV imports that are
//! all or nothing, one-line errors, certificates, backups.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

async fn migrex(args: Vec<String>, token: Option<&str>) -> Output {
    let token = token.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_migrex"));
        c.args(&args)
            .env_remove("MIGREX_TOKEN")
            .env("MIGREX_LOG", "warn");
        if let Some(t) = token {
            c.env("MIGREX_TOKEN", t);
        }
        c.output().unwrap()
    })
    .await
    .unwrap()
}

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).expect("JSON output")
}

struct Node {
    config: PathBuf,
    token: String,
    exchange: String,
    ops: String,
}

/// A node's config path as a command-line argument.
/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn cfg(n: &Node) -> String {
    n.config.to_str().unwrap().to_string()
}

async fn init(root: &Path, district: &str) -> Node {
    let p: Vec<u16> = (0..4)
        .map(|_| migrex::setup::free_port().unwrap())
        .collect();
    let dir = root.join(district);
    let out = migrex(
        args(&[
            "init",
            "--district",
            district,
            "--dir",
            dir.to_str().unwrap(),
            "--ca-dir",
            root.join("ca").to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", p[0]),
            "--desk-listen",
            &format!("127.0.0.1:{}", p[1]),
            "--ops-listen",
            &format!("127.0.0.1:{}", p[2]),
            "--console-listen",
            &format!("127.0.0.1:{}", p[3]),
            "--database",
            &store_location(root, district).await,
        ]),
        None,
    )
    .await;
    let text = ok(&out);
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("admin token (shown only this once): "))
        .expect("admin token printed")
        .to_string();
    Node {
        config: dir.join("migrex.toml"),
        token,
        exchange: format!("https://127.0.0.1:{}", p[0]),
        ops: format!("http://127.0.0.1:{}", p[2]),
    }
}

/// Two districts set up as the README says, each served by its own
/// `migrex serve`, with a clerk token for Shuangliu.
struct Pair {
    root: tempfile::TempDir,
    a: Node,
    b: Node,
    clerk: String,
    serve: Vec<Serve>,
}

impl Pair {
    /// SIGTERM to both nodes; each stops cleanly with exit status 0.
    fn stop(mut self) {
        for child in &mut self.serve {
            std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(child.wait().unwrap().success());
        }
    }
}

async fn two_districts() -> Pair {
    let root = tempfile::tempdir().unwrap();
    let a = init(root.path(), LUOHU).await;
    let b = init(root.path(), SHUANGLIU).await;
    ok(&migrex(
        args(&[
            "peer",
            "add",
            "--config",
            &cfg(&a),
            "--district",
            SHUANGLIU,
            "--endpoint",
            &b.exchange,
        ]),
        None,
    )
    .await);
    ok(&migrex(
        args(&[
            "peer",
            "add",
            "--config",
            &cfg(&b),
            "--district",
            LUOHU,
            "--endpoint",
            &a.exchange,
        ]),
        None,
    )
    .await);
    let serve = vec![spawn_serve(&a.config), spawn_serve(&b.config)];
    wait_ready(&a.ops).await;
    wait_ready(&b.ops).await;
    assert!(
        http_get(&a.ops, "/healthz")
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );

    // A clerk token for Shuangliu.
    let clerk = json(
        &migrex(
            args(&[
                "token",
                "create",
                "--config",
                &cfg(&b),
                "--role",
                "clerk",
                "--name",
                "li.na",
                "--json",
            ]),
            None,
        )
        .await,
    )["token"]
        .as_str()
        .unwrap()
        .to_string();

    Pair {
        root,
        a,
        b,
        clerk,
        serve,
    }
}

/// The README's walk-through: a birth notice sent from Luohu, found in
/// Shuangliu's pending list, signed for and answered CORRECTED there, and
/// shown ANSWERED back at Luohu. Returns its id.
async fn walk_through(p: &Pair) -> String {
    let (a, b, clerk) = (&p.a, &p.b, &p.clerk);
    let subject = woman(1);
    let sent = json(
        &migrex(
            args(&[
                "notice",
                "send",
                "--config",
                &cfg(a),
                "--destination",
                SHUANGLIU,
                "--kind",
                "birth",
                "--category",
                "notification",
                "--id-number",
                &subject,
                "--name",
                "王芳",
                "--hukou",
                SHUANGLIU,
                "--residence",
                LUOHU,
                "--event-date",
                "2026-10-03",
                "--child-sex",
                "female",
                "--birth-order",
                "1",
                "--place-of-delivery",
                "罗湖区人民医院",
                "--json",
            ]),
            Some(&a.token),
        )
        .await,
    );
    let id = sent["id"].as_str().unwrap().to_string();
    assert_eq!(sent["status"], "QUEUED");
    assert_eq!(sent["reply_required"], "FEEDBACK");

    let pending = eventually(
        "the notice in Shuangliu's pending list",
        Duration::from_secs(20),
        || {
            let (c, t, id) = (cfg(b), clerk.clone(), id.clone());
            async move {
                let v = json(&migrex(args(&["pending", "--config", &c, "--json"]), Some(&t)).await);
                v["notices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n["id"] == id.as_str())
                    .then_some(v)
            }
        },
    )
    .await;
    assert_eq!(
        pending["notices"][0]["subject"]["id_number"],
        subject.as_str()
    );
    let table = ok(&migrex(args(&["pending", "--config", &cfg(b)]), Some(clerk)).await);
    assert!(table.contains(&id) && table.contains("BIRTH"), "{table}");

    let signed = json(
        &migrex(
            args(&["ack", &id, "--config", &cfg(b), "--json"]),
            Some(clerk),
        )
        .await,
    );
    assert_eq!(signed["status"], "ACKNOWLEDGED");
    assert_eq!(signed["acknowledged_by"], "li.na");
    let answered = json(
        &migrex(
            args(&[
                "feedback",
                &id,
                "--result",
                "corrected",
                "--correct",
                "birth.birth_order=2",
                "--remarks",
                "二孩",
                "--config",
                &cfg(b),
                "--json",
            ]),
            Some(clerk),
        )
        .await,
    );
    assert_eq!(answered["status"], "ANSWERED");

    let shown = eventually("feedback back at Luohu", Duration::from_secs(20), || {
        let (c, t, id) = (cfg(a), a.token.clone(), id.clone());
        async move {
            let v = json(
                &migrex(
                    args(&["notice", "show", &id, "--config", &c, "--json"]),
                    Some(&t),
                )
                .await,
            );
            (v["status"] == "ANSWERED").then_some(v)
        }
    })
    .await;
    assert_eq!(shown["feedback"]["result"], "CORRECTED");
    assert_eq!(shown["feedback"]["corrections"]["birth.birth_order"], "2");
    assert_eq!(shown["feedback"]["answered_by"], "li.na");
    assert_eq!(shown["timely"], true);

    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_is_sent_signed_and_answered_from_the_command_line() {
    let p = two_districts().await;
    walk_through(&p).await;
    p.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_reports_and_metrics_show_the_same_figures() {
    let p = two_districts().await;
    walk_through(&p).await;
    let (a, b, clerk, root) = (&p.a, &p.b, &p.clerk, &p.root);
    // Monitors: the figures of both sides agree on this one notice.
    let all_time = "2000-01-01..2100-12-31";
    let inbound = json(
        &migrex(
            args(&[
                "stats",
                "--config",
                &cfg(b),
                "--period",
                all_time,
                "--by",
                "peer",
                "--json",
            ]),
            Some(clerk),
        )
        .await,
    );
    let row = &inbound["rows"][0];
    assert_eq!(
        (
            row["peer"].as_str(),
            row["received"].as_u64(),
            row["answered"].as_u64()
        ),
        (Some(LUOHU), Some(1), Some(1))
    );
    assert_eq!(row["timely_feedback_rate"], 1.0);
    let outbound = json(
        &migrex(
            args(&[
                "stats",
                "--config",
                &cfg(a),
                "--period",
                all_time,
                "--direction",
                "outbound",
                "--json",
            ]),
            Some(&a.token),
        )
        .await,
    );
    assert_eq!(outbound["rows"][0]["timely_feedback_rate"], 1.0);
    let table = ok(&migrex(
        args(&["stats", "--config", &cfg(b), "--period", all_time]),
        Some(clerk),
    )
    .await);
    assert!(
        table.contains("反馈及时率") && table.contains("timely fb") && table.contains("100.0%"),
        "{table}"
    );
    // The report's CSV (UTF-8 with BOM for Excel) shows the same figures as `stats` and /metrics.
    let month = this_month();
    let month_stats = json(
        &migrex(
            args(&["stats", "--config", &cfg(b), "--period", &month, "--json"]),
            Some(clerk),
        )
        .await,
    );
    let csv_path = root.path().join("report.csv");
    ok(&migrex(
        args(&[
            "report",
            "--config",
            &cfg(b),
            "--period",
            &month,
            "--format",
            "csv",
            "--out",
            csv_path.to_str().unwrap(),
        ]),
        Some(clerk),
    )
    .await);
    let csv_text = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv_text.starts_with('\u{feff}'), "BOM for Excel");
    let summary: Vec<&str> = csv_text
        .lines()
        .find(|l| l.starts_with("合计 all"))
        .expect("summary row")
        .split(',')
        .collect();
    let m = &month_stats["rows"][0];
    let pct = |v: &Value| {
        v.as_f64()
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or("-".into())
    };
    assert_eq!(summary[1], m["received"].to_string());
    assert_eq!(summary[7], m["answered"].to_string());
    assert_eq!(summary[9], pct(&m["timely_feedback_rate"]));
    assert!(csv_text.contains(&format!("{LUOHU} 罗湖区")), "{csv_text}");
    let metrics = http_get(&b.ops, "/metrics").await.unwrap();
    let line = format!(
        "migrex_month_answered{{direction=\"inbound\",peer=\"{LUOHU}\"}} {}",
        m["answered"]
    );
    assert!(metrics.contains(&line), "{line} in {metrics}");
    let html_path = root.path().join("report.html");
    ok(&migrex(
        args(&[
            "report",
            "--config",
            &cfg(b),
            "--period",
            &month,
            "--out",
            html_path.to_str().unwrap(),
        ]),
        Some(clerk),
    )
    .await);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.contains("<svg") && html.contains("<circle"),
        "the chart is inline SVG"
    );
    // In Chinese only, naming the district and when it was made.
    assert!(html.contains("反馈及时率") && !html.contains("timely feedback"));
    assert!(html.contains("制表单位") && html.contains("制表日期"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<script"),
        "self-contained, no network"
    );

    // Several districts ranked at once; a node that does not answer is named.
    let dead = format!("https://127.0.0.1:{}", migrex::setup::free_port().unwrap());
    let desk_url = |n: &Node| {
        let (c, _) = migrex::config::Config::load(&n.config).unwrap();
        format!("https://{}", c.desk_listen)
    };
    let nodes_file = root.path().join("nodes.toml");
    std::fs::write(
        &nodes_file,
        format!(
            "[[nodes]]\nurl = \"{}\"\ntoken = \"{}\"\nca = \"ca/ca.crt\"\n\n[[nodes]]\nurl = \"{}\"\ntoken = \"{}\"\nca = \"ca/ca.crt\"\n\n[[nodes]]\nurl = \"{dead}\"\ntoken = \"x\"\nca = \"ca/ca.crt\"\n",
            desk_url(a), a.token, desk_url(b), clerk
        ),
    )
    .unwrap();
    let ranking = json(
        &migrex(
            args(&[
                "report",
                "--nodes",
                nodes_file.to_str().unwrap(),
                "--period",
                all_time,
                "--json",
            ]),
            None,
        )
        .await,
    );
    let districts: Vec<&str> = ranking["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["district"].as_str().unwrap())
        .collect();
    assert_eq!(
        districts,
        vec![SHUANGLIU, LUOHU],
        "Shuangliu answered its one notice on time; Luohu had nothing to answer"
    );
    assert_eq!(ranking["no_answer"][0]["url"], dead.as_str());

    let overdue = json(
        &migrex(
            args(&["overdue", "--config", &cfg(b), "--json"]),
            Some(clerk),
        )
        .await,
    );
    assert_eq!(overdue["notices"].as_array().unwrap().len(), 0);
    let bad_period = migrex(
        args(&["stats", "--config", &cfg(b), "--period", "2026-13"]),
        Some(clerk),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&bad_period.stderr).contains("period: '2026-13' is not a period")
    );

    p.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_with_one_bad_row_imports_nothing() {
    let p = two_districts().await;
    let (a, root) = (&p.a, &p.root);
    // CSV: one bad row → nothing imported, the row named; then a good file.
    let csv = root.path().join("notices.csv");
    let header = "destination,kind,category,id_number,name,hukou_district,residence_district,event_date,spouse_id_number,spouse_name,registry_office,method,provider\n";
    let good1 = format!(
        "{SHUANGLIU},MARRIAGE,NOTIFICATION,{},张丽,{SHUANGLIU},{LUOHU},2026-09-01,{},李强,罗湖区婚姻登记处,,\n",
        woman(2),
        man(3)
    );
    let good2 = format!(
        "{SHUANGLIU},CONTRACEPTION,VERIFICATION_REQUEST,{},赵敏,{SHUANGLIU},{LUOHU},2026-09-02,,,,IUD_INSERTION,妇幼保健院\n",
        woman(4)
    );
    let bad = format!(
        "{SHUANGLIU},MARRIAGE,NOTIFICATION,{},钱芳,{SHUANGLIU},{LUOHU},2026-09-01,{},李强,,,\n",
        woman(5),
        man(6)
    );
    std::fs::write(&csv, format!("\u{feff}{header}{good1}{bad}{good2}")).unwrap();
    let count_out = || async {
        json(
            &migrex(
                args(&[
                    "notices",
                    "--direction",
                    "out",
                    "--config",
                    &cfg(a),
                    "--json",
                ]),
                Some(&a.token),
            )
            .await,
        )["notices"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count_out().await, 0);
    let refused = migrex(
        args(&[
            "notice",
            "send",
            "--file",
            csv.to_str().unwrap(),
            "--config",
            &cfg(a),
        ]),
        Some(&a.token),
    )
    .await;
    assert!(!refused.status.success());
    let out = String::from_utf8_lossy(&refused.stdout);
    assert!(
        out.contains("line 3: refused: registry_office: is required"),
        "{out}"
    );
    assert!(out.contains("nothing was sent"), "{out}");
    assert_eq!(count_out().await, 0, "nothing half-imported");
    std::fs::write(&csv, format!("{header}{good1}{good2}")).unwrap();
    let imported = json(
        &migrex(
            args(&[
                "notice",
                "send",
                "--file",
                csv.to_str().unwrap(),
                "--config",
                &cfg(a),
                "--json",
            ]),
            Some(&a.token),
        )
        .await,
    );
    assert_eq!(imported["committed"], true);
    assert_eq!(imported["accepted"], 2);
    assert_eq!(count_out().await, 2);

    p.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_non_zero_with_one_line_naming_what_to_fix() {
    let p = two_districts().await;
    let (a, b) = (&p.a, &p.b);
    // Errors: non-zero exit, one line naming what to fix.
    let bad_id = migrex(
        args(&[
            "notices",
            "--config",
            &cfg(a),
            "--subject",
            "110105194912310021",
        ]),
        Some(&a.token),
    )
    .await;
    assert!(!bad_id.status.success());
    let err = String::from_utf8_lossy(&bad_id.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("subject_id_number") && err.contains("check character"),
        "{err}"
    );
    let no_token = migrex(args(&["pending", "--config", &cfg(b)]), None).await;
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("--token"));
    let wrong_token = migrex(args(&["pending", "--config", &cfg(b)]), Some("mgx_wrong")).await;
    assert!(String::from_utf8_lossy(&wrong_token.stderr).contains("Unauthenticated"));

    p.stop();
}

#[tokio::test]
async fn a_certificate_for_another_district_comes_from_the_same_ca() {
    let root = tempfile::tempdir().unwrap();
    init(root.path(), LUOHU).await;
    // A certificate for a third district, issued from the same CA.
    let certs = root.path().join("wancheng-certs");
    ok(&migrex(
        args(&[
            "ca",
            "issue",
            "--ca-dir",
            root.path().join("ca").to_str().unwrap(),
            "--district",
            WANCHENG,
            "--out",
            certs.to_str().unwrap(),
        ]),
        None,
    )
    .await);
    let issued = migrex::identity::TlsMaterial::load(
        &certs.join("ca.crt"),
        &certs.join("node.crt"),
        &certs.join("node.key"),
    )
    .unwrap();
    assert_eq!(issued.own_district().unwrap().as_str(), WANCHENG);

    // The CA's ledger lists it; revoking the district revokes it, once.
    let ca = root.path().join("ca");
    let ca = ca.to_str().unwrap();
    let listed = json(&migrex(args(&["ca", "list", "--ca-dir", ca, "--json"]), None).await);
    let mine: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["district"] == WANCHENG)
        .collect();
    assert_eq!(mine.len(), 1);
    assert!(mine[0]["revoked"].is_null());
    let out = ok(&migrex(
        args(&["ca", "revoke", "--ca-dir", ca, "--district", WANCHENG]),
        None,
    )
    .await);
    assert!(out.contains(mine[0]["serial"].as_str().unwrap()), "{out}");
    let listed = json(&migrex(args(&["ca", "list", "--ca-dir", ca, "--json"]), None).await);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["district"] == WANCHENG && !c["revoked"].is_null())
    );
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["district"] == LUOHU && c["revoked"].is_null())
    );
    let bad = migrex(
        args(&["ca", "revoke", "--ca-dir", ca, "--serial", "not-hex"]),
        None,
    )
    .await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).starts_with("error: --serial"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test]
async fn tokens_have_ids_expire_and_are_revoked_by_id() {
    let root = tempfile::tempdir().unwrap();
    let node = init(root.path(), LUOHU).await;
    let made = json(
        &migrex(
            args(&[
                "token",
                "create",
                "--config",
                &cfg(&node),
                "--role",
                "monitor",
                "--name",
                "city.office",
                "--expires",
                "90d",
                "--json",
            ]),
            None,
        )
        .await,
    );
    let id = made["id"].as_i64().unwrap();
    assert!(made["expires_at"].is_string());
    let listed = json(
        &migrex(
            args(&["token", "list", "--config", &cfg(&node), "--json"]),
            None,
        )
        .await,
    );
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(
        (row["name"].as_str(), row["role"].as_str()),
        (Some("city.office"), Some("monitor"))
    );
    assert!(row.get("token").is_none(), "never the token itself");
    let revoke = |id: i64| {
        migrex(
            args(&[
                "token",
                "revoke",
                "--config",
                &cfg(&node),
                "--id",
                &id.to_string(),
            ]),
            None,
        )
    };
    ok(&revoke(id).await);
    let again = revoke(id).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).starts_with("error: --id:"));
    let late = migrex(
        args(&[
            "token",
            "create",
            "--config",
            &cfg(&node),
            "--role",
            "clerk",
            "--expires",
            "2020-01-01",
        ]),
        None,
    )
    .await;
    assert!(String::from_utf8_lossy(&late.stderr).starts_with("error: --expires:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_holds_a_running_nodes_notices() {
    let p = two_districts().await;
    walk_through(&p).await;
    let (a, root) = (&p.a, &p.root);
    // What `init` made: the folder, the configuration (it can hold the
    // database password) and the key are the owner's alone.
    let dir = a.config.parent().unwrap();
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for f in [
        a.config.clone(),
        dir.join("node.key"),
        dir.join("audit.key"),
    ] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let ca = root.path().join("ca");
    assert_eq!(mode(&ca.join("ca.key")), 0o600);
    // An online backup of a running node holds its notices (SQLite; a
    // PostgreSQL store is backed up with PostgreSQL's own tools).
    let backup = root.path().join("luohu-backup.db");
    let backup_args = args(&[
        "backup",
        "--config",
        &cfg(a),
        "--out",
        backup.to_str().unwrap(),
    ]);
    let out = migrex(backup_args.clone(), None).await;
    if matches!(store_choice(), StoreChoice::Postgres { .. }) {
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("pg_dump"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        ok(&out);
        // Private from birth: the database, its WAL and shared memory (made
        // by `serve`) and the backup (made by `backup`).
        let db = migrex::config::Config::load(&a.config).unwrap().0.database;
        for f in [
            db.clone(),
            format!("{db}-wal"),
            format!("{db}-shm"),
            backup.display().to_string(),
        ] {
            let f = std::path::PathBuf::from(f);
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        let copy = migrex::store::Store::open(
            backup.to_str().unwrap(),
            migrex::calendar::timezone("Asia/Shanghai").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(
            copy.count_notices(migrex::domain::Direction::Outbound)
                .await
                .unwrap(),
            1
        );
        copy.close().await;
        let again = migrex(backup_args, None).await;
        assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    }

    p.stop();
}

#[tokio::test]
async fn a_reader_that_goes_away_ends_a_command_quietly() {
    let root = tempfile::tempdir().unwrap();
    let a = init(root.path(), LUOHU).await;
    // `migrex peer list | head -0`: the reader is gone before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
        .args(["peer", "list", "--config", a.config.to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "ended like `cat`");
}
