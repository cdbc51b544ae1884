//! The node's configuration file (`migrex.toml`): district, listeners,
//! database, certificates, peers (routes), reply policy, delivery tuning.
//! Relative paths are relative to the folder holding the file.

use crate::calendar::{CalendarFile, DayCount, Deadlines, PolicyRule, ReplyPolicy};
use crate::domain::{
    Category, DistrictCode, FieldError, NoticeKind, ReplySort, Urgency, enum_from_name,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod directory;
mod edit;
#[cfg(test)]
mod examples;
mod limits;
mod routes;

pub use directory::{DirectoryFiles, DirectorySettings, directory_source};
pub use edit::{PeerChange, upsert_peer};
pub use limits::ListenLimits;
pub use routes::{Route, route_for};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}")]
    Field { path: String, source: FieldError },
    #[error("cannot write config {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Calendar(#[from] crate::calendar::CalendarError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's district code (6, 9 or 12 digits).
    pub district: String,
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// SQLite file path (relative to this file), `sqlite://` URL, or
    /// `postgres://` URL (several replicas of a node share one PostgreSQL database).
    pub database: String,
    /// PostgreSQL: connections this node (each replica) holds at most.
    /// Districts sharing one server (a provincial data centre) must fit its
    /// `max_connections` together. SQLite: one writer and four readers.
    #[serde(
        default = "default_database_connections",
        skip_serializing_if = "is_default_database_connections"
    )]
    pub database_connections: u32,
    /// Exchange listener (peers, mutual TLS).
    pub listen: String,
    /// Desk listener (staff and monitors, TLS + bearer token).
    pub desk_listen: String,
    /// Ops listener (plain HTTP: /healthz, /readyz).
    pub ops_listen: String,
    /// Newer years of the holiday schedule (CSV `date,day,name`, as
    /// `migrex calendar load` writes it) laid over the shipped one. Absent:
    /// `holidays.csv` beside this file, if it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_file: Option<String>,
    /// How often a running node reads the calendar file again (seconds).
    #[serde(
        default = "default_calendar_refresh",
        skip_serializing_if = "is_default_calendar_refresh"
    )]
    pub calendar_refresh_secs: u64,
    pub tls: TlsFiles,
    /// The web console (HTTPS, staff in a browser); absent: no console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleFiles>,
    #[serde(default)]
    pub delivery: Delivery,
    /// The secret that keys the access audit's hashes of ID numbers (a
    /// file, created 0600 at first start; replicas of a node share it).
    #[serde(
        default = "default_audit_key",
        skip_serializing_if = "is_default_audit_key"
    )]
    pub audit_key: String,
    /// Limits of the listeners (connections, idle time, message sizes).
    #[serde(default, skip_serializing_if = "ListenLimits::is_default")]
    pub limits: ListenLimits,
    /// The network directory (通讯录) this node routes by, besides the
    /// routes added by hand; absent: routes by hand only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryFiles>,
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// Absent: the default policy (SPEC.md section 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_policy: Vec<PolicyEntry>,
}

/// PostgreSQL connections a node holds at most unless its config says.
pub const DEFAULT_DATABASE_CONNECTIONS: u32 = 16;

fn default_database_connections() -> u32 {
    DEFAULT_DATABASE_CONNECTIONS
}

fn is_default_database_connections(v: &u32) -> bool {
    *v == default_database_connections()
}

fn default_tz() -> String {
    "Asia/Shanghai".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The network CA: signs every node's certificate.
    pub ca_cert: String,
    pub cert: String,
    pub key: String,
    /// The network CA's revocation list: a file (relative to this config)
    /// or an `http://` URL. Absent: no certificate is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<String>,
    /// How often the list is read again (seconds).
    #[serde(
        default = "default_crl_refresh",
        skip_serializing_if = "is_default_crl_refresh"
    )]
    pub crl_refresh_secs: u64,
}

fn default_audit_key() -> String {
    "audit.key".into()
}

