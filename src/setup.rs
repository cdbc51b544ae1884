//! Setting nodes up: a node folder (`migrex init`), and a whole network of
//! nodes on loopback in one folder (`migrex demo` and the integration tests).

use crate::auth::{Role, hash_token, new_token};
use crate::clock::SharedClock;
use crate::config::{Config, Delivery, Settings, TlsFiles};
use crate::domain::DistrictCode;
use crate::identity;
use crate::node::{Node, NodeError, RunningNode};
use crate::store::Store;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--dir: {0} already holds a node (migrex.toml exists)")]
    Exists(String),
    #[error(
        "--database: it already holds a node's data ({0} staff tokens); name a new, empty database, or add --adopt to make this folder a node of that data (a new admin token is added)"
    )]
    HoldsNode(i64),
    #[error("{path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Field(#[from] crate::domain::FieldError),
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SetupError + '_ {
    move |source| SetupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Opens the database the config file at `config` names.
pub async fn open_store(config: &Path) -> Result<Store, SetupError> {
    let s = Settings::load(config)?;
    let store = Store::open_with(&s.database, s.deadlines.tz, s.database_connections).await?;
    // What a command appends to the access audit is keyed as the node's own
    // entries are, once the node made its audit key.
    if !s.audit_key.exists() {
        return Ok(store);
    }
    let key = crate::audit::SubjectKey::load_or_create(&s.audit_key).map_err(|source| {
        SetupError::Io {
            path: format!("audit_key {}", s.audit_key.display()),
            source,
        }
    })?;
    Ok(store.with_audit_chain(key.chain_key()))
}

/// Creates a staff token in the node's database; returns the token (shown once).
pub async fn create_token(
    store: &Store,
    name: &str,
    role: Role,
) -> Result<String, crate::store::StoreError> {
    Ok(issue_token(store, name, role, None).await?.1)
}

/// A new staff token for `name` with `role`, valid until `expires` (or
/// until revoked); only its hash is stored. Returns its id and the token.
pub async fn issue_token(
    store: &Store,
    name: &str,
    role: Role,
    expires: Option<time::OffsetDateTime>,
) -> Result<(i64, String), crate::store::StoreError> {
    let token = new_token();
    let id = store
        .insert_token(
            name,
            role.as_str(),
            &hash_token(&token),
            time::OffsetDateTime::now_utc(),
            expires,
        )
        .await?;
    Ok((id, token))
}

/// Where a new node's certificate comes from.
#[derive(Debug, Clone)]
pub enum NodeCerts {
    /// Issued here by the CA in this folder (created if it holds none); the
    /// node reads the folder's revocation list.
    FromCa(PathBuf),
    /// Handed over by the CA holder (`migrex ca issue --out`): the network
    /// CA's certificate, the node's certificate and key, and optionally the
    /// revocation list the network publishes (a file or `http://` URL).
    Issued {
        ca_cert: PathBuf,
        cert: PathBuf,
        key: PathBuf,
        crl: Option<String>,
    },
}

