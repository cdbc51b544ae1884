//! What the README and deploy/README.md promise an operator, checked the way
//! an operator meets it: `migrex peer add` on a commented config keeps every
//! comment and refuses endpoints `serve` could not use; the module map in
//! ARCHITECTURE.md names what `src/` holds.

use crate::common::*;

#[test]
fn peer_add_keeps_a_commented_config_as_written_and_refuses_what_serve_could_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrex.toml");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/migrex.example.toml"
    ))
    .unwrap();
    std::fs::write(&config, &example).unwrap();
    let cfg = config.to_str().unwrap();

    let out = migrex_cli(&[
        "peer",
        "add",
        "--config",
        cfg,
        "--district",
        "411302",
        "--endpoint",
        "https://node.wancheng.example:7401",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added = std::fs::read_to_string(&config).unwrap();
    // The file as it was, the new route after the last one.
    let henan = "endpoint = \"https://relay.henan.example:7401\"\n";
    assert!(example.contains(henan));
    assert_eq!(
        added,
        example.replace(
            henan,
            &format!("{henan}\n[[peers]]\nprefix = \"411302\"\nendpoint = \"https://node.wancheng.example:7401\"\n")
        )
    );

    // Changing a route's endpoint touches that value only.
    let out = migrex_cli(&[
        "peer",
        "add",
        "--config",
        cfg,
        "--district",
        "510116",
        "--endpoint",
        "https://node2.shuangliu.example:7401",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        changed,
        added.replace(
            "https://node.shuangliu.example:7401",
            "https://node2.shuangliu.example:7401"
        )
    );
    let out = migrex_cli(&["peer", "list", "--config", cfg, "--json"]);
    let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(peers.as_array().unwrap().len(), 3, "{peers}");

    // Endpoints without a port or with a path are refused; nothing changes.
    for (bad, rule) in [
        ("https://x.example", "no port"),
        ("https://x.example:7401/exchange", "path"),
    ] {
        let out = migrex_cli(&[
            "peer",
            "add",
            "--config",
            cfg,
            "--district",
            "130102",
            "--endpoint",
            bad,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("--endpoint") && err.contains(rule), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), changed);
    }
}

/// The modules of `src/`: `store`, `store::notices`, … (and `pb`, declared
/// in lib.rs around the generated code).
fn source_modules() -> std::collections::BTreeSet<String> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = std::collections::BTreeSet::new();
    fn walk(dir: &std::path::Path, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                if path.join("mod.rs").exists() {
                    let module = format!("{prefix}{name}");
                    out.insert(module.clone());
                    walk(&path, &format!("{module}::"), out);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && !["mod", "lib", "main"].contains(&name.as_str())
            {
                out.insert(format!("{prefix}{name}"));
            }
        }
    }
    walk(&src, "", &mut out);
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(m) = line.trim().strip_prefix("pub mod ") {
            out.insert(m.trim_end_matches([';', '{', ' ']).to_string());
        }
    }
    out
}

#[test]
fn the_module_map_in_architecture_md_names_what_src_holds() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    let map = text
        .split("## Code map")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Code map section");
    // Rows: (module in the first cell, the whole row).
    let rows: Vec<(String, &str)> = map
        .lines()
        .filter_map(|l| {
            let cell = l.strip_prefix("| `")?.split('`').next()?;
            Some((cell.to_string(), l))
        })
        .collect();
    assert!(rows.len() > 20, "{} rows", rows.len());
    let modules = source_modules();
    let mut missing = Vec::new();
    for m in &modules {
        let named = match m.split_once("::") {
            None => rows
                .iter()
                .any(|(c, _)| c == m || c.starts_with(&format!("{m}::"))),
            Some((parent, child)) => {
                rows.iter().any(|(c, _)| c == m)
                    || map.contains(&format!("`{m}`"))
                    || rows
                        .iter()
                        .filter(|(c, _)| c == parent)
                        .any(|(_, row)| row.contains(&format!("`{child}`")))
            }
        };
        if !named {
            missing.push(m.as_str());
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name {missing:?}"
    );
    let stale: Vec<&str> = rows
        .iter()
        .map(|(c, _)| c.as_str())
        .filter(|c| !modules.contains(*c))
        .collect();
    assert!(
        stale.is_empty(),
        "the code map names modules src/ does not have: {stale:?}"
    );
}

