//! The `migrex` command line: the parser and one file per command group —
//! node administration (`admin`: init, ca, peer, token, backup, store,
//! serve), the holiday schedule (`calendar`), notices (`notices`), the inbox (`inbox`: pending, ack,
//! feedback), monitoring (`monitoring`: stats, overdue), reports
//! (`report`), the demo (`demo`) — over the connection and flags they
//! share (`args`) and one way of showing answers (`render`). The staff
//! and monitor commands talk to a running node's desk listener over gRPC.

mod admin;
mod args;
mod audit;
mod ca;
mod calendar;
mod demo;
mod inbox;
mod monitoring;
mod notices;
mod render;
mod report;
mod tokens;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "migrex",
    version,
    about = "District node of the migrant-population information exchange network (流动人口信息交换)",
    long_about = "Each district runs one migrex node. Nodes exchange notices (通报) and verification requests (协查) \
about marriage, pregnancy, birth and contraception over mutual TLS, answer them with receipts (签收) and \
verification feedback (核查反馈), and track every deadline (时限).",
    after_help = "Examples:\n  migrex demo\n  migrex init --district 440303 --dir ./luohu --ca-dir ./ca\n  migrex serve --config ./luohu/migrex.toml\n  migrex pending --config ./luohu/migrex.toml --token $MIGREX_TOKEN"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run three nodes on loopback, exchange sample notices and feedback, keep serving until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Create a node folder: config, key and certificate (and a development CA if none exists), database, admin token.
    #[command(
        after_help = "Example:\n  migrex init --district 440303 --dir ./luohu --ca-dir ./ca --listen 127.0.0.1:7401 --desk-listen 127.0.0.1:7402 --ops-listen 127.0.0.1:7403"
    )]
    Init(admin::InitArgs),
    /// Certificate authority commands.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// The official holiday schedule (节假日安排) working-day deadlines are counted with: show, load a new year.
    #[command(subcommand)]
    Calendar(calendar::CalendarCommand),
    /// Routes to peer nodes.
    #[command(subcommand)]
    Peer(admin::PeerCommand),
    /// Run the node until SIGTERM or Ctrl-C.
    Serve {
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Staff tokens.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// The access audit (访问审计): who looked at whom; check its chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Web console accounts (staff log in with a name and password).
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Copy the node's database to a file while it runs (online backup).
    #[command(
        after_help = "Example:\n  migrex backup --config luohu/migrex.toml --out /var/backups/migrex-$(date +%F).db\n\nRestore: stop the node, put the copy in place of the database file named in migrex.toml, start it."
    )]
    Backup {
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
        /// The file to write; it must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
    /// Store commands: move a district's state between stores.
    #[command(subcommand)]
    Store(admin::StoreCommand),
    /// Send, show or withdraw notices (通报/协查).
    #[command(subcommand)]
    Notice(Box<notices::NoticeCommand>),
    /// List notices of both directions.
    Notices(notices::NoticesArgs),
    /// List inbound notices waiting for our receipt or feedback (待办), oldest deadline first.
    Pending(inbox::PendingArgs),
    /// Sign for an inbound notice (签收).
    Ack(inbox::AckArgs),
    /// Answer an inbound notice with verification feedback (核查反馈).
    Feedback(inbox::FeedbackArgs),
    /// Timeliness figures for a period (接收率, 反馈率, 及时率), by peer and/or kind.
    Stats(monitoring::StatsArgs),
    /// Notices still without their reply past their deadline (超时未复), both directions.
    Overdue(monitoring::OverdueArgs),
    /// The monthly assessment report (月度通报) as CSV (Excel) or a self-contained HTML page.
    Report(report::ReportArgs),
}

/// Logs go to stderr; `MIGREX_LOG` sets the filter (default `info`),
/// `MIGREX_LOG_FORMAT=json` gives one JSON object per line.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIGREX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("MIGREX_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

impl Cli {
    /// Whether the command keeps listeners open (these keep SIGPIPE ignored).
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Demo(_) | Command::Serve { .. })
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Init(a) => admin::init(a).await,
        Command::Ca(c) => ca::ca(c).await,
        Command::Calendar(c) => calendar::calendar(c).await,
        Command::Peer(c) => admin::peer(c).await,
        Command::Serve { config } => admin::serve(&config).await,
        Command::Store(c) => admin::store(c).await,
        Command::Backup { config, out } => admin::backup(config, out).await,
        Command::Token(c) => tokens::token(c).await,
        Command::Audit(c) => audit::audit(c).await,
        Command::User(c) => admin::user(c).await,
        Command::Notice(c) => notices::notice(*c).await,
        Command::Notices(a) => notices::notices(a).await,
        Command::Pending(a) => inbox::pending(a).await,
        Command::Ack(a) => inbox::ack(a).await,
        Command::Feedback(a) => inbox::feedback(a).await,
        Command::Stats(a) => monitoring::stats(a).await,
        Command::Overdue(a) => monitoring::overdue(a).await,
        Command::Report(a) => report::report(a).await,
    }
}

/// SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
