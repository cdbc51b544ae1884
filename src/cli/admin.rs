//! Setting a node up and running it: `init`, `peer add|list`, `user add`,
//! `backup`, `store copy`, `serve` (the CA's commands are in `cli::ca`,
//! tokens in `cli::tokens`).

use super::{init_tracing, wait_for_signal};
use crate::auth::Role;
use crate::clock::SystemClock;
use crate::config::{Config, PeerChange};
use crate::domain::{DistrictCode, RoutePrefix};
use crate::node::Node;
use crate::setup::{NodeCerts, init_node, open_store};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// This node's district code (6, 9 or 12 digits).
    #[arg(long)]
    district: String,
    /// The node's folder (created).
    #[arg(long)]
    dir: PathBuf,
    /// Exchange listener address (peers).
    #[arg(long, default_value = "127.0.0.1:7401")]
    listen: String,
    /// Desk listener address (staff).
    #[arg(long, default_value = "127.0.0.1:7402")]
    desk_listen: String,
    /// Ops listener address (/healthz, /readyz).
    #[arg(long, default_value = "127.0.0.1:7403")]
    ops_listen: String,
    /// Web console listener address (HTTPS, staff in a browser); "" for none.
    #[arg(long, default_value = "127.0.0.1:7404")]
    console_listen: String,
    /// CA folder; a development CA is created there if it holds none. Default: DIR/../ca.
    #[arg(long, conflicts_with = "ca_cert")]
    ca_dir: Option<PathBuf>,
    /// Join a network whose CA is elsewhere: the network CA's certificate
    /// from the CA holder (`migrex ca issue --out` hands it over with
    /// node.crt and node.key, which are taken from beside it unless
    /// --cert/--key say otherwise). Checked, then copied into DIR.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// The node certificate issued for --district (with --ca-cert).
    #[arg(long, requires = "ca_cert")]
    cert: Option<PathBuf>,
    /// The node certificate's private key (with --ca-cert; default: the
    /// key `--request` made in DIR, else node.key beside --ca-cert).
    #[arg(long, requires = "ca_cert")]
    key: Option<PathBuf>,
    /// Make the node's key here (DIR/node.key, never to leave the machine)
    /// and a certificate request for it (DIR/node.csr) to send the CA
    /// holder; nothing else is written. Then `init --ca-cert … --cert …`
    /// with the certificate that comes back.
    #[arg(long, conflicts_with_all = ["ca_cert", "ca_dir"])]
    request: bool,
    /// The network's revocation list (a file or http:// URL) for `tls.crl`
    /// (with --ca-cert; with --ca-dir the CA folder's crl.pem is used).
    #[arg(long, requires = "ca_cert")]
    crl: Option<String>,
    /// Extra host names or IP addresses for the node's certificate (repeatable).
    #[arg(long = "host", conflicts_with = "ca_cert")]
    hosts: Vec<String>,
    /// The store: a SQLite file (relative to DIR) or the postgres://USER:PASSWORD@HOST/DB
    /// URL of an existing, empty PostgreSQL database.
    #[arg(long, default_value = "migrex.db")]
    database: String,
    /// Make this folder a node of a database that already holds one's data
    /// (without it, such a database is refused); a new admin token is added.
    #[arg(long)]
    adopt: bool,
    /// Route by the network directory (通讯录) published here: an http://
    /// or https:// URL or a file (repeatable: tried in turn). Sets
    /// `[directory] sources`; without it the node routes by hand only.
    #[arg(long = "directory")]
    directory: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Add a route, or change its endpoint: destinations starting with DISTRICT go to ENDPOINT.
    #[command(
        after_help = "Example:\n  migrex peer add --config ./luohu/migrex.toml --district 510116 --endpoint https://127.0.0.1:7411"
    )]
    Add {
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
        /// A district code or prefix (2-12 digits); the longest matching prefix wins.
        #[arg(long)]
        district: String,
        /// The peer's exchange listener, https://HOST:PORT.
        #[arg(long)]
        endpoint: String,
    },
    /// List the routes.
    #[command(after_help = "Example:\n  migrex peer list --config ./luohu/migrex.toml --json")]
    List {
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy a node's whole state into an empty store and verify it (counts and a checksum per table).
    #[command(
        after_help = "Example (stop the node first; deploy/README.md \"Moving to PostgreSQL\"):\n  migrex store copy --from /var/lib/migrex/migrex.db --to postgres://migrex:PASSWORD@127.0.0.1/migrex"
    )]
    Copy {
        /// The store to copy: a SQLite file, a sqlite:// or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// An empty store to copy into (its schema is created): usually a postgres:// URL.
        #[arg(long)]
        to: String,
        /// The node's timezone (its config's `timezone`).
        #[arg(long, default_value = "Asia/Shanghai")]
        timezone: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a web console account (its password is read from standard input).
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | migrex user add --config ./luohu/migrex.toml --name wang.fang --role clerk --password-stdin"
    )]
    Add {
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
        /// The account's user name (no spaces); it signs the receipts and feedback given.
        #[arg(long)]
        name: String,
        /// clerk, supervisor, monitor or admin.
        #[arg(long)]
        role: String,
        /// Read the password (at least 10 characters) from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// The console accounts: name, role, created, locked, disabled.
    #[command(after_help = "Example:\n  migrex user list --config ./luohu/migrex.toml --json")]
    List {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Disable an account (停用): it cannot log in, its sessions end at once.
    #[command(
        after_help = "Example:\n  migrex user disable --config ./luohu/migrex.toml --name wang.fang"
    )]
    Disable(UserName),
    /// Enable a disabled account again.
    #[command(
        after_help = "Example:\n  migrex user enable --config ./luohu/migrex.toml --name wang.fang"
    )]
    Enable(UserName),
    /// Delete an account and its sessions (what it signed stays signed).
    #[command(
        after_help = "Example:\n  migrex user delete --config ./luohu/migrex.toml --name wang.fang"
    )]
    Delete(UserName),
    /// Lift the lock that failed logins put on an account.
    #[command(
        after_help = "Example:\n  migrex user unlock --config ./luohu/migrex.toml --name wang.fang"
    )]
    Unlock(UserName),
    /// Give an account another role; its sessions end at once.
    #[command(
        after_help = "Example:\n  migrex user set-role --config ./luohu/migrex.toml --name wang.fang --role supervisor"
    )]
    SetRole {
        #[command(flatten)]
        who: UserName,
        /// clerk, supervisor, monitor or admin.
        #[arg(long)]
        role: String,
    },
    /// Give an account a new password (from standard input) that its holder
    /// must change at the next login; its sessions end at once.
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$NEW\" | migrex user reset-password --config ./luohu/migrex.toml --name wang.fang --password-stdin"
    )]
    ResetPassword {
        #[command(flatten)]
        who: UserName,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// The account a `migrex user` command changes.
#[derive(Args, Debug)]
pub struct UserName {
    /// The node's migrex.toml.
    #[arg(long)]
    config: PathBuf,
    /// The account's name.
    #[arg(long)]
    name: String,
}

fn read_password_line() -> Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    Ok(password.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn user(cmd: UserCommand) -> Result<()> {
    use crate::auth::accounts::AccountChange;
    match cmd {
        UserCommand::List { config, json } => {
            let store = open_store(&config)
                .await
                .with_context(|| format!("opening the database of {}", config.display()))?;
            let users = store.list_users().await?;
            store.close().await;
            let local = super::render::Local::of_config(&config)?;
            let now = time::OffsetDateTime::now_utc();
            if json {
                let rows: Vec<serde_json::Value> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "name": u.name, "role": u.role,
                            "created_at": u.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                            "locked": u.locked_until.is_some_and(|t| t > now),
                            "disabled": u.disabled,
                            "must_change_password": u.must_change_password,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<24} {:<10} {:<26} state", "name", "role", "created");
                for u in &users {
                    let mut state = vec![];
                    if u.disabled {
                        state.push("DISABLED(停用)".to_string());
                    }
                    if let Some(t) = u.locked_until.filter(|t| *t > now) {
                        state.push(format!("LOCKED until {}", local.time(t)));
                    }
                    if u.must_change_password {
                        state.push("MUST-CHANGE-PASSWORD".into());
                    }
                    println!(
                        "{:<24} {:<10} {:<26} {}",
                        u.name,
                        u.role,
                        local.time(u.created_at),
                        if state.is_empty() {
                            "active".into()
                        } else {
                            state.join(" ")
                        }
                    );
                }
            }
            Ok(())
        }
        UserCommand::Disable(who) => change_user(who, AccountChange::Disable).await,
        UserCommand::Enable(who) => change_user(who, AccountChange::Enable).await,
        UserCommand::Delete(who) => change_user(who, AccountChange::Delete).await,
        UserCommand::Unlock(who) => change_user(who, AccountChange::Unlock).await,
        UserCommand::SetRole { who, role } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("--{e}"))?;
            change_user(who, AccountChange::SetRole(role)).await
        }
        UserCommand::ResetPassword {
            who,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("--password-stdin: give the password on standard input (it is never a flag)");
            }
            change_user(who, AccountChange::ResetPassword(read_password_line()?)).await
        }

        UserCommand::Add {
            config,
            name,
            role,
            password_stdin,
        } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("--{e}"))?;
            if !password_stdin {
                bail!("--password-stdin: give the password on standard input (it is never a flag)");
            }
            let password = read_password_line()?;
            let password = password.as_str();
            let store = open_store(&config)
                .await
                .with_context(|| format!("opening the database of {}", config.display()))?;
            let made = crate::auth::accounts::create_user(
                &store,
                &name,
                role,
                password,
                time::OffsetDateTime::now_utc(),
            )
            .await;
            store.close().await;
            match made {
                Err(crate::auth::accounts::AccountError::Refused(e)) => bail!("--{e}"),
                other => other?,
            }
            println!("console account {name} ({}) created", role.as_str());
            Ok(())
        }
    }
}

