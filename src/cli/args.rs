//! Arguments shared by the staff and monitor commands: the connection to
//! a running node's desk listener (and the timezone its times are shown
//! in), enum flags, and how a refusal from the node is reported.

use super::render::{Local, print_list, print_one};
use crate::client::{self, Desk};
use crate::config::{Config, resolve};
use crate::domain::{Direction, enum_from_name};
use crate::pb;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use std::path::PathBuf;

/// What a node answered to one call.
pub type Answer<T> = std::result::Result<tonic::Response<T>, tonic::Status>;

/// What class of notice: its kind, category and urgency.
#[derive(Args, Debug, Clone)]
pub struct ClassArgs {
    /// MARRIAGE, PREGNANCY, BIRTH or CONTRACEPTION.
    #[arg(long)]
    pub kind: Option<String>,
    /// NOTIFICATION (通报) or VERIFICATION_REQUEST (协查).
    #[arg(long)]
    pub category: Option<String>,
    /// NORMAL or URGENT (sending: URGENT for a pregnancy, NORMAL otherwise, unless given).
    #[arg(long)]
    pub urgency: Option<String>,
}

/// One page of a listing.
#[derive(Args, Debug, Clone)]
pub struct PageArgs {
    /// How many to list (one page).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue a listing: the next-page token the previous page printed.
    #[arg(long, default_value = "")]
    pub page_token: String,
}

#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The node's desk URL, https://HOST:PORT.
    #[arg(long, env = "MIGREX_NODE")]
    node: Option<String>,
    /// Staff token.
    #[arg(long, env = "MIGREX_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The network CA certificate (PEM) that signed the node's certificate.
    #[arg(long, env = "MIGREX_CA")]
    ca: Option<PathBuf>,
    /// Take --node and --ca from this node's migrex.toml (on the node's own machine).
    #[arg(long, env = "MIGREX_CONFIG")]
    config: Option<PathBuf>,
    /// The node's timezone, for the times shown (default: the config's, else Asia/Shanghai).
    #[arg(long, env = "MIGREX_TIMEZONE")]
    timezone: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Conn {
    pub async fn desk(&self) -> Result<Desk> {
        let (node, ca_pem, token) = self.target()?;
        Ok(client::connect(&node, &ca_pem, &token).await?)
    }

    pub async fn stats(&self) -> Result<client::Stats> {
        let (node, ca_pem, token) = self.target()?;
        Ok(client::connect_stats(&node, &ca_pem, &token).await?)
    }

    /// The desk URL, the CA certificate (PEM) and the token.
    /// Prints the notice a node answered with, or returns its refusal.
    pub fn show_one(&self, answer: Answer<pb::Notice>) -> Result<()> {
        print_one(
            &answer.map_err(status)?.into_inner(),
            self.json,
            self.local()?,
        );
        Ok(())
    }

    /// Prints the list a node answered with, or returns its refusal.
    pub fn show_list(&self, answer: Answer<pb::ListNoticesResponse>) -> Result<()> {
        print_list(
            &answer.map_err(status)?.into_inner(),
            self.json,
            self.local()?,
        );
        Ok(())
    }

    /// How to show instants: in `--timezone`, else the config's timezone,
    /// else Beijing time.
    /// The node's migrex.toml, when given.
    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    pub fn local(&self) -> Result<Local> {
        let name = match (&self.timezone, &self.config) {
            (Some(tz), _) => tz.clone(),
            (None, Some(path)) => Config::load(path)?.0.timezone,
            (None, None) => return Ok(Local::shanghai()),
        };
        let tz = crate::calendar::timezone(&name).map_err(|e| anyhow!("--timezone: {e}"))?;
        Ok(Local(tz))
    }

    fn target(&self) -> Result<(String, String, String)> {
        let (mut node, mut ca) = (self.node.clone(), self.ca.clone());
        if let Some(path) = &self.config {
            let (c, base) = Config::load(path)?;
            node = node.or_else(|| {
                Some(format!(
                    "https://{}",
                    c.desk_listen.replace("0.0.0.0", "127.0.0.1")
                ))
            });
            ca = ca.or_else(|| Some(resolve(&base, &c.tls.ca_cert)));
        }
        let node = node.ok_or_else(|| {
            anyhow!("--node: the desk URL is required (or --config with the node's migrex.toml)")
        })?;
        let ca = ca
            .ok_or_else(|| anyhow!("--ca: the network CA certificate is required (or --config)"))?;
        // An empty MIGREX_TOKEN= is no token, not a wrong one.
        let token = self
            .token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| anyhow!("--token: a staff token is required (or set MIGREX_TOKEN)"))?;
        let ca_pem = std::fs::read_to_string(&ca)
            .with_context(|| format!("--ca: cannot read {}", ca.display()))?;
        Ok((node, ca_pem, token))
    }
}

/// A gRPC refusal as one line: the code and the node's message (which names the field).
pub fn status(s: tonic::Status) -> anyhow::Error {
    anyhow!("{:?}: {}", s.code(), s.message())
}

pub fn opt_enum<E: Into<i32>>(
    field: &str,
    v: &Option<String>,
    from: fn(&str) -> Option<E>,
    names: &[&str],
) -> Result<i32> {
    match v {
        None => Ok(0),
        Some(s) => Ok(enum_from_name(field, s, from, names)
            .map_err(|e| anyhow!("{e}"))?
            .into()),
    }
}

pub const KIND_NAMES: &[&str] = &["MARRIAGE", "PREGNANCY", "BIRTH", "CONTRACEPTION"];

pub fn direction(field: &str, s: &str, both: bool) -> Result<i32> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "in" | "inbound" => Direction::Inbound as i32,
        "out" | "outbound" => Direction::Outbound as i32,
        "both" | "" if both => 0,
        other => bail!(
            "{field}: '{other}' is not inbound or outbound{}",
            if both { " or both" } else { "" }
        ),
    })
}