fn is_default_audit_key(v: &str) -> bool {
    v == "audit.key"
}

fn default_calendar_refresh() -> u64 {
    60
}

fn is_default_calendar_refresh(v: &u64) -> bool {
    *v == default_calendar_refresh()
}

fn default_crl_refresh() -> u64 {
    60
}

fn is_default_crl_refresh(v: &u64) -> bool {
    *v == default_crl_refresh()
}

/// The web console's listener and, optionally, a certificate browsers
/// trust (the node's certificate, signed by the network CA, otherwise).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFiles {
    pub listen: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// Notices or replies sent to a peer in one call.
    pub batch_size: usize,
    /// The largest batch accepted from a peer; larger is RESOURCE_EXHAUSTED.
    pub max_batch: usize,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// A notice undelivered this long is reported (log, ListNotices) while retries go on.
    pub undelivered_alert_secs: u64,
    /// How often an idle delivery worker looks at the outbox anyway.
    pub idle_poll_ms: u64,
    /// How long a replica holds a route's delivery without renewing it; a
    /// replica that dies leaves its routes to the others after this. Each
    /// call to a peer times out after half of it.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// Take notices, acknowledgements and replies that carry no signature
    /// (docs/protocol.md) from peers not yet upgraded. Off: an unsigned
    /// item is refused (PERMISSION_DENIED). A signature that is present
    /// must verify either way.
    #[serde(default)]
    pub accept_unsigned: bool,
}

fn default_lease_secs() -> u64 {
    30
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            batch_size: 500,
            max_batch: 1000,
            backoff_initial_ms: 500,
            backoff_max_ms: 60_000,
            undelivered_alert_secs: 3600,
            idle_poll_ms: 5000,
            lease_secs: default_lease_secs(),
            accept_unsigned: false,
        }
    }
}

/// A route: destinations starting with `prefix` go to `endpoint`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub prefix: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<String>,
    /// RECEIPT or FEEDBACK.
    pub reply: String,
    pub days: u32,
    #[serde(default = "calendar_days")]
    pub count: DayCount,
}

fn calendar_days() -> DayCount {
    DayCount::Calendar
}

impl Config {
    pub fn load(path: &Path) -> Result<(Self, PathBuf), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.district().map_err(|source| ConfigError::Field {
            path: path.display().to_string(),
            source,
        })?;
        config.routes().map_err(|source| ConfigError::Field {
            path: path.display().to_string(),
            source,
        })?;
        Ok((config, base))
    }

    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).expect("config serialises");
        // Private: the file can hold the PostgreSQL password.
        crate::files::replace(path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// The database to open: a URL as given, or a file path made absolute.
    pub fn database_location(&self, base: &Path) -> String {
        if self.database.contains("://") || self.database.starts_with("sqlite:") {
            self.database.clone()
        } else {
            resolve(base, &self.database).display().to_string()
        }
    }

    pub fn district(&self) -> Result<DistrictCode, FieldError> {
        DistrictCode::parse("district", &self.district)
    }

    pub fn reply_policy(&self) -> Result<ReplyPolicy, FieldError> {
        if self.reply_policy.is_empty() {
            return Ok(ReplyPolicy::default());
        }
        let rules = self
            .reply_policy
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let f = |name: &str| format!("reply_policy[{i}].{name}");
                Ok(PolicyRule {
                    category: e
                        .category
                        .as_deref()
                        .map(|s| {
                            enum_from_name(
                                &f("category"),
                                s,
                                Category::from_str_name,
                                &["NOTIFICATION", "VERIFICATION_REQUEST"],
                            )
                        })
                        .transpose()?,
                    kind: e
                        .kind
                        .as_deref()
                        .map(|s| {
                            enum_from_name(
                                &f("kind"),
                                s,
                                NoticeKind::from_str_name,
                                &["MARRIAGE", "PREGNANCY", "BIRTH", "CONTRACEPTION"],
                            )
                        })
                        .transpose()?,
                    urgency: e
                        .urgency
                        .as_deref()
                        .map(|s| {
                            enum_from_name(
                                &f("urgency"),
                                s,
                                Urgency::from_str_name,
                                &["NORMAL", "URGENT"],
                            )
                        })
                        .transpose()?,
                    reply: enum_from_name(
                        &f("reply"),
                        &e.reply,
                        ReplySort::from_str_name,
                        &["RECEIPT", "FEEDBACK"],
                    )?,
                    days: if (1..=366).contains(&e.days) {
                        e.days
                    } else {
                        return Err(FieldError::new(f("days"), "must be between 1 and 366"));
                    },
                    count: e.count,
                })
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(ReplyPolicy { rules })
    }

    /// The node's timezone.
    pub fn tz(&self) -> Result<&'static time_tz::Tz, ConfigError> {
        Ok(crate::calendar::timezone(&self.timezone)?)
    }

    /// The calendar file, resolved against the config's folder `base`.
    pub fn calendar_file(&self, base: &Path) -> CalendarFile {
        CalendarFile {
            path: resolve(
                base,
                self.calendar_file
                    .as_deref()
                    .unwrap_or(CalendarFile::DEFAULT_NAME),
            ),
            required: self.calendar_file.is_some(),
            refresh: std::time::Duration::from_secs(self.calendar_refresh_secs.max(1)),
        }
    }

    pub fn deadlines(&self, base: &Path) -> Result<Deadlines, ConfigError> {
        let calendar = self.calendar_file(base).calendar()?;
        let policy = self.reply_policy().map_err(|source| ConfigError::Field {
            path: "reply_policy".into(),
            source,
        })?;
        Ok(Deadlines::new(&self.timezone, calendar, policy)?)
    }
}