pub async fn peer(cmd: PeerCommand) -> Result<()> {
    match cmd {
        PeerCommand::Add {
            config,
            district,
            endpoint,
        } => {
            Config::load(&config)?;
            let prefix = RoutePrefix::parse("--district", &district)?;
            let done = match crate::config::upsert_peer(&config, &prefix, &endpoint)? {
                PeerChange::Unchanged => {
                    println!(
                        "route {prefix} → {endpoint} is already in {}",
                        config.display()
                    );
                    return Ok(());
                }
                PeerChange::Added => "added",
                PeerChange::Replaced(_) => "changed",
            };
            println!(
                "route {prefix} → {endpoint} {done} in {} (restart `migrex serve` to use it)",
                config.display()
            );
            Ok(())
        }
        PeerCommand::List { config, json } => {
            let (c, _) = Config::load(&config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c.peers)?);
            } else if c.peers.is_empty() {
                println!("no peers (对端) yet; add one with `migrex peer add`");
            } else {
                println!("{:<12} endpoint", "prefix");
                for p in &c.peers {
                    println!("{:<12} {}", p.prefix, p.endpoint);
                }
            }
            Ok(())
        }
    }
}

/// One administrator's change to the account `who` names.
async fn change_user(who: UserName, change: crate::auth::accounts::AccountChange) -> Result<()> {
    use crate::auth::accounts::{AccountChange, AccountError, change_account};
    let UserName { config, name } = who;
    let store = open_store(&config)
        .await
        .with_context(|| format!("opening the database of {}", config.display()))?;
    let done = change_account(&store, &name, change.clone()).await;
    store.close().await;
    match done {
        Err(AccountError::Refused(e)) => bail!("--{e}"),
        other => other?,
    }
    println!(
        "account {} {}; running nodes apply it at its next request",
        name.trim(),
        match change {
            AccountChange::Disable => "disabled (停用), its sessions ended",
            AccountChange::Enable => "enabled",
            AccountChange::Delete => "deleted, its sessions ended",
            AccountChange::SetRole(_) => "has its new role, its sessions ended",
            AccountChange::Unlock => "unlocked",
            AccountChange::ResetPassword(_) =>
                "has a new password, to be changed at the next login; its sessions ended",
        }
    );
    Ok(())
}

