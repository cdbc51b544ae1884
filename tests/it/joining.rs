//! Issue 21, items 1 and 2: the README's "Joining the network" run as
//! written, from the folder an operator would be in: a district makes its
//! key and a request, the authority certifies it and lists it in the signed
//! directory, the district's node starts routing by the directory and its
//! first notice reaches Luohu, which answers through the directory too
//! (no route added by hand anywhere, no node restarted).

use crate::common::*;
use std::path::Path;
use std::time::Duration;

/// The README's "Joining the network" section: its shell lines and its
/// `network.toml` lines.
fn readme_steps() -> (Vec<String>, String) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Joining the network")
        .nth(1)
        .expect("README has Joining the network")
        .split("\n## ")
        .next()
        .unwrap();
    let block = |fence: &str| {
        section
            .split(fence)
            .nth(1)
            .unwrap_or_else(|| panic!("a {fence} block"))
            .split("```")
            .next()
            .unwrap()
            .to_string()
    };
    let steps = block("```sh")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    (steps, block("```toml"))
}

/// `migrex ARGS` run in `dir` with `token`, as an operator types it.
fn run_in(dir: &Path, args: &[&str], token: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
        .current_dir(dir)
        .args(args)
        .env("MIGREX_TOKEN", token)
        .env("MIGREX_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(line: &str, out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn admin_token(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("admin token (shown only this once): "))
        .expect("init prints the admin token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_joins_the_network_as_the_readme_says() {
    let root = tempfile::tempdir().unwrap();
    let here = root.path();
    let ports = || {
        (0..4)
            .map(|_| migrex::setup::free_port().unwrap())
            .collect::<Vec<u16>>()
    };
    let (lp, wp) = (ports(), ports());
    std::fs::create_dir(here.join("www")).unwrap();

    // The network so far: the authority's CA and Luohu, in the directory.
    let luohu_db = store_location(here, "luohu").await;
    let listen = |p: &[u16], i: usize| format!("127.0.0.1:{}", p[i]);
    let out = run_in(
        here,
        &[
            "init",
            "--district",
            LUOHU,
            "--dir",
            "luohu",
            "--ca-dir",
            "ca",
            "--host",
            "127.0.0.1",
            "--listen",
            &listen(&lp, 0),
            "--desk-listen",
            &listen(&lp, 1),
            "--ops-listen",
            &listen(&lp, 2),
            "--console-listen",
            &listen(&lp, 3),
            "--database",
            &luohu_db,
            "--directory",
            "www/directory.signed",
        ],
        "",
    );
    let luohu_token = admin_token(&ok("init luohu", &out));
    std::fs::write(
        here.join("network.toml"),
        format!(
            "valid_days = 30\n\n[[district]]\ncode = \"{LUOHU}\"\nendpoints = [\"https://{}\"]\ncertificate = \"luohu/node.crt\"\n",
            listen(&lp, 0)
        ),
    )
    .unwrap();
    let build = [
        "directory",
        "build",
        "--in",
        "network.toml",
        "--ca-dir",
        "ca",
        "--out",
        "www/directory.signed",
    ];
    ok("first directory", &run_in(here, &build, ""));
    // Luohu reads the directory every second here (the default is 5 minutes).
    let luohu_config = here.join("luohu/migrex.toml");
    let (mut c, _) = migrex::config::Config::load(&luohu_config).unwrap();
    c.directory.as_mut().unwrap().refresh_secs = 1;
    c.save(&luohu_config).unwrap();
    let _luohu = spawn_serve(&luohu_config);
    wait_ready(&format!("http://{}", listen(&lp, 2))).await;

    // The README's lines, with this machine's ports and folders for the
    // guide's host names and web server.
    let wancheng_db = store_location(here, "wancheng").await;
    let substitutions = [
        (
            "/srv/www/migrex/directory.signed",
            "www/directory.signed".to_string(),
        ),
        (
            "http://directory.example/migrex/directory.signed",
            "www/directory.signed".to_string(),
        ),
        (
            "http://directory.example/migrex/crl.pem",
            "ca/crl.pem".to_string(),
        ),
        ("node.wancheng.example:7421", listen(&wp, 0)),
        ("node.wancheng.example", "127.0.0.1".to_string()),
        ("0.0.0.0:7421", listen(&wp, 0)),
        ("0.0.0.0:7422", listen(&wp, 1)),
        ("127.0.0.1:7423", listen(&wp, 2)),
        ("0.0.0.0:7424", listen(&wp, 3)),
    ];
    let substitute = |s: &str| {
        substitutions
            .iter()
            .fold(s.to_string(), |s, (from, to)| s.replace(from, to))
    };
    let (steps, district_lines) = readme_steps();
    assert!(
        steps.iter().any(|s| s.contains("--request")) && steps.iter().any(|s| s.contains("--csr"))
    );
    let mut wancheng_token = String::new();
    let mut serving = Vec::new();
    let mut sent = None;
    for step in &steps {
        let line = substitute(step);
        eprintln!("step: {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["export", token, ..] if token.starts_with("MIGREX_TOKEN=") => {
                assert!(!wancheng_token.is_empty(), "the token comes from init");
            }
            ["migrex", "serve", "--config", config] => {
                serving.push(spawn_serve(&here.join(config)));
                wait_ready(&format!("http://{}", listen(&wp, 2))).await;
            }
            ["migrex", "directory", "build", ..] => {
                // The district's lines added to the authority's file.
                let mut plain = std::fs::read_to_string(here.join("network.toml")).unwrap();
                plain.push('\n');
                plain.push_str(&substitute(&district_lines));
                std::fs::write(here.join("network.toml"), plain).unwrap();
                ok(&line, &run_in(here, &words[1..], ""));
            }
            ["migrex", "init", rest @ ..] => {
                let mut a = rest.to_vec();
                if a.contains(&"--ca-cert") {
                    a.extend(["--database", &wancheng_db]);
                }
                let mut args = vec!["init"];
                args.extend(a);
                let stdout = ok(&line, &run_in(here, &args, ""));
                if args.contains(&"--ca-cert") {
                    wancheng_token = admin_token(&stdout);
                }
            }
            ["migrex", "notice", "send", ..] => {
                let mut args = words[1..].to_vec();
                args.push("--json");
                let stdout = ok(&line, &run_in(here, &args, &wancheng_token));
                let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                sent = Some(v["id"].as_str().unwrap().to_string());
            }
            ["migrex", rest @ ..] => {
                ok(&line, &run_in(here, rest, &wancheng_token));
            }
            _ => panic!("a step this test does not know: {step}"),
        }
    }
    assert_eq!(serving.len(), 1, "the guide starts the node");
    let id = sent.expect("the guide sends a notice");
    let config = here.join("wancheng/migrex.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(
        toml.contains("[directory]") && !toml.contains("[[peers]]"),
        "{toml}"
    );

    // Luohu has it, and signs for it: the receipt finds Wancheng through
    // the directory Luohu read while it ran.
    let show = |dir: &Path, config: String, token: String| {
        let (dir, id) = (dir.to_path_buf(), id.clone());
        async move {
            let out = tokio::task::spawn_blocking(move || {
                run_in(
                    &dir,
                    &["notice", "show", "--config", &config, &id, "--json"],
                    &token,
                )
            })
            .await
            .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
        }
    };
    let luohu = "luohu/migrex.toml".to_string();
    eventually("the notice at Luohu", Duration::from_secs(30), || {
        show(here, luohu.clone(), luohu_token.clone())
    })
    .await;
    ok(
        "ack",
        &run_in(here, &["ack", "--config", &luohu, &id], &luohu_token),
    );
    let wancheng = "wancheng/migrex.toml".to_string();
    eventually(
        "Luohu's receipt at Wancheng",
        Duration::from_secs(30),
        || {
            let f = show(here, wancheng.clone(), wancheng_token.clone());
            async move { f.await.filter(|v| v["status"] == "ACKNOWLEDGED") }
        },
    )
    .await;
}
