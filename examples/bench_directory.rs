//! How long a node takes to take the network directory of the whole
//! country (issue 21): every county-level division of the shipped table
//! (about 2,900) with an endpoint and a pinned certificate each, built and
//! signed as `migrex directory build` does, then, as a node does at start
//! and on each refresh, read from its file, verified against the CA and
//! applied to the routes, REPEAT times; prints the medians.
//!
//!     cargo run --release --example bench_directory [REPEAT]

use migrex::domain::DistrictCode;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let repeat: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("REPEAT is a number"))
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    migrex::identity::ensure_ca(&ca_dir, "bench CA").unwrap();

    // network.toml: every county-level unit (a unit of level 2 or 3 of
    // the table without units under it: a county, a city's district, a
    // municipality's district).
    let table: Vec<Vec<&str>> = include_str!("../data/divisions.csv")
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let parents: std::collections::HashSet<&str> =
        table.iter().filter_map(|f| f.get(4).copied()).collect();
    let mut plain = String::from("valid_days = 30\n");
    let mut codes = Vec::new();
    for f in &table {
        if matches!(f.get(2), Some(&"2") | Some(&"3")) && !parents.contains(f[0]) {
            let code = f[0];
            let pin = format!("{:064x}", code.parse::<u128>().unwrap() * 7919);
            plain.push_str(&format!(
                "\n[[district]]\ncode = \"{code}\"\nendpoints = [\"https://node-{code}.example:7401\", \"https://node2-{code}.example:7401\"]\nfingerprint = \"{pin}\"\n"
            ));
            codes.push(code.to_string());
        }
    }
    let source = dir.path().join("network.toml");
    std::fs::write(&source, &plain).unwrap();
    let out = dir.path().join("directory.signed");

    let t = Instant::now();
    let d =
        migrex::directory::source::build(&source, time::OffsetDateTime::now_utc(), None).unwrap();
    let signed = d.sign(&ca_dir).unwrap();
    std::fs::write(&out, &signed).unwrap();
    let build_ms = t.elapsed().as_secs_f64() * 1e3;

    let ca_pem = std::fs::read(migrex::identity::ca_paths(&ca_dir).0).unwrap();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let ca_ders: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&ca_pem)
        .map(|c| c.unwrap().to_vec())
        .collect();
    let own = DistrictCode::parse("own", "440303").unwrap();
    let (mut read, mut verify, mut apply) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat.max(1) {
        let routes = migrex::routing::Routes::new(own.clone(), vec![]);
        let t = Instant::now();
        let bytes = migrex::fetch::fetch(
            &migrex::fetch::Source::File(out.clone()),
            migrex::directory::MAX_BYTES,
            None,
        )
        .await
        .unwrap();
        read.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let d = migrex::directory::Directory::verify(&bytes, &ca_ders).unwrap();
        d.accept(None, time::OffsetDateTime::now_utc()).unwrap();
        verify.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        routes.apply(d);
        apply.push(t.elapsed().as_secs_f64() * 1e3);
        // Every district is routed (but this node's own).
        let routed = codes
            .iter()
            .filter(|c| {
                routes
                    .route_for(c, time::OffsetDateTime::now_utc().date())
                    .is_some()
            })
            .count();
        assert_eq!(routed, codes.len() - 1);
    }
    let (r, v, a) = (median(read), median(verify), median(apply));
    println!(
        "directory of {} districts ({} KiB signed): built and signed in {build_ms:.1} ms; a node reads it in {r:.2} ms, verifies it in {v:.2} ms, applies it in {a:.2} ms: {:.1} ms in all (median of {repeat})",
        codes.len(),
        signed.len() / 1024,
        r + v + a
    );
}
