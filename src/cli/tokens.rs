//! `migrex token`: staff tokens for the desk — created with an id and an
//! optional expiry, listed, revoked by id or by holder.

use super::render::Local;
use crate::auth::Role;
use crate::setup::{issue_token, open_store};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;
use time::OffsetDateTime;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a staff token and print it once (only its hash is stored).
    #[command(
        after_help = "Examples:\n  migrex token create --config ./luohu/migrex.toml --role clerk --name zhang.wei\n  migrex token create --config ./luohu/migrex.toml --role monitor --name city.office --expires 90d\n  migrex token create --config ./luohu/migrex.toml --role clerk --name temp.help --expires 2026-12-31"
    )]
    Create {
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
        /// clerk, supervisor, monitor or admin.
        #[arg(long)]
        role: String,
        /// Who holds it (it signs their receipts and feedback); default: the role.
        #[arg(long)]
        name: Option<String>,
        /// When it stops working: a number of days (`90d`) or hours (`12h`)
        /// from now, or a last valid day (`2026-12-31`, through its end in
        /// the node's timezone). Default: until revoked.
        #[arg(long)]
        expires: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the node's tokens: id, holder, role, created, expires, revoked (never the token).
    #[command(after_help = "Example:\n  migrex token list --config ./luohu/migrex.toml --json")]
    List {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one token by its id, or every token of a holder (running
    /// nodes, every replica, refuse them within a second).
    #[command(
        after_help = "Examples:\n  migrex token revoke --config ./luohu/migrex.toml --id 7\n  migrex token revoke --config ./luohu/migrex.toml --name zhang.wei"
    )]
    Revoke {
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
        /// The token's id, as `token create` and `token list` print it.
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        id: Option<i64>,
        /// The holder's name: revokes every active token of it.
        #[arg(long)]
        name: Option<String>,
    },
}

/// When `--expires` says a token stops working, from `now`, with dates in `tz`.
pub fn expiry(text: &str, now: OffsetDateTime, tz: &time_tz::Tz) -> Result<OffsetDateTime> {
    use time_tz::PrimitiveDateTimeExt;
    let t = text.trim();
    let bad = || {
        anyhow::anyhow!(
            "--expires: {} is not a number of days (90d), hours (12h) or a date (2026-12-31)",
            crate::domain::quoted(t)
        )
    };
    let at = if let Some(n) = t.strip_suffix('d').and_then(|n| n.parse::<u32>().ok()) {
        now + time::Duration::days(i64::from(n))
    } else if let Some(n) = t.strip_suffix('h').and_then(|n| n.parse::<u32>().ok()) {
        now + time::Duration::hours(i64::from(n))
    } else {
        let day = crate::domain::parse_date("--expires", t).map_err(|_| bad())?;
        let next = day.next_day().ok_or_else(bad)?;
        next.midnight()
            .assume_timezone(tz)
            .take_first()
            .ok_or_else(bad)?
            .to_offset(time::UtcOffset::UTC)
    };
    if at <= now {
        bail!("--expires: {t} is already past");
    }
    Ok(at)
}

/// An instant for `--json`: RFC 3339 in UTC, as every command's JSON.
fn stamp(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An instant for text, in the node's timezone; "-" when absent.
fn shown(local: Local, t: Option<OffsetDateTime>) -> String {
    t.map(|t| local.time(t)).unwrap_or_else(|| "-".into())
}

pub async fn token(cmd: TokenCommand) -> Result<()> {
    let opened = |config: &PathBuf| {
        let config = config.clone();
        async move {
            open_store(&config)
                .await
                .with_context(|| format!("opening the database of {}", config.display()))
        }
    };
    match cmd {
        TokenCommand::Revoke { config, id, name } => {
            let store = opened(&config).await?;
            let now = OffsetDateTime::now_utc();
            let done = match (id, name) {
                (Some(id), _) => {
                    let revoked = store.revoke_token_id(id, now).await?;
                    store.close().await;
                    if !revoked {
                        bail!("--id: no active token has id {id} (see `migrex token list`)");
                    }
                    format!("token {id}")
                }
                (None, Some(name)) => {
                    let n = store.revoke_tokens(&name, now).await?;
                    store.close().await;
                    if n == 0 {
                        bail!(
                            "--name: no active token is named {}",
                            crate::domain::quoted(&name)
                        );
                    }
                    format!("{n} token(s) of {name}")
                }
                (None, None) => bail!("--id or --name: say which token to revoke"),
            };
            println!("revoked {done}; running nodes refuse it within a second");
            Ok(())
        }
        TokenCommand::List { config, json } => {
            let store = opened(&config).await?;
            let all = store.list_tokens().await?;
            store.close().await;
            if json {
                let rows: Vec<serde_json::Value> = all
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id, "name": t.name, "role": t.role,
                            "created_at": stamp(t.created_at),
                            "expires_at": t.expires_at.map(stamp),
                            "revoked_at": t.revoked_at.map(stamp),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let local = Local::of_config(&config)?;
                println!(
                    "{:>5}  {:<20} {:<10} {:<26} {:<26} revoked",
                    "id", "holder", "role", "created", "expires"
                );
                for t in &all {
                    println!(
                        "{:>5}  {:<20} {:<10} {:<26} {:<26} {}",
                        t.id,
                        t.name,
                        t.role,
                        shown(local, Some(t.created_at)),
                        shown(local, t.expires_at),
                        shown(local, t.revoked_at)
                    );
                }
            }
            Ok(())
        }
        TokenCommand::Create {
            config,
            role,
            name,
            expires,
            json,
        } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("--{e}"))?;
            let local = Local::of_config(&config)?;
            let expires = match expires {
                None => None,
                Some(text) => Some(expiry(&text, OffsetDateTime::now_utc(), local.0)?),
            };
            // The name signs receipts and feedback that peers receive: it must be usable there.
            let name = crate::domain::required_text(
                "--name",
                &name.unwrap_or_else(|| role.as_str().to_string()),
                100,
            )?;
            let store = opened(&config).await?;
            let (id, token) = issue_token(&store, &name, role, expires).await?;
            store.close().await;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": id, "name": name, "role": role.as_str(), "token": token,
                        "expires_at": expires.map(stamp),
                    })
                );
            } else {
                println!("{token}");
                eprintln!(
                    "token {id} for {name} ({}), {}; it is shown only this once",
                    role.as_str(),
                    match expires {
                        Some(e) => format!("valid until {}", local.time(e)),
                        None => "valid until revoked".into(),
                    }
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_days_hours_or_a_last_day() {
        let now = time::macros::datetime!(2026-11-23 10:00 UTC);
        let tz = time_tz::timezones::db::asia::SHANGHAI;
        assert_eq!(
            expiry("90d", now, tz).unwrap(),
            now + time::Duration::days(90)
        );
        assert_eq!(
            expiry("12h", now, tz).unwrap(),
            now + time::Duration::hours(12)
        );
        // Through 2026-12-31 in Shanghai: until 2027-01-01 00:00 +08.
        assert_eq!(
            expiry("2026-12-31", now, tz).unwrap(),
            time::macros::datetime!(2026-12-31 16:00 UTC)
        );
        assert!(
            expiry("2026-11-01", now, tz)
                .unwrap_err()
                .to_string()
                .contains("already past")
        );
        assert!(
            expiry("soon", now, tz)
                .unwrap_err()
                .to_string()
                .starts_with("--expires:")
        );
    }
}
