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
    #[command(
        after_help = "Checks the chain, compares it with the node's signed checkpoint and with the signed heads its peers keep (witnesses).\n\nExamples:\n  migrex audit verify --config ./luohu/migrex.toml\n  migrex audit verify --config ./luohu/migrex.toml --offline"
    )]
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// Do not ask the peers for the heads of this audit they keep.
        #[arg(long)]
        offline: bool,
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
        AuditCommand::Verify { config, offline } => {
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
            .await;
            let local = Local(settings.deadlines.tz);
            let when = |at: i64| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1000)
                    .map(|t| local.time(t))
                    .unwrap_or_default()
            };
            let witnessed = match &outcome {
                Ok(o) if !offline && o.broken.is_none() => {
                    let length = i64::try_from(o.checked).unwrap_or(i64::MAX);
                    Some(witnesses(&settings, &store, length, &when).await)
                }
                _ => None,
            };
            store.close().await;
            let outcome = outcome?;
            if let Some(b) = outcome.broken {
                bail!("{b}; the {} entries before it hold", outcome.checked);
            }
            let mut findings = Vec::new();
            match (&checkpoint, &outcome.checkpoint) {
                (Some(c), Some(a)) => match c.finding(a, when) {
                    Some(why) => findings.push(why),
                    None => println!(
                        "the access audit's chain holds: {} entries checked; it holds the head its checkpoint of {} signed (entry {})",
                        outcome.checked,
                        when(c.at_micros),
                        c.seq
                    ),
                },
                _ => println!(
                    "the access audit's chain holds: {} entries checked (no checkpoint yet: the node writes {} once it runs)",
                    outcome.checked,
                    crate::audit::checkpoint::path_beside(&settings.audit_key).display()
                ),
            }
            if let Some(w) = witnessed {
                let (lines, found) = w?;
                for line in lines {
                    println!("{line}");
                }
                findings.extend(found);
            }
            for f in findings.iter().skip(1) {
                eprintln!("also: {f}");
            }
            if let Some(first) = findings.first() {
                bail!("{first}");
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

/// What the peers keep of this node's audit (witnesses), compared with the
/// chain of `length` entries: the lines to print, and the findings (a head
/// the chain no longer holds). A peer that cannot be asked is said, not a
/// finding.
async fn witnesses(
    settings: &Settings,
    store: &crate::store::Store,
    length: i64,
    when: &impl Fn(i64) -> String,
) -> Result<(Vec<String>, Vec<String>)> {
    use crate::identity::{TlsMaterial, Trust};
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let tls = TlsMaterial::load(&settings.tls.ca_cert, &settings.tls.cert, &settings.tls.key)?;
    let trust = Trust::new(&tls, settings.tls.crl.clone())?;
    trust
        .refresh()
        .await
        .map_err(|e| anyhow::anyhow!("tls.crl: the revocation list cannot be read: {e}"))?;
    let routes = crate::routing::Routes::new(settings.district.clone(), settings.routes.clone());
    if let Some(d) = &settings.directory
        && let Some(held) = crate::directory::watch::held(d, &tls.ca_ders()?)
    {
        routes.apply(held);
    }
    let cert = CertificateDer::from_pem_file(&settings.tls.cert)
        .with_context(|| format!("tls.cert {}", settings.tls.cert.display()))?;
    let now = time::OffsetDateTime::now_utc();
    let peers = crate::exchange::witness::recent_peers(store, settings.deadlines.tz, now).await?;
    let today = time_tz::OffsetDateTimeExt::to_timezone(&now, settings.deadlines.tz).date();
    eprintln!(
        "asking {} peer(s) for the heads of this audit they keep …",
        peers.len()
    );
    let mut asked = crate::exchange::witness::ask((&tls, &trust), &routes, today, peers).await;
    asked.sort_by(|a, b| a.peer.cmp(&b.peer));
    let (mut lines, mut findings) = (Vec::new(), Vec::new());
    for w in asked {
        let peer = w.peer;
        let heads = match w.heads {
            Err(why) => {
                lines.push(format!("peer {peer}: not asked ({why})"));
                continue;
            }
            Ok(h) if h.is_empty() => {
                lines.push(format!("peer {peer}: keeps no head of this audit yet"));
                continue;
            }
            Ok(h) => h,
        };
        for h in heads {
            if !h.signed_by(&cert) {
                lines.push(format!(
                    "peer {peer}: keeps a head (entry {}) not signed by this node's current key; not compared",
                    h.seq
                ));
                continue;
            }
            let agreement = crate::service::audit::against(store, length, &h).await?;
            match h.finding_as(&agreement, &format!("the head peer {peer} keeps"), when) {
                Some(f) => findings.push(f),
                None => lines.push(format!(
                    "peer {peer}: the chain holds the head it keeps (entry {}, signed {})",
                    h.seq,
                    when(h.at_micros)
                )),
            }
        }
    }
    Ok((lines, findings))
}