/// Writes a node folder: migrex.toml, node.crt/node.key and a copy of
/// ca.crt (issued by the CA folder of `certs`, or checked and copied from
/// the files handed over), the database with an admin token. Returns the
/// config path, the admin token, and whether a CA was created.
pub async fn init_node(
    district: &DistrictCode,
    dir: &Path,
    certs: &NodeCerts,
    listens: [&str; 4],
    hosts: &[String],
    database: &str,
    adopt: bool,
) -> Result<(PathBuf, String, bool), SetupError> {
    let config_path = dir.join("migrex.toml");
    if config_path.exists() {
        return Err(SetupError::Exists(dir.display().to_string()));
    }
    // A database that serves a node already is not taken over silently.
    let location = if database.contains("://") || database.starts_with("sqlite:") {
        database.to_string()
    } else {
        crate::config::resolve(dir, database).display().to_string()
    };
    if !adopt && let Some(tokens) = crate::store::existing_node_tokens(&location).await? {
        return Err(SetupError::HoldsNode(tokens));
    }
    let (created_ca, crl) = match certs {
        NodeCerts::FromCa(ca_dir) => {
            crate::files::create_dir_all(dir).map_err(io(dir))?;
            let created_ca = identity::ensure_ca(ca_dir, "migrex development CA")?;
            identity::issue_node_cert(
                ca_dir,
                district,
                hosts,
                &dir.join("node.crt"),
                &dir.join("node.key"),
            )?;
            let ca_crt = identity::ca_paths(ca_dir).0;
            std::fs::copy(&ca_crt, dir.join("ca.crt")).map_err(io(&ca_crt))?;
            // The CA's revocation list, read by the node while it runs: an
            // empty one until `migrex ca revoke` signs a new one.
            let crl = identity::crl_path(ca_dir);
            if !crl.exists() {
                identity::write_crl(ca_dir, time::OffsetDateTime::now_utc())?;
            }
            let crl = std::path::absolute(&crl).map_err(io(&crl))?;
            (created_ca, Some(crl.display().to_string()))
        }
        NodeCerts::Issued {
            ca_cert,
            cert,
            key,
            crl,
        } => {
            // Checked before anything is written: a refusal leaves no folder.
            let material = identity::TlsMaterial::load(ca_cert, cert, key)?;
            material.check_issued_for(district)?;
            crate::files::create_dir_all(dir).map_err(io(dir))?;
            let put = |name: &str, text: &str| {
                let path = dir.join(name);
                crate::files::write(&path, text.as_bytes()).map_err(io(&path))
            };
            put("ca.crt", &material.ca_pem)?;
            put("node.crt", &material.cert_pem)?;
            put("node.key", &material.key_pem)?;
            // A file is named as the operator meant it: from where they are.
            let crl = match crl {
                Some(c) if !c.starts_with("http://") => Some(
                    std::path::absolute(c)
                        .map_err(io(Path::new(c)))?
                        .display()
                        .to_string(),
                ),
                other => other.clone(),
            };
            (false, crl)
        }
    };
    let config = Config {
        district: district.to_string(),
        timezone: "Asia/Shanghai".into(),
        database: database.into(),
        database_connections: crate::config::DEFAULT_DATABASE_CONNECTIONS,
        listen: listens[0].into(),
        desk_listen: listens[1].into(),
        ops_listen: listens[2].into(),
        calendar_file: None,
        calendar_refresh_secs: 60,
        tls: TlsFiles {
            ca_cert: "ca.crt".into(),
            cert: "node.crt".into(),
            key: "node.key".into(),
            crl,
            crl_refresh_secs: 60,
        },
        console: listens
            .get(3)
            .filter(|l| !l.is_empty())
            .map(|l| crate::config::ConsoleFiles {
                listen: l.to_string(),
                cert: None,
                key: None,
            }),
        delivery: Delivery::default(),
        limits: Default::default(),
        audit_key: "audit.key".into(),
        directory: None,
        peers: vec![],
        reply_policy: vec![],
    };
    config.save(&config_path)?;
    crate::audit::SubjectKey::load_or_create(&dir.join("audit.key")).map_err(io(dir))?;
    let store = open_store(&config_path).await?;
    let token = create_token(&store, "admin", Role::Admin).await?;
    store.close().await;
    Ok((config_path, token, created_ca))
}

/// One node of a `LocalNetwork`.
pub struct LocalNode {
    pub district: DistrictCode,
    pub config_path: PathBuf,
    pub admin_token: String,
    pub exchange_url: String,
    pub desk_url: String,
    pub ops_url: String,
    /// The web console, https://127.0.0.1:PORT.
    pub console_url: String,
    pub running: Option<RunningNode>,
}

/// Several nodes on 127.0.0.1 in one folder, all trusting one CA, each
/// routing to every other. Ports are picked free at creation and written to
/// each config, so a node can be stopped and started again (or run as a
/// separate `migrex serve` process) on the same addresses.
pub struct LocalNetwork {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub nodes: Vec<LocalNode>,
}

/// Where the nodes of a `LocalNetwork` keep their state.
#[derive(Debug, Clone, Default)]
pub enum StoreChoice {
    /// A SQLite file in each node's folder.
    #[default]
    Sqlite,
    /// A new PostgreSQL database per node, created through the maintenance
    /// database at `admin_url` (a role allowed to create databases).
    Postgres { admin_url: String },
}