/// `migrex backup`: an online copy of the SQLite store.
pub async fn backup(config: PathBuf, out: PathBuf) -> Result<()> {
    if out.exists() {
        bail!("--out: {} exists already; name a new file", out.display());
    }
    let store = open_store(&config)
        .await
        .with_context(|| format!("opening the database of {}", config.display()))?;
    let path = out
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("--out: the path must be UTF-8"))?;
    store
        .backup(path)
        .await
        .with_context(|| format!("--out: writing {}", out.display()))?;
    store.close().await;
    println!(
        "database of {} copied to {}",
        config.display(),
        out.display()
    );
    Ok(())
}

pub async fn store(cmd: StoreCommand) -> Result<()> {
    match cmd {
        StoreCommand::Copy {
            from,
            to,
            timezone,
            json,
        } => store_copy(&from, &to, &timezone, json).await,
    }
}

async fn store_copy(from: &str, to: &str, timezone: &str, json: bool) -> Result<()> {
    let tz = crate::calendar::timezone(timezone).map_err(|e| anyhow::anyhow!("--timezone: {e}"))?;
    if from == to {
        bail!("--to: it is the same store as --from");
    }
    let is_url = |s: &str| s.contains("://") || s.starts_with("sqlite:");
    if !is_url(from) && !Path::new(from).exists() {
        bail!("--from: {from} does not exist");
    }
    // A node writing to it would make the copy a mix of two moments.
    match crate::store::sqlite_in_use(from) {
        Ok(false) => {}
        Ok(true) => bail!(
            "--from: {from} is open in another process (a running node?); stop the node first (systemctl stop migrex)"
        ),
        Err(e) => bail!("--from: cannot tell whether a node has {from} open: {e}"),
    }
    let source = crate::store::Store::open(from, tz)
        .await
        .with_context(|| "--from: cannot open the store")?;
    let target = crate::store::Store::open(to, tz)
        .await
        .with_context(|| "--to: cannot open the store")?;
    let mut last = String::new();
    let report = source
        .copy_into(&target, |table, rows| {
            if table != last || rows % 50_000 == 0 {
                eprintln!("copying {table}: {rows} rows");
                last = table.to_string();
            }
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotEmpty(_) => anyhow::anyhow!("--to: {e}"),
            e => anyhow::anyhow!(e),
        })?;
    source.close().await;
    target.close().await;
    if json {
        let tables: Vec<_> = report
            .iter()
            .map(|t| serde_json::json!({"table": t.table, "rows": t.rows, "sha256": t.checksum}))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "verified": true, "tables": tables })
        );
    } else {
        println!(
            "{:<12} {:>10}  sha256 (same on both sides)",
            "table", "rows"
        );
        for t in &report {
            println!("{:<12} {:>10}  {}", t.table, t.rows, t.checksum);
        }
        println!("copied and verified; point the node's `database` at the new store and start it");
    }
    Ok(())
}