/// A peer's exchange endpoint must be `https://HOST:PORT` and nothing
/// more, usable as it stands: a route nobody can connect to is an error at
/// start, not a worker that silently delivers nothing (a missing port would
/// mean 443, a path would be dropped by gRPC).
pub fn check_endpoint(field: &str, endpoint: &str) -> Result<(), FieldError> {
    let shown = crate::domain::quoted(endpoint);
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| FieldError::new(field, format!("{shown} is not a URL")))?;
    let bad = |rule: &str| {
        FieldError::new(
            field,
            format!("{shown} is not an https://HOST:PORT URL: {rule}"),
        )
    };
    if uri.scheme_str() != Some("https") {
        return Err(bad("it must start with https://"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if uri.port_u16().is_none_or(|p| p == 0) {
        return Err(bad(
            "it has no port (the peer's exchange listener, e.g. :7401)",
        ));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad("it must not have a path"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad("it must not hold a user name"));
    }
    Ok(())
}

/// The node's configuration as the running node uses it: checked once at
/// start, every value in its domain type, every path absolute.
pub struct Settings {
    pub district: DistrictCode,
    /// The database: a SQLite file path, or a URL.
    pub database: String,
    /// PostgreSQL connections held at most.
    pub database_connections: u32,
    pub listen: String,
    pub desk_listen: String,
    pub ops_listen: String,
    pub tls: TlsPaths,
    /// The web console's listener and certificate files, if it has one.
    pub console: Option<(String, TlsPaths)>,
    pub delivery: Delivery,
    pub limits: ListenLimits,
    /// The access audit's key file.
    pub audit_key: PathBuf,
    pub routes: Vec<Route>,
    /// Where the network directory is read, if this node routes by one.
    pub directory: Option<DirectorySettings>,
    /// The timezone, holiday calendar and reply policy.
    pub deadlines: Deadlines,
    /// Where newer years of the holiday schedule are read from.
    pub calendar: CalendarFile,
}

/// The node's certificate files, resolved against the config's folder.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The revocation list and how often it is read again.
    pub crl: Option<crate::identity::CrlSource>,
    pub crl_refresh: std::time::Duration,
}

impl Settings {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (config, base) = Config::load(path)?;
        Self::from_config(&config, &base, path)
    }

    /// Checks `c`, whose relative paths are relative to `base`; `path`
    /// names the file in errors.
    pub fn from_config(c: &Config, base: &Path, path: &Path) -> Result<Self, ConfigError> {
        let field = |source| ConfigError::Field {
            path: path.display().to_string(),
            source,
        };
        let crl = match c.tls.crl.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) if u.starts_with("http://") => Some(crate::identity::CrlSource::Url(u.into())),
            Some(u) if u.contains("://") => {
                return Err(field(FieldError::new(
                    "tls.crl",
                    "must be a file path or an http:// URL (the list is signed; no TLS needed)",
                )));
            }
            Some(p) => Some(crate::identity::CrlSource::File(resolve(base, p))),
        };
        let tls = TlsPaths {
            ca_cert: resolve(base, &c.tls.ca_cert),
            cert: resolve(base, &c.tls.cert),
            key: resolve(base, &c.tls.key),
            crl,
            crl_refresh: std::time::Duration::from_secs(c.tls.crl_refresh_secs.max(1)),
        };
        let console = match &c.console {
            None => None,
            Some(k) => {
                let files = match (&k.cert, &k.key) {
                    (None, None) => tls.clone(),
                    (Some(cert), Some(key)) => TlsPaths {
                        cert: resolve(base, cert),
                        key: resolve(base, key),
                        ..tls.clone()
                    },
                    _ => {
                        return Err(field(FieldError::new(
                            "console",
                            "give both cert and key, or neither (the node's own are used)",
                        )));
                    }
                };
                Some((k.listen.clone(), files))
            }
        };
        Ok(Settings {
            district: c.district().map_err(field)?,
            database: c.database_location(base),
            database_connections: c.database_connections.max(1),
            listen: c.listen.clone(),
            desk_listen: c.desk_listen.clone(),
            ops_listen: c.ops_listen.clone(),
            tls,
            console,
            delivery: c.delivery.clone(),
            limits: c.limits.clone(),
            audit_key: resolve(base, &c.audit_key),
            routes: c.routes().map_err(field)?,
            directory: c.directory_settings(base).map_err(field)?,
            deadlines: c.deadlines(base)?,
            calendar: c.calendar_file(base),
        })
    }
}

