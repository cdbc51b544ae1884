//! `migrex audit`: the access audit (访问审计) on the node's machine —
//! check its chain, and answer an inquiry: who looked at this person, what
//! did this token or account look at.

use super::render::Local;
use crate::audit::checkpoint::Checkpoint;
use crate::audit::{Entry, SubjectKey};
use crate::config::Settings;
use crate::service::audit::{Inquiry, inquire, verify};
use crate::setup::open_store;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check that no entry was changed, removed or inserted since it was
    /// written; names the first broken entry (exit status 1).
    #[command(after_help = "Example:\n  migrex audit verify --config ./luohu/migrex.toml")]
    Verify {
        #[arg(long)]
        config: PathBuf,
    },
    /// Who read or changed notices about a person (--subject), or what a
    /// token or account did (--token, a holder's name or a token's id).
    #[command(
        after_help = "Examples:\n  migrex audit show --config ./luohu/migrex.toml --subject 51011619900101002X\n  migrex audit show --config ./luohu/migrex.toml --token li.na --json"
    )]
    Show {
        #[arg(long)]
        config: PathBuf,
        /// A person's ID number (it is hashed with the node's audit key, never stored).
        #[arg(long, required_unless_present = "token")]
        subject: Option<String>,
        /// A token holder's or console account's name, or a token's id.
        #[arg(long)]
        token: Option<String>,
        /// At most this many entries, oldest first.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

pub async fn audit(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Verify { config } => {
            let settings = Settings::load(&config)?;
            let key = match settings.audit_key.exists() {
                true => Some(
                    SubjectKey::load_or_create(&settings.audit_key)
                        .with_context(|| format!("audit_key {}", settings.audit_key.display()))?
                        .chain_key(),
                ),
                false => None,
            };
            let checkpoint = read_checkpoint(&settings)?;
            let store = open_store(&config)
                .await
                .with_context(|| format!("opening the database of {}", config.display()))?;
            let outcome = verify(&store, key, checkpoint.as_ref(), |n| {
                eprintln!("checked {n} entries …")
            })
            .await?;
            store.close().await;
            if let Some(b) = outcome.broken {
                bail!("{b}; the {} entries before it hold", outcome.checked);
            }
            let local = Local(settings.deadlines.tz);
            let when = |at: i64| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1000)
                    .map(|t| local.time(t))
                    .unwrap_or_default()
            };
            match (&checkpoint, &outcome.checkpoint) {
                (Some(c), Some(a)) => {
                    if let Some(why) = c.finding(a, when) {
                        bail!("{why}");
                    }
                    println!(
                        "the access audit's chain holds: {} entries checked; it holds the head its checkpoint of {} signed (entry {})",
                        outcome.checked,
                        when(c.at_micros),
                        c.seq
                    );
                }
                _ => println!(
                    "the access audit's chain holds: {} entries checked (no checkpoint yet: the node writes {} once it runs)",
                    outcome.checked,
                    crate::audit::checkpoint::path_beside(&settings.audit_key).display()
                ),
            }
            Ok(())
        }
        AuditCommand::Show {
            config,
            subject,
            token,
            limit,
            json,
        } => {
            let settings = Settings::load(&config)?;
            if !settings.audit_key.exists() {
                bail!(
                    "audit_key: {} does not exist; the node creates it at its first start",
                    settings.audit_key.display()
                );
            }
            let key = SubjectKey::load_or_create(&settings.audit_key)
                .with_context(|| format!("audit_key {}", settings.audit_key.display()))?;
            if let Some(s) = &subject {
                crate::domain::IdNumber::parse("--subject", s)?;
            }
            let store = open_store(&config)
                .await
                .with_context(|| format!("opening the database of {}", config.display()))?;
            let entries = inquire(
                &store,
                &key,
                &Inquiry {
                    subject,
                    actor: token,
                    after: 0,
                    limit,
                },
            )
            .await?;
            store.close().await;
            print(&entries, json, Local(settings.deadlines.tz))
        }
    }
}

/// The node's checkpoint, its signature checked against the node's own
/// certificate; a checkpoint that is not the node's is an error.
fn read_checkpoint(settings: &Settings) -> Result<Option<Checkpoint>> {
    let path = crate::audit::checkpoint::path_beside(&settings.audit_key);
    let Some(c) = Checkpoint::read(&path).with_context(|| format!("{}", path.display()))? else {
        return Ok(None);
    };
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let cert = CertificateDer::from_pem_file(&settings.tls.cert)
        .with_context(|| format!("tls.cert {}", settings.tls.cert.display()))?;
    if !c.signed_by(&cert) {
        bail!(
            "{}: not signed by this node's key (tls.cert {}): the checkpoint was replaced or edited",
            path.display(),
            settings.tls.cert.display()
        );
    }
    Ok(Some(c))
}

fn print(entries: &[Entry], json: bool, local: Local) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("no entries");
        return Ok(());
    }
    println!(
        "{:>7}  {:<25} {:<16} {:<6} {:<16} {:<38} address",
        "entry", "when", "who", "token", "operation", "notice"
    );
    for e in entries {
        println!(
            "{:>7}  {:<25} {:<16} {:<6} {:<16} {:<38} {}",
            e.seq,
            local.time(e.at),
            e.actor,
            e.token.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            e.operation,
            e.notice_id,
            e.address
        );
    }
    Ok(())
}
