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