/// A path from the config, made absolute against the config's folder.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_in_the_config_replaces_the_default() {
        let text = r#"
district = "440303"
database = "migrex.db"
listen = "127.0.0.1:1"
desk_listen = "127.0.0.1:2"
ops_listen = "127.0.0.1:3"
[tls]
ca_cert = "ca.crt"
cert = "node.crt"
key = "node.key"
[[reply_policy]]
category = "verification_request"
reply = "FEEDBACK"
days = 3
count = "working"
"#;
        let c: Config = toml::from_str(text).unwrap();
        let p = c.reply_policy().unwrap();
        let r = p.rule_for(
            Category::VerificationRequest,
            NoticeKind::Birth,
            Urgency::Normal,
        );
        assert_eq!((r.days, r.count), (3, DayCount::Working));
        let mut bad = c.clone();
        bad.reply_policy[0].reply = "MAYBE".into();
        assert_eq!(
            bad.reply_policy().unwrap_err().field,
            "reply_policy[0].reply"
        );
    }
    #[test]
    fn an_endpoint_is_https_host_and_port_and_nothing_more() {
        for ok in [
            "https://node.example:7401",
            "https://127.0.0.1:7411/",
            "https://[::1]:7401",
        ] {
            assert!(check_endpoint("e", ok).is_ok(), "{ok}");
        }
        for (bad, rule) in [
            ("https://node.example", "no port"),
            ("https://node.example:7401/exchange", "path"),
            ("http://node.example:7401", "https://"),
            ("https://user@node.example:7401", "user name"),
            ("node.example:7401", "https://"),
        ] {
            let e = check_endpoint("--endpoint", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("--endpoint") && e.contains(rule),
                "{bad}: {e}"
            );
        }
    }
}
