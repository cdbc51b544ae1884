//! `migrex ca`: the network CA's work — issuing node certificates, listing
//! them, revoking them and signing the revocation list nodes load.

use super::render::Local;
use crate::domain::DistrictCode;
use crate::identity::{self, RevokeTarget};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a CA in an empty folder (ca.crt, ca.key 0600, an empty revocation list).
    #[command(
        after_help = "Example:\n  migrex ca create --ca-dir /root/migrex-ca --name \"Sichuan migrex CA\""
    )]
    Create {
        #[arg(long)]
        ca_dir: PathBuf,
        /// The CA's name in its certificate.
        #[arg(long, default_value = "migrex network CA")]
        name: String,
    },
    /// Issue a node certificate for a district from the CA (for a node set up on another machine).
    ///
    /// With --csr, for the key of a district's certificate request (`migrex
    /// init --request` made it on the node; the key never leaves it): only
    /// node.crt and a copy of ca.crt are written. Without, the key is made
    /// here and handed over with them (node.key).
    #[command(
        after_help = "Examples:\n  migrex ca issue --ca-dir ./ca --district 510116 --csr ./node.csr --out ./shuangliu-certs\n  migrex ca issue --ca-dir ./ca --district 510116 --out ./shuangliu-certs --host node.shuangliu.example"
    )]
    Issue {
        /// The CA folder (ca.crt, ca.key).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The district the certificate is for (6, 9 or 12 digits); a
        /// request must name it and no other.
        #[arg(long)]
        district: String,
        /// The district's certificate request (node.csr from `migrex init --request`).
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Folder for node.crt (and node.key, without --csr) and a copy of ca.crt.
        #[arg(long)]
        out: PathBuf,
        /// Host names or IP addresses the node is reached at (repeatable;
        /// with --csr the request's own are used).
        #[arg(long = "host", conflicts_with = "csr")]
        hosts: Vec<String>,
    },
    /// List the node certificates the CA issued (serial, district, expiry, revoked).
    #[command(
        after_help = "Examples:\n  migrex ca list --ca-dir ./ca\n  migrex ca list --ca-dir ./ca --timezone Asia/Urumqi\n  migrex ca list --ca-dir ./ca --json      # times in UTC (RFC 3339)"
    )]
    List {
        #[arg(long)]
        ca_dir: PathBuf,
        /// The timezone the table's times are shown in.
        #[arg(long, default_value = "Asia/Shanghai", env = "MIGREX_TIMEZONE")]
        timezone: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke node certificates (吊销证书) and sign a new revocation list (ca-dir/crl.pem).
    ///
    /// Nodes whose config names the list (`tls.crl`, a file or an http:// URL
    /// serving it) refuse the certificate on their next read of it (every
    /// `tls.crl_refresh_secs`, 60 s by default), on new connections and on
    /// those already open, without a restart.
    #[command(
        after_help = "Examples:\n  migrex ca revoke --ca-dir ./ca --district 411302\n  migrex ca revoke --ca-dir ./ca --serial 5A0F3C...\n\nRevoking by district revokes every certificate the CA issued to it:\nrevoke first, then issue the district's new certificate."
    )]
    Revoke {
        #[arg(long)]
        ca_dir: PathBuf,
        /// Revoke every certificate issued to this district.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        district: Option<String>,
        /// Revoke one certificate by its serial (hex, as `migrex ca list` prints).
        #[arg(long)]
        serial: Option<String>,
    },
    /// Sign the revocation list again (ca-dir/crl.pem) without revoking anything new.
    #[command(after_help = "Example:\n  migrex ca crl --ca-dir ./ca")]
    Crl {
        #[arg(long)]
        ca_dir: PathBuf,
    },
}

pub(super) fn need_ca(ca_dir: &Path) -> Result<()> {
    if !identity::ca_paths(ca_dir).1.exists() {
        bail!(
            "--ca-dir: no ca.key in {}; create a CA with `migrex init --ca-dir {}`",
            ca_dir.display(),
            ca_dir.display()
        );
    }
    Ok(())
}

pub async fn ca(cmd: CaCommand) -> Result<()> {
    match cmd {
        CaCommand::Create { ca_dir, name } => {
            if !identity::ensure_ca(&ca_dir, &name)? {
                bail!("--ca-dir: {} holds a CA already", ca_dir.display());
            }
            identity::write_crl(&ca_dir, time::OffsetDateTime::now_utc())?;
            println!(
                "created a CA in {} (keep ca.key offline and private)",
                ca_dir.display()
            );
            Ok(())
        }
        CaCommand::Issue {
            ca_dir,
            district,
            csr,
            out,
            hosts,
        } => {
            let district = DistrictCode::parse("--district", &district)?;
            need_ca(&ca_dir)?;
            let serial = match &csr {
                Some(csr) => {
                    let pem = crate::files::read_bounded(csr, 64 << 10)
                        .with_context(|| format!("--csr: cannot read {}", csr.display()))?;
                    crate::files::create_dir_all(&out)
                        .with_context(|| format!("--out: cannot create {}", out.display()))?;
                    identity::issue_from_request(&ca_dir, &district, &pem, &out.join("node.crt"))?
                }
                None => identity::issue_node_cert(
                    &ca_dir,
                    &district,
                    &hosts,
                    &out.join("node.crt"),
                    &out.join("node.key"),
                )?,
            };
            std::fs::copy(identity::ca_paths(&ca_dir).0, out.join("ca.crt"))
                .context("copying ca.crt")?;
            println!(
                "issued certificate {serial} for {district} ({}) in {}",
                district.county_name(),
                out.display()
            );
            Ok(())
        }
        CaCommand::List {
            ca_dir,
            timezone,
            json,
        } => {
            let local = Local::named(&timezone).map_err(|e| anyhow::anyhow!("--timezone: {e}"))?;
            need_ca(&ca_dir)?;
            let all = identity::issued(&ca_dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no certificates in the ledger of {}", ca_dir.display());
            } else {
                println!(
                    "{:<34} {:<12} {:<26} revoked (吊销)",
                    "serial", "district", "expires"
                );
                for i in &all {
                    println!(
                        "{:<34} {:<12} {:<26} {}",
                        i.serial,
                        i.district,
                        local.time_text(&i.expires),
                        i.revoked
                            .as_deref()
                            .map(|r| local.time_text(r))
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
            Ok(())
        }
        CaCommand::Revoke {
            ca_dir,
            district,
            serial,
        } => {
            need_ca(&ca_dir)?;
            let target = match (district, serial) {
                (Some(d), _) => RevokeTarget::District(DistrictCode::parse("--district", &d)?),
                (None, Some(s)) => RevokeTarget::Serial(s),
                (None, None) => bail!("--district or --serial: say what to revoke"),
            };
            let newly = identity::revoke(&ca_dir, &target, time::OffsetDateTime::now_utc())?;
            let crl = identity::crl_path(&ca_dir);
            if newly.is_empty() {
                println!(
                    "already revoked; the list {} was signed again",
                    crl.display()
                );
            } else {
                for s in &newly {
                    println!("revoked {s}");
                }
                println!(
                    "signed {}; nodes that read it refuse the certificate within their crl_refresh_secs",
                    crl.display()
                );
            }
            Ok(())
        }
        CaCommand::Crl { ca_dir } => {
            need_ca(&ca_dir)?;
            let path = identity::write_crl(&ca_dir, time::OffsetDateTime::now_utc())?;
            println!("signed {}", path.display());
            Ok(())
        }
    }
}
