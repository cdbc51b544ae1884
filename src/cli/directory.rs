//! `migrex directory`: the network authority builds and signs the network
//! directory (通讯录) from a plain file; anyone prints a signed one.

use super::render::Local;
use crate::directory::{Directory, source};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DirectoryCommand {
    /// Build the signed directory from a plain file (network.toml) with the CA's key.
    ///
    /// network.toml lists each district (`[[district]]`: code, endpoints,
    /// certificate or fingerprint, relay) and each division-code change
    /// (`[[change]]`: old, successor, effective); `serial` (default: the
    /// time in seconds) and `valid_days` (default 30) at the top.
    #[command(
        after_help = "Example:\n  migrex directory build --in network.toml --ca-dir ./ca --out directory.signed\n\nnetwork.toml:\n  valid_days = 30\n  [[district]]\n  code = \"440303\"\n  endpoints = [\"https://node.luohu.example:7401\"]\n  certificate = \"certs/440303.crt\"\n  [[district]]\n  code = \"440304\"\n  relay = \"440300\""
    )]
    Build {
        /// The plain file.
        #[arg(long = "in")]
        input: PathBuf,
        /// The CA folder (ca.key signs).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Where the signed directory is written (replaced whole).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a signed directory after checking its signature against a CA certificate.
    #[command(
        after_help = "Examples:\n  migrex directory show directory.signed --ca-cert ./ca/ca.crt\n  migrex directory show directory.signed --ca-cert ./ca/ca.crt --json"
    )]
    Show {
        /// The signed directory.
        file: PathBuf,
        /// The network CA's certificate.
        #[arg(long)]
        ca_cert: PathBuf,
        /// The timezone times are shown in.
        #[arg(long, default_value = "Asia/Shanghai", env = "MIGREX_TIMEZONE")]
        timezone: String,
        /// Print the document as JSON (times in UTC).
        #[arg(long)]
        json: bool,
    },
}

pub async fn directory(cmd: DirectoryCommand) -> Result<()> {
    match cmd {
        DirectoryCommand::Build { input, ca_dir, out } => {
            super::ca::need_ca(&ca_dir)?;
            let previous = source::previous_serial(&out, &ca_dir);
            let d = source::build(&input, time::OffsetDateTime::now_utc(), previous)
                .with_context(|| format!("--in {}", input.display()))?;
            let signed = d.sign(&ca_dir)?;
            crate::files::replace(&out, &signed)
                .with_context(|| format!("--out {}", out.display()))?;
            println!(
                "wrote {} (serial {}, {} districts, {} code changes, expires {})",
                out.display(),
                d.serial,
                d.districts.len(),
                d.changes.len(),
                Local::shanghai().time(d.expires_at)
            );
            Ok(())
        }
        DirectoryCommand::Show {
            file,
            ca_cert,
            timezone,
            json,
        } => {
            let local = Local::named(&timezone).map_err(|e| anyhow::anyhow!("--timezone: {e}"))?;
            let ca = std::fs::read(&ca_cert)
                .with_context(|| format!("--ca-cert {}", ca_cert.display()))?;
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let ca_ders = CertificateDer::pem_slice_iter(&ca)
                .map(|c| c.map(|c| c.to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    anyhow::anyhow!("--ca-cert {}: no PEM certificate in it", ca_cert.display())
                })?;
            let bytes = crate::fetch::fetch(
                &crate::fetch::Source::File(file.clone()),
                crate::directory::MAX_BYTES,
                None,
            )
            .await?;
            let d = Directory::verify(&bytes, &ca_ders)
                .with_context(|| format!("{}", file.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d.to_json())?);
                return Ok(());
            }
            let expired = if d.expires_at <= time::OffsetDateTime::now_utc() {
                "  (EXPIRED 已过期)"
            } else {
                ""
            };
            println!(
                "network directory (通讯录) serial {}, signed by the network CA",
                d.serial
            );
            println!("issued  {}", local.time(d.issued_at));
            println!("expires {}{expired}", local.time(d.expires_at));
            println!();
            println!(
                "{:<12} {:<10} {:<44} {:<12} certificate (SHA-256)",
                "district", "name", "endpoints", "relay (中转)"
            );
            for e in &d.districts {
                println!(
                    "{:<12} {:<10} {:<44} {:<12} {}",
                    e.code.as_str(),
                    e.code.county_name(),
                    if e.endpoints.is_empty() {
                        "-".to_string()
                    } else {
                        e.endpoints.join(" ")
                    },
                    e.relay
                        .as_ref()
                        .map_or("-".to_string(), ToString::to_string),
                    e.fingerprint
                        .as_deref()
                        .map_or("-".to_string(), |f| format!("{}…", &f[..16])),
                );
            }
            if !d.changes.is_empty() {
                println!();
                println!("division-code changes (区划变更):");
                for c in &d.changes {
                    println!(
                        "  {} → {} {} from {}",
                        c.old,
                        c.successor,
                        c.successor.county_name(),
                        c.effective
                    );
                }
            }
            Ok(())
        }
    }
}