/// Creates an empty PostgreSQL database named after `label` and a random
/// suffix through `admin_url`; returns its URL.
pub async fn create_postgres_database(admin_url: &str, label: &str) -> Result<String, SetupError> {
    let name = format!(
        "migrex_{label}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    Ok(crate::store::create_postgres_database(admin_url, &name).await?)
}

impl LocalNetwork {
    /// Creates the folders and configs, SQLite stores; starts no node.
    pub async fn create(
        dir: &Path,
        districts: &[&str],
        delivery: Delivery,
    ) -> Result<Self, SetupError> {
        Self::create_with(dir, districts, delivery, &StoreChoice::Sqlite).await
    }

    /// Creates the folders and configs with the stores `store` says; starts no node.
    pub async fn create_with(
        dir: &Path,
        districts: &[&str],
        delivery: Delivery,
        store: &StoreChoice,
    ) -> Result<Self, SetupError> {
        let ca_dir = dir.join("ca");
        let mut nodes = Vec::new();
        let mut configs = Vec::new();
        for code in districts {
            let district = DistrictCode::parse("district", code)?;
            let ports: Vec<u16> = (0..4)
                .map(|_| free_port())
                .collect::<Result<_, _>>()
                .map_err(io(dir))?;
            let listens = ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>();
            let database = match store {
                StoreChoice::Sqlite => "migrex.db".to_string(),
                StoreChoice::Postgres { admin_url } => {
                    create_postgres_database(admin_url, code).await?
                }
            };
            let (config_path, admin_token, _) = init_node(
                &district,
                &dir.join(code),
                &NodeCerts::FromCa(ca_dir.clone()),
                [&listens[0], &listens[1], &listens[2], &listens[3]],
                &[],
                &database,
                false,
            )
            .await?;
            nodes.push(LocalNode {
                district,
                config_path: config_path.clone(),
                admin_token,
                exchange_url: format!("https://{}", listens[0]),
                desk_url: format!("https://{}", listens[1]),
                ops_url: format!("http://{}", listens[2]),
                console_url: format!("https://{}", listens[3]),
                running: None,
            });
            configs.push(config_path);
        }
        for (i, path) in configs.iter().enumerate() {
            let (mut c, _) = Config::load(path)?;
            c.delivery = delivery.clone();
            for (j, other) in nodes.iter().enumerate() {
                if i != j {
                    let prefix =
                        crate::domain::RoutePrefix::parse("district", other.district.as_str())?;
                    c.upsert_peer(&prefix, &other.exchange_url);
                }
            }
            c.save(path)?;
        }
        let ca_pem = std::fs::read_to_string(identity::ca_paths(&ca_dir).0).map_err(io(&ca_dir))?;
        Ok(LocalNetwork {
            dir: dir.to_path_buf(),
            ca_pem,
            nodes,
        })
    }

    /// Starts node `i` in this process with `clock`.
    pub async fn start_node(&mut self, i: usize, clock: SharedClock) -> Result<(), SetupError> {
        let node = &mut self.nodes[i];
        let settings = Settings::load(&node.config_path)?;
        node.running = Some(Node::bind(settings, clock).await?.start().await?);
        Ok(())
    }

    /// Stops node `i` gracefully.
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].running.take() {
            n.shutdown().await;
        }
    }

    pub async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }

    /// A desk client of node `i` with its admin token.
    pub async fn desk(&self, i: usize) -> Result<crate::client::Desk, crate::client::ConnectError> {
        crate::client::connect(
            &self.nodes[i].desk_url,
            &self.ca_pem,
            &self.nodes[i].admin_token,
        )
        .await
    }
}

impl LocalNetwork {
    /// The network authority's plain file for these nodes: each at its
    /// exchange address with its certificate pinned, except the nodes of
    /// `relayed` (node, its relay), which are listed with their own
    /// endpoint and the relay that accepts for them.
    pub fn network_toml(&self, serial: u64, relayed: &[(usize, usize)]) -> String {
        let mut out = format!("serial = {serial}\nvalid_days = 30\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let cert = n.config_path.with_file_name("node.crt");
            out.push_str(&format!(
                "\n[[district]]\ncode = \"{}\"\nendpoints = [\"{}\"]\ncertificate = \"{}\"\n",
                n.district,
                n.exchange_url,
                cert.display()
            ));
            if let Some((_, r)) = relayed.iter().find(|(node, _)| *node == i) {
                out.push_str(&format!("relay = \"{}\"\n", self.nodes[*r].district));
            }
        }
        out
    }

    /// Where `publish_directory` writes the signed directory.
    pub fn directory_path(&self) -> PathBuf {
        self.dir.join("directory.signed")
    }

    /// Builds `network_toml` into the signed directory (as `migrex
    /// directory build` does) with the network's CA.
    pub fn publish_directory(
        &self,
        network_toml: &str,
    ) -> Result<crate::directory::Directory, SetupError> {
        let source = self.dir.join("network.toml");
        std::fs::write(&source, network_toml).map_err(io(&source))?;
        let out = self.directory_path();
        let ca_dir = self.dir.join("ca");
        let previous = crate::directory::source::previous_serial(&out, &ca_dir);
        let d =
            crate::directory::source::build(&source, time::OffsetDateTime::now_utc(), previous)?;
        let signed = d.sign(&ca_dir)?;
        crate::files::replace(&out, &signed).map_err(io(&out))?;
        Ok(d)
    }

    /// Makes every node route by the published directory (read every
    /// `refresh_secs`) instead of routes by hand.
    pub fn route_by_directory(&self, refresh_secs: u64) -> Result<(), SetupError> {
        for n in &self.nodes {
            let (mut c, _) = Config::load(&n.config_path)?;
            c.peers.clear();
            c.directory = Some(crate::config::DirectoryFiles {
                refresh_secs,
                ..crate::config::DirectoryFiles::new(vec![
                    self.directory_path().display().to_string(),
                ])
            });
            c.save(&n.config_path)?;
        }
        Ok(())
    }

    /// The store of running node `i`.
    pub fn store(&self, i: usize) -> Store {
        self.nodes[i]
            .running
            .as_ref()
            .expect("node is running")
            .ctx
            .store
            .clone()
    }

    /// A stats client of node `i` with its admin token.
    pub async fn stats(
        &self,
        i: usize,
    ) -> Result<crate::client::Stats, crate::client::ConnectError> {
        crate::client::connect_stats(
            &self.nodes[i].desk_url,
            &self.ca_pem,
            &self.nodes[i].admin_token,
        )
        .await
    }
}

/// A port that was free a moment ago, and never handed out before by this
/// process (so that networks created side by side, as parallel tests do,
/// cannot be given the same port twice).
pub fn free_port() -> std::io::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut given = GIVEN.lock().expect("port list");
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
}
