//! A node's directory: read from its sources (files or URLs, tried in
//! turn) at start and then every `refresh`, checked (the network CA's
//! signature, not expired, not older than the one held) and applied to the
//! node's routes without a restart. The last good document is kept in a
//! file beside the config (`held`), so a node that restarts while the
//! authority is unreachable routes as before, and never takes a document
//! older than one it once held. What is refused changes nothing; the log
//! says why, `/metrics` counts it and shows the held serial and expiry.

use super::{Directory, DirectoryError, MAX_BYTES};
use crate::config::DirectorySettings;
use crate::context::NodeCtx;
use crate::fetch::fetch;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How one reading ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A newer document was applied.
    Applied { serial: u64, districts: usize },
    /// The sources hold the document already applied.
    Unchanged { serial: u64 },
}

/// The held document, if one was kept and its signature is still the
/// network CA's (its expiry is not checked: the last good one is used
/// until a newer one comes, and `/metrics` shows when it expired).
pub fn held(settings: &DirectorySettings, ca_ders: &[Vec<u8>]) -> Option<Directory> {
    let bytes = std::fs::read(&settings.held).ok()?;
    match Directory::verify(&bytes, ca_ders) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(file = %settings.held.display(), error = %e, "the kept directory does not verify; ignoring it");
            None
        }
    }
}

/// Reads the sources in turn and applies the first document that is
/// newer than the one in use; the error of the last source when none
/// could be taken.
pub async fn refresh(ctx: &NodeCtx) -> Result<Outcome, DirectoryError> {
    let Some(settings) = &ctx.directory else {
        return Ok(Outcome::Unchanged { serial: 0 });
    };
    let ca_ders = ctx.tls.ca_ders()?;
    let https = ctx.tls.authority_client_config()?;
    let now = ctx.now();
    let held = ctx.routes.directory().map(|d| d.serial);
    let mut last = None;
    for source in &settings.sources {
        let started = std::time::Instant::now();
        let got = match fetch(source, MAX_BYTES, Some(&https)).await {
            Ok(bytes) => Directory::verify(&bytes, &ca_ders)
                .and_then(|d| d.accept(held, now).map(|()| (d, bytes))),
            Err(e) => Err(DirectoryError::Envelope(e.to_string())),
        };
        match got {
            Ok((d, _)) if Some(d.serial) == held => {
                if ctx.routes.directory().is_some_and(|h| *h == d) {
                    return Ok(Outcome::Unchanged { serial: d.serial });
                }
                let e = DirectoryError::SameSerial(d.serial);
                tracing::warn!(source = %source, error = %e, "network directory not taken from this source");
                last = Some(e);
            }
            Ok((d, bytes)) => {
                let (serial, districts) = (d.serial, d.districts.len());
                // Kept before it is used: a crash after this starts with it.
                if let Err(e) = crate::files::replace(&settings.held, &bytes) {
                    tracing::warn!(file = %settings.held.display(), error = %e, "cannot keep the directory; it is used until the next start");
                }
                ctx.routes.apply(d);
                tracing::info!(source = %source, serial, districts, ms = started.elapsed().as_millis() as u64, "network directory applied");
                return Ok(Outcome::Applied { serial, districts });
            }
            Err(e) => {
                tracing::warn!(source = %source, error = %e, "network directory not taken from this source");
                last = Some(e);
            }
        }
    }
    ctx.metrics.directory_refused();
    Err(last.unwrap_or(DirectoryError::Envelope("no source is configured".into())))
}

/// Reads the directory again every `refresh` until `shutdown`.
pub async fn watch(ctx: Arc<NodeCtx>, shutdown: CancellationToken) {
    let Some(every) = ctx.directory.as_ref().map(|s| s.refresh) else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = refresh(&ctx).await {
            tracing::warn!(error = %e, "network directory: keeping the one in use");
        }
    }
}
