//! `migrex audit`: the access audit (访问审计) on the node's machine —
//! check its chain, and answer an inquiry: who looked at this person, what
//! did this token or account look at.

use super::render::Local;
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
            let store = open_store(&config)
                .await
                .with_context(|| format!("opening the database of {}", config.display()))?;
            let outcome = verify(&store, |n| eprintln!("checked {n} entries …")).await?;
            store.close().await;
            match outcome.broken {
                None => {
                    println!(
                        "the access audit's chain holds: {} entries checked",
                        outcome.checked
                    );
                    Ok(())
                }
                Some(b) => bail!("{b}; the {} entries before it hold", outcome.checked),
            }
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