/// The shell lines of deploy/README.md's "Another district" block.
fn second_machine_steps() -> Vec<String> {
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/README.md")).unwrap();
    let section = guide
        .split("- **Another district**")
        .nth(1)
        .expect("the Another district step");
    let block = section
        .split("```sh")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_machine_joins_as_deploy_readme_says_and_exchanges() {
    let root = tempfile::tempdir().unwrap();
    let at = |p: &str| root.path().join(p).to_str().unwrap().to_string();
    let ports = |_| {
        (0..4)
            .map(|_| migrex::setup::free_port().unwrap())
            .collect::<Vec<u16>>()
    };
    let (lp, sp) = (ports(0), ports(1));

    // The CA holder's own node, with the network CA.
    let out = migrex_cli(&[
        "init",
        "--district",
        LUOHU,
        "--dir",
        &at("luohu"),
        "--ca-dir",
        &at("migrex-ca"),
        "--host",
        "127.0.0.1",
        "--listen",
        &format!("127.0.0.1:{}", lp[0]),
        "--desk-listen",
        &format!("127.0.0.1:{}", lp[1]),
        "--ops-listen",
        &format!("127.0.0.1:{}", lp[2]),
        "--console-listen",
        &format!("127.0.0.1:{}", lp[3]),
        "--database",
        &store_location(root.path(), "luohu").await,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let luohu_token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("admin token (shown only this once): "))
        .unwrap()
        .to_string();

    // deploy/README.md's lines, with this machine's folders and free ports
    // for the guide's; the host names point at 127.0.0.1.
    let shuangliu_db = store_location(root.path(), "shuangliu").await;
    let substitutions = [
        ("/root/migrex-ca", at("migrex-ca")),
        ("/var/lib/migrex", at("shuangliu")),
        ("shuangliu-certs", at("shuangliu-certs")),
        (
            "http://ca.province.example/migrex/crl.pem",
            at("migrex-ca/crl.pem"),
        ),
        ("node.luohu.example:7401", format!("127.0.0.1:{}", lp[0])),
        ("node.shuangliu.example", "127.0.0.1".to_string()),
        ("0.0.0.0:7401", format!("127.0.0.1:{}", sp[0])),
        ("0.0.0.0:7402", format!("127.0.0.1:{}", sp[1])),
        ("127.0.0.1:7403", format!("127.0.0.1:{}", sp[2])),
        ("0.0.0.0:7404", format!("127.0.0.1:{}", sp[3])),
    ];
    let steps = second_machine_steps();
    assert!(steps.iter().any(|s| s.contains("--ca-cert")), "{steps:?}");
    assert!(
        steps.iter().any(|s| s.contains("--request")) && steps.iter().any(|s| s.contains("--csr")),
        "the guide has the district make its own key: {steps:?}"
    );
    let mut serving = Vec::new();
    for step in &steps {
        let mut line = step.clone();
        for (from, to) in &substitutions {
            line = line.replace(from, to);
        }
        eprintln!("step: {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["rm", "-r", dir] => {
                // What came back from the CA holder held no key.
                let back: Vec<_> = std::fs::read_dir(dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                    .collect();
                assert!(!back.iter().any(|f| f.ends_with(".key")), "{back:?}");
                std::fs::remove_dir_all(dir).unwrap()
            }
            ["migrex", "serve", "--config", config] => {
                serving.push(spawn_serve(std::path::Path::new(config)))
            }
            ["migrex", "init", rest @ ..] => {
                // The guide's database is the default SQLite file; the
                // PostgreSQL pass gives the node its own database.
                let mut a = vec!["init"];
                a.extend(rest);
                a.extend(["--database", &shuangliu_db]);
                let out = migrex_cli(&a);
                assert!(
                    out.status.success(),
                    "{line}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            ["migrex", rest @ ..] => {
                let out = migrex_cli(rest);
                assert!(
                    out.status.success(),
                    "{line}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            _ => panic!("a step this test does not know: {step}"),
        }
    }
    assert_eq!(serving.len(), 1, "the guide starts the node");
    assert!(!root.path().join("shuangliu-certs").exists());
    let toml = std::fs::read_to_string(root.path().join("shuangliu/migrex.toml")).unwrap();
    assert!(
        toml.contains("crl = ") && !toml.contains("ca-dir"),
        "{toml}"
    );

    // The route back, as the guide says, and the CA holder's node.
    let out = migrex_cli(&[
        "peer",
        "add",
        "--config",
        &at("luohu/migrex.toml"),
        "--district",
        SHUANGLIU,
        "--endpoint",
        &format!("https://127.0.0.1:{}", sp[0]),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _luohu = spawn_serve(&root.path().join("luohu/migrex.toml"));
    wait_ready(&format!("http://127.0.0.1:{}", sp[2])).await;
    wait_ready(&format!("http://127.0.0.1:{}", lp[2])).await;

    // A birth notice from Luohu reaches the new node and is acknowledged.
    let subject = woman(7);
    let luohu_config = at("luohu/migrex.toml");
    let sent = std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
        .args([
            "notice",
            "send",
            "--config",
            &luohu_config,
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
        ])
        .env("MIGREX_TOKEN", &luohu_token)
        .env("MIGREX_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let id = serde_json::from_slice::<serde_json::Value>(&sent.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(
        "the notice delivered to the second machine's node",
        std::time::Duration::from_secs(30),
        || {
            let (config, id, token) = (luohu_config.clone(), id.clone(), luohu_token.clone());
            async move {
                let out = tokio::task::spawn_blocking(move || {
                    std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
                        .args(["notice", "show", "--config", &config, &id, "--json"])
                        .env("MIGREX_TOKEN", &token)
                        .env("MIGREX_LOG", "warn")
                        .output()
                        .unwrap()
                })
                .await
                .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                (v["status"] == "DELIVERED" && !v["received_at"].is_null()).then_some(())
            }
        },
    )
    .await;
    eprintln!("delivered: {id}");
}

#[test]
fn init_refuses_handed_over_files_that_are_not_this_districts_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let at = |p: &str| root.path().join(p).to_str().unwrap().to_string();
    let out = migrex_cli(&["ca", "create", "--ca-dir", &at("ca"), "--name", "test CA"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = migrex_cli(&[
        "ca",
        "issue",
        "--ca-dir",
        &at("ca"),
        "--district",
        WANCHENG,
        "--out",
        &at("certs"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = at("node");
    let init = |extra: &[&str]| {
        let mut a = vec!["init", "--district", SHUANGLIU, "--dir", &node, "--ca-cert"];
        a.extend(extra);
        migrex_cli(&a)
    };
    let certs_ca = at("certs/ca.crt");
    let out = init(&[&certs_ca]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("for district 411302, not 510116"), "{err}");
    assert!(
        !root.path().join("node").exists(),
        "a refusal writes nothing"
    );

    // Another CA's certificate is refused too.
    let out = migrex_cli(&[
        "ca",
        "create",
        "--ca-dir",
        &at("other"),
        "--name",
        "other CA",
    ]);
    assert!(out.status.success());
    let other_ca = at("other/ca.crt");
    let cert = at("certs/node.crt");
    let key = at("certs/node.key");
    let out = init(&[&other_ca, "--cert", &cert, "--key", &key]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not signed by the CA certificate given"),
        "{err}"
    );
    assert!(!root.path().join("node").exists());
}

/// `init` into a database that holds a node, `store copy` from a SQLite
/// file a running node has open, and an empty `MIGREX_TOKEN=`: each is
/// refused with the reason, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_silences_are_refusals() {
    let root = tempfile::tempdir().unwrap();
    let at = |p: &str| root.path().join(p).to_str().unwrap().to_string();
    let p: Vec<u16> = (0..4)
        .map(|_| migrex::setup::free_port().unwrap())
        .collect();
    let listen = |i: usize| format!("127.0.0.1:{}", p[i]);
    let out = migrex_cli(&[
        "init",
        "--district",
        LUOHU,
        "--dir",
        &at("luohu"),
        "--ca-dir",
        &at("ca"),
        "--listen",
        &listen(0),
        "--desk-listen",
        &listen(1),
        "--ops-listen",
        &listen(2),
        "--console-listen",
        &listen(3),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = at("luohu/migrex.db");

    // A second folder for the same database: refused unless --adopt.
    let again = |extra: &[&str]| {
        let mut a = vec![
            "init",
            "--district",
            LUOHU,
            "--dir",
            &at("again"),
            "--ca-dir",
            &at("ca"),
            "--database",
            &db,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        a.extend(extra.iter().map(|s| s.to_string()));
        migrex_cli(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = again(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--database") && err.contains("--adopt"),
        "{err}"
    );
    assert!(
        !root.path().join("again").exists(),
        "a refusal writes nothing"
    );
    let out = again(&["--adopt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens = migrex_cli(&[
        "token",
        "list",
        "--config",
        &at("luohu/migrex.toml"),
        "--json",
    ]);
    let tokens: serde_json::Value = serde_json::from_slice(&tokens.stdout).unwrap();
    assert_eq!(
        tokens.as_array().unwrap().len(),
        2,
        "adopting adds an admin token"
    );

    // store copy from the file of a running node: refused; stopped: copied.
    let mut serve = spawn_serve(&root.path().join("luohu/migrex.toml"));
    wait_ready(&format!("http://{}", listen(2))).await;
    let copy = || migrex_cli(&["store", "copy", "--from", &db, "--to", &at("copy.db")]);
    let out = copy();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--from") && err.contains("stop the node"),
        "{err}"
    );
    assert!(!root.path().join("copy.db").exists());

    // An empty token is no token.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_migrex"))
        .args(["pending", "--config", &at("luohu/migrex.toml")])
        .env("MIGREX_TOKEN", "")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token: a staff token is required"), "{err}");

    std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(serve.wait().unwrap().success());
    let out = copy();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_request_is_signed_only_for_its_own_district_and_its_key_stays_put() {
    let root = tempfile::tempdir().unwrap();
    let at = |p: &str| root.path().join(p).to_str().unwrap().to_string();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    ok(migrex_cli(&["ca", "create", "--ca-dir", &at("ca")]));
    ok(migrex_cli(&[
        "init",
        "--district",
        SHUANGLIU,
        "--dir",
        &at("node"),
        "--request",
    ]));
    let key = std::fs::read(at("node/node.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(at("node/node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // A second request would replace the key: refused, the key untouched.
    let again = migrex_cli(&[
        "init",
        "--district",
        SHUANGLIU,
        "--dir",
        &at("node"),
        "--request",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).starts_with("error: --dir:"));
    assert_eq!(std::fs::read(at("node/node.key")).unwrap(), key);

    // Signed for another district: refused, nothing written.
    let wrong = migrex_cli(&[
        "ca",
        "issue",
        "--ca-dir",
        &at("ca"),
        "--district",
        WANCHENG,
        "--csr",
        &at("node/node.csr"),
        "--out",
        &at("wrong"),
    ]);
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("--csr:") && said.contains(SHUANGLIU),
        "{said}"
    );
    assert!(!root.path().join("wrong/node.crt").exists());
    // A request whose bytes were changed: its signature fails.
    let pem = std::fs::read_to_string(at("node/node.csr")).unwrap();
    let mut lines: Vec<String> = pem.lines().map(str::to_string).collect();
    let mid = lines.len() / 2;
    let flipped: String = lines[mid]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect();
    lines[mid] = flipped;
    std::fs::write(at("tampered.csr"), lines.join("\n")).unwrap();
    let bad = migrex_cli(&[
        "ca",
        "issue",
        "--ca-dir",
        &at("ca"),
        "--district",
        SHUANGLIU,
        "--csr",
        &at("tampered.csr"),
        "--out",
        &at("bad"),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--csr:"));
    assert!(!root.path().join("bad/node.crt").exists());

    // Its own district: a certificate for the key in the request, no key beside it.
    ok(migrex_cli(&[
        "ca",
        "issue",
        "--ca-dir",
        &at("ca"),
        "--district",
        SHUANGLIU,
        "--csr",
        &at("node/node.csr"),
        "--out",
        &at("back"),
    ]));
    assert!(!root.path().join("back/node.key").exists());
    let material = migrex::identity::TlsMaterial::load(
        &root.path().join("back/ca.crt"),
        &root.path().join("back/node.crt"),
        &root.path().join("node/node.key"),
    )
    .expect("the certificate matches the node's own key");
    material
        .check_issued_for(&migrex::domain::DistrictCode::parse("d", SHUANGLIU).unwrap())
        .unwrap();
    let listed = ok(migrex_cli(&["ca", "list", "--ca-dir", &at("ca"), "--json"]));
    assert!(listed.contains(SHUANGLIU), "{listed}");
}
