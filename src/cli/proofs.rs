//! `migrex notice show --verify`: every signature of a notice's journey,
//! checked against what this node keeps (`service::proofs`).

use super::args::Conn;
use crate::config::Settings;
use crate::identity::{TlsMaterial, Trust};
use crate::service::proofs::verify_journey;
use crate::setup::open_store;
use anyhow::{Context, Result, anyhow, bail};

pub async fn verify(id: &str, conn: &Conn) -> Result<()> {
    let config = conn.config_path().ok_or_else(|| {
        anyhow!("--config: --verify reads the node's own database; give the node's migrex.toml")
    })?;
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
    let steps = verify_journey(&store, &trust, id.trim()).await;
    store.close().await;
    let steps = steps.map_err(|e| anyhow!("{e}"))?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&steps)?);
    } else {
        println!("{:<48} {:<12} RESULT", "STEP", "SIGNER");
        for s in &steps {
            println!(
                "{:<48} {:<12} {}",
                s.step,
                s.signer,
                s.failure.as_deref().unwrap_or("verified (已验证)")
            );
        }
    }
    if let Some(bad) = steps.iter().find(|s| !s.verified()) {
        bail!(
            "notice {id}: step {} does not verify: {}",
            bad.step,
            bad.failure.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}
