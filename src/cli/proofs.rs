//! `migrex notice show --verify`: every signature of a notice's journey,
//! checked against what this node keeps (`service::proofs`);
//! `migrex notice evidence` writes the journey's evidence file and
//! `migrex verify` checks one with only the CA's certificate.

use super::args::Conn;
use crate::config::Settings;
use crate::identity::{TlsMaterial, Trust};
use crate::proof::evidence::{self, Evidence};
use crate::service::proofs::verify_journey;
use crate::setup::open_store;
use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;

pub async fn verify(id: &str, conn: &Conn) -> Result<()> {
    let config = conn.config_path().ok_or_else(|| {
        anyhow!("--config: --verify reads the node's own database; give the node's migrex.toml")
    })?;
    let (trust, store) = open(config).await?;
    let steps = verify_journey(&store, &trust, id.trim()).await;
    store.close().await;
    let steps = steps.map_err(|e| anyhow!("{e}"))?;
    let rows: Vec<Row> = steps
        .into_iter()
        .map(|s| (s.step, s.signer, s.failure, s.pending))
        .collect();
    report(id, &rows, conn.json)
}

/// The node's trust in its CA (with its revocation list) and its store.
async fn open(config: &Path) -> Result<(std::sync::Arc<Trust>, crate::store::Store)> {
    let settings = Settings::load(config)?;
    let tls = TlsMaterial::load(&settings.tls.ca_cert, &settings.tls.cert, &settings.tls.key)?;
    let trust = Trust::new(&tls, settings.tls.crl.clone())?;
    trust
        .refresh()
        .await
        .map_err(|e| anyhow!("tls.crl: the revocation list cannot be read: {e}"))?;
    let store = open_store(config)
        .await
        .with_context(|| format!("opening the database of {}", config.display()))?;
    Ok((trust, store))
}

/// A checked step: its name, its signer, what is wrong, and whether it is
/// this node's own not sent yet.
type Row = (String, String, Option<String>, bool);

/// Prints checked steps as a table or JSON and fails naming the first
/// that does not verify.
fn report(id: &str, steps: &[Row], json: bool) -> Result<()> {
    if json {
        let v: Vec<serde_json::Value> = steps
            .iter()
            .map(|(step, signer, failure, pending)| {
                serde_json::json!({"step": step, "signer": signer, "failure": failure, "pending": pending})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{:<48} {:<12} RESULT", "STEP", "SIGNER");
        for (step, signer, failure, pending) in steps {
            let result = match failure {
                Some(why) => why.as_str(),
                None if *pending => "not sent yet, signed when sent (待发出)",
                None => "verified (已验证)",
            };
            println!("{step:<48} {signer:<12} {result}");
        }
    }
    if let Some((step, _, Some(why), _)) = steps.iter().find(|s| s.2.is_some()) {
        bail!("notice {id}: step {step} does not verify: {why}");
    }
    Ok(())
}

/// `migrex notice evidence ID --config FILE --out FILE`.
pub async fn evidence(id: &str, config: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        bail!("--out: {} exists; give a new file name", out.display());
    }
    let settings = Settings::load(config)?;
    if !settings.audit_key.exists() {
        bail!(
            "audit_key: {} does not exist; the node creates it at its first start, and each evidence file is written to its access audit",
            settings.audit_key.display()
        );
    }
    let key = crate::audit::SubjectKey::load_or_create(&settings.audit_key)
        .with_context(|| format!("audit_key {}", settings.audit_key.display()))?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let (_, store) = open(config).await?;
    let made =
        crate::service::proofs::evidence_for_operator(&store, &key, &operator, id.trim()).await;
    store.close().await;
    let made = made.map_err(|e| anyhow!("{e}"))?;
    crate::files::write(out, &made.to_bytes())
        .with_context(|| format!("--out: cannot write {}", out.display()))?;
    eprintln!(
        "wrote {} ({} steps signed by {} certificate(s))",
        out.display(),
        made.steps.len(),
        made.certificates.len()
    );
    Ok(())
}

/// `migrex verify FILE --ca ca.crt [--crl ca.crl]`: the file's every step,
/// with only the CA (and its revocation list, when given).
pub fn verify_file(file: &Path, ca: &Path, crl: Option<&Path>, json: bool) -> Result<()> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let ca_pem = crate::files::read_bounded(ca, 1 << 20)
        .with_context(|| format!("--ca: cannot read {}", ca.display()))?;
    let ca_ders: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| anyhow!("--ca: {} is not a PEM certificate", ca.display()))?;
    if ca_ders.is_empty() {
        bail!("--ca: {} holds no certificate", ca.display());
    }
    let revoked = match crl {
        None => Default::default(),
        Some(path) => {
            let raw = std::fs::File::open(path)
                .and_then(|f| {
                    use std::io::Read;
                    let mut raw = Vec::new();
                    f.take(crate::identity::MAX_CRL_BYTES as u64 + 1)
                        .read_to_end(&mut raw)
                        .map(|_| raw)
                })
                .with_context(|| format!("--crl: cannot read {}", path.display()))?;
            if raw.len() > crate::identity::MAX_CRL_BYTES {
                bail!(
                    "--crl: {} is larger than a revocation list can be",
                    path.display()
                );
            }
            let source = crate::identity::CrlSource::File(path.to_path_buf());
            crate::identity::read_crls(&raw, &source, &ca_ders)
                .map_err(|e| anyhow!("--crl: {e}"))?
                .1
        }
    };
    let text = crate::files::read_bounded(file, evidence::MAX_BYTES)
        .with_context(|| format!("FILE: cannot read {}", file.display()))?;
    let e = Evidence::from_bytes(text.as_bytes()).map_err(|e| anyhow!("FILE: {e}"))?;
    let rows: Vec<Row> = e
        .check(&ca_ders, &revoked)
        .into_iter()
        .map(|c| (c.step, c.signer, c.failure, false))
        .collect();
    report(&e.notice_id, &rows, json)
}