/// `migrex init --request`: the node's key and a certificate request, in
/// DIR; an existing key is never replaced.
fn request(district: &DistrictCode, a: &InitArgs) -> Result<()> {
    let (key, csr) = (a.dir.join("node.key"), a.dir.join("node.csr"));
    if key.exists() || a.dir.join("migrex.toml").exists() {
        bail!(
            "--dir: {} already holds a node key or config; a new request would replace the key",
            a.dir.display()
        );
    }
    crate::files::create_dir_all(&a.dir)
        .with_context(|| format!("--dir: cannot create {}", a.dir.display()))?;
    crate::identity::request_node_cert(district, &a.hosts, &key, &csr)?;
    println!(
        "made the node key {} (keep it here) and the certificate request {} for {district} ({})",
        key.display(),
        csr.display(),
        district.county_name()
    );
    println!(
        "next: send {} to the CA holder, who runs: migrex ca issue --ca-dir CA --district {district} --csr node.csr --out CERTS",
        csr.display()
    );
    println!(
        "then: migrex init --district {district} --dir {} --ca-cert CERTS/ca.crt --cert CERTS/node.crt",
        a.dir.display()
    );
    Ok(())
}

pub async fn init(a: InitArgs) -> Result<()> {
    let district = DistrictCode::parse("--district", &a.district)?;
    if a.request {
        return request(&district, &a);
    }
    let certs = match &a.ca_cert {
        Some(ca_cert) => {
            let beside = |name: &str| ca_cert.parent().unwrap_or(Path::new(".")).join(name);
            let own_key = a.dir.join("node.key");
            NodeCerts::Issued {
                ca_cert: ca_cert.clone(),
                cert: a.cert.clone().unwrap_or_else(|| beside("node.crt")),
                key: a.key.clone().unwrap_or_else(|| {
                    if own_key.exists() {
                        own_key
                    } else {
                        beside("node.key")
                    }
                }),
                crl: a.crl.clone(),
            }
        }
        None => NodeCerts::FromCa(
            a.ca_dir
                .clone()
                .unwrap_or_else(|| a.dir.join("..").join("ca")),
        ),
    };
    // Checked before anything is written.
    let here = std::env::current_dir()?;
    for (i, d) in a.directory.iter().enumerate() {
        crate::config::directory_source(&format!("--directory[{i}]"), d, &here)?;
    }
    let (config_path, token, created_ca) = init_node(
        &district,
        &a.dir,
        &certs,
        [&a.listen, &a.desk_listen, &a.ops_listen, &a.console_listen],
        &a.hosts,
        &a.database,
        a.adopt,
    )
    .await?;
    match &certs {
        NodeCerts::FromCa(ca_dir) if created_ca => eprintln!(
            "created a development CA in {} (keep ca.key private)",
            ca_dir.display()
        ),
        NodeCerts::Issued { crl: None, .. } => eprintln!(
            "no revocation list: set tls.crl in {} to the list the network CA publishes (deploy/README.md)",
            config_path.display()
        ),
        _ => {}
    }
    if !a.directory.is_empty() {
        let (mut c, _) = crate::config::Config::load(&config_path)?;
        // A file is named as the operator meant it: from where they are.
        let sources = a
            .directory
            .iter()
            .map(
                |d| match crate::config::directory_source("--directory", d, &here) {
                    Ok(crate::fetch::Source::File(p)) => p.display().to_string(),
                    _ => d.trim().to_string(),
                },
            )
            .collect();
        c.directory = Some(crate::config::DirectoryFiles::new(sources));
        c.save(&config_path)?;
    }
    println!(
        "node {district} ({}) initialised: {}",
        district.county_name(),
        config_path.display()
    );
    println!("admin token (shown only this once): {token}");
    if a.directory.is_empty() {
        println!(
            "next: migrex peer add --config {} --district <code> --endpoint https://<host:port>",
            config_path.display()
        );
    }
    println!("      migrex serve --config {}", config_path.display());
    Ok(())
}

pub async fn serve(config_path: &Path) -> Result<()> {
    init_tracing("info");
    let settings = crate::config::Settings::load(config_path)?;
    let node = Node::bind(settings, Arc::new(SystemClock))
        .await?
        .start()
        .await?;
    println!(
        "serving district {} ({}): exchange {} desk {} ops http://{} console {}",
        node.ctx.district,
        node.ctx.district.county_name(),
        node.exchange_addr,
        node.desk_addr,
        node.ops_addr,
        node.console_addr
            .map(|a| format!("https://{a}/"))
            .unwrap_or_else(|| "off (no [console] in the config)".into())
    );
    let stop = node.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: finishing in-flight work");
        stop.cancel();
    });
    Ok(node.run_until_stopped().await?)
}
