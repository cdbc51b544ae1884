//! The same build with signing off, for the benchmarks' signed-against-
//! unsigned figures (issue 23): with BENCH_UNSIGNED=1 every node of the
//! network gets an Ed25519 key and certificate from the network's CA, so it
//! signs nothing (a node signs only with an ECDSA P-256 key, as a node of
//! an older version does not sign), and every node takes unsigned items
//! (`[delivery] accept_unsigned`, the switch for an upgrade). Everything
//! else, TLS included, is the same code as the signed run.

use migrex::config::Delivery;
use migrex::setup::LocalNetwork;

/// Whether BENCH_UNSIGNED=1 asks for the unsigned run.
pub fn wanted() -> bool {
    std::env::var("BENCH_UNSIGNED").is_ok_and(|v| v == "1")
}

/// The delivery settings of the run: unsigned items taken when unsigned.
pub fn delivery() -> Delivery {
    Delivery {
        accept_unsigned: wanted(),
        ..Delivery::default()
    }
}

/// With BENCH_UNSIGNED=1, gives every node of `net` an Ed25519 key and a
/// certificate for it (same district, same host names) from its CA.
pub fn apply(net: &LocalNetwork) {
    if !wanted() {
        return;
    }
    for node in &net.nodes {
        let folder = node.config_path.parent().expect("node folder");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("names");
        params.subject_alt_names.push(rcgen::SanType::URI(
            format!("{}{}", migrex::identity::DISTRICT_URI_PREFIX, node.district)
                .try_into()
                .expect("district URI"),
        ));
        let csr = params.serialize_request(&key).expect("request");
        migrex::identity::issue_from_request(
            &net.dir.join("ca"),
            &node.district,
            &csr.pem().expect("request PEM"),
            &folder.join("node.crt"),
        )
        .expect("certificate");
        std::fs::write(folder.join("node.key"), key.serialize_pem()).expect("node key");
    }
    eprintln!("  BENCH_UNSIGNED=1: Ed25519 node keys, nothing signed, unsigned items accepted");
}
