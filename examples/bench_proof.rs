//! What signing costs (issue 23, item 5), before it is wired into the
//! exchange: BATCHES batches of 1,000 birth notices, each put in its
//! canonical form (`proof::canonical`), its hash tree built and its root
//! signed once with a node key (`NodeKey::sign_batch`), then checked as a
//! receiver does (`verify_batch`: every path, one signature) and item by
//! item (`verify`: one signature check per item, as an evidence file is).
//! Prints the medians per batch and the notices per second on one core.
//!
//!     cargo run --release --example bench_proof [BATCHES]

use migrex::proof::{canonical, sign};
use std::time::Instant;

#[path = "common/birth.rs"]
mod birth;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let batches: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("BATCHES is a number"))
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    migrex::identity::ensure_ca(dir.path(), "bench CA").unwrap();
    let code = migrex::domain::DistrictCode::parse("district", "440303").unwrap();
    let (cert, key) = (dir.path().join("node.crt"), dir.path().join("node.key"));
    migrex::identity::issue_node_cert(dir.path(), &code, &["localhost".into()], &cert, &key)
        .unwrap();
    let key = sign::NodeKey::from_pem(&std::fs::read_to_string(key).unwrap(), "440303").unwrap();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let cert = CertificateDer::from_pem_file(cert).unwrap().to_vec();

    const N: usize = 1000;
    let (mut signing, mut batch_check, mut item_check) = (Vec::new(), Vec::new(), Vec::new());
    for b in 0..batches {
        let notices: Vec<_> = (0..N).map(|i| birth::birth(b * N + i)).collect();
        let t = Instant::now();
        let items: Vec<Vec<u8>> = notices.iter().map(canonical::notice).collect();
        let proofs = key.sign_batch(&items);
        signing.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        sign::verify_batch(&items, &proofs, &cert).expect("the batch verifies");
        batch_check.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for (item, proof) in items.iter().zip(&proofs) {
            sign::verify(item, proof, &cert).expect("each item verifies");
        }
        item_check.push(t.elapsed().as_secs_f64());
    }
    let (s, v, i) = (median(signing), median(batch_check), median(item_check));
    println!(
        "proof of batches of {N} notices, median of {batches}: canonical form, tree and one signature {:.1} ms ({:.0} notices/s); receiver's check of the batch {:.1} ms ({:.0}/s); each item checked alone {:.1} ms ({:.0}/s)",
        s * 1e3,
        N as f64 / s,
        v * 1e3,
        N as f64 / v,
        i * 1e3,
        N as f64 / i
    );
}
