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
