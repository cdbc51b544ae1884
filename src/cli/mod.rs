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
mod directory;
mod inbox;
mod monitoring;
mod notices;
mod proofs;
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
    #[command(
        after_help = "Examples:\n  migrex demo                       # in a temporary folder, until Ctrl-C\n  migrex demo --dir ./demo --no-wait  # keep the folders, stop after the samples"
    )]
    Demo(demo::DemoArgs),
    /// Create a node folder: config, key and certificate (and a development CA if none exists), database, admin token.
    #[command(
        after_help = "Examples:\n  migrex init --district 440303 --dir ./luohu --ca-dir ./ca --listen 127.0.0.1:7401 --desk-listen 127.0.0.1:7402 --ops-listen 127.0.0.1:7403\n\nJoining a network whose CA is elsewhere, the key made and kept here:\n  migrex init --district 510116 --dir ./shuangliu --request --host node.shuangliu.example\n  (the CA holder: migrex ca issue --ca-dir ./ca --district 510116 --csr node.csr --out ./certs)\n  migrex init --district 510116 --dir ./shuangliu --ca-cert ./certs/ca.crt --cert ./certs/node.crt --listen 0.0.0.0:7401"
    )]
    Init(admin::InitArgs),
    /// Certificate authority commands.
    #[command(
        subcommand,
        after_help = "Examples:\n  migrex ca issue --ca-dir /root/migrex-ca --district 510116 --out shuangliu-certs --host node.shuangliu.example\n  migrex ca list --ca-dir /root/migrex-ca"
    )]
    Ca(ca::CaCommand),
    /// The network directory (通讯录): build and sign it (network authority), print one.
    #[command(
        subcommand,
        after_help = "Examples:\n  migrex directory build --in network.toml --ca-dir ./ca --out directory.signed\n  migrex directory show directory.signed --ca-cert ./ca/ca.crt"
    )]
    Directory(directory::DirectoryCommand),
    /// The official holiday schedule (节假日安排) working-day deadlines are counted with: show, load a new year.
    #[command(
        subcommand,
        after_help = "Examples:\n  migrex calendar show --config ./luohu/migrex.toml\n  migrex calendar load 2027.csv --config ./luohu/migrex.toml"
    )]
    Calendar(calendar::CalendarCommand),
    /// Routes to peer nodes.
    #[command(
        subcommand,
        after_help = "Examples:\n  migrex peer add --config ./luohu/migrex.toml --district 510116 --endpoint https://node.shuangliu.example:7401\n  migrex peer list --config ./luohu/migrex.toml"
    )]
    Peer(admin::PeerCommand),
    /// Run the node until SIGTERM or Ctrl-C (exit 0); a part that stops on
    /// its own stops the node with a non-zero exit.
    #[command(
        after_help = "Examples:\n  migrex serve --config ./luohu/migrex.toml\n  MIGREX_LOG=debug MIGREX_LOG_FORMAT=json migrex serve --config /var/lib/migrex/migrex.toml"
    )]
    Serve {
        /// The node's migrex.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Staff tokens.
    #[command(
        subcommand,
        after_help = "Examples:\n  migrex token create --config ./luohu/migrex.toml --role clerk --name zhang.wei\n  migrex token list --config ./luohu/migrex.toml"
    )]
    Token(tokens::TokenCommand),
    /// The access audit (访问审计): who looked at whom; check its chain.
    #[command(
        subcommand,
        after_help = "Examples:\n  migrex audit show --config ./luohu/migrex.toml --token li.na\n  migrex audit verify --config ./luohu/migrex.toml"
    )]
    Audit(audit::AuditCommand),
    /// Web console accounts (staff log in with a name and password).
    #[command(
        subcommand,
        after_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | migrex user add --config ./luohu/migrex.toml --name wang.fang --role clerk --password-stdin"
    )]
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
    #[command(
        subcommand,
        after_help = "Example:\n  migrex store copy --from /var/lib/migrex/migrex.db --to 'postgres://migrex@db.luohu.example/migrex?sslmode=verify-full'"
    )]
    Store(admin::StoreCommand),
    /// Send, show or withdraw notices (通报/协查).
    #[command(
        subcommand,
        after_help = "Examples:\n  migrex notice send --config ./luohu/migrex.toml --file births.csv --dry-run\n  migrex notice show --config ./luohu/migrex.toml 0193a5c2-…"
    )]
    Notice(Box<notices::NoticeCommand>),
    /// Check a notice's evidence file (`migrex notice evidence`) on any
    /// machine, with only the network CA's certificate.
    #[command(
        after_help = "Examples:\n  migrex verify 0193a5c2-evidence.json --ca ca.crt\n  migrex verify 0193a5c2-evidence.json --ca ca.crt --crl ca.crl\n\nExit status 0: every step verifies; 1: the line says which does not."
    )]
    Verify {
        /// The evidence file.
        file: PathBuf,
        /// The network CA's certificate (PEM).
        #[arg(long)]
        ca: PathBuf,
        /// The CA's revocation list (PEM or DER, as `migrex ca crl` writes
        /// it): a step signed with a certificate on it does not verify.
        #[arg(long)]
        crl: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List notices of both directions.
    #[command(
        after_help = "Examples:\n  migrex notices --config ./luohu/migrex.toml --direction out --status QUEUED\n  migrex notices --config ./luohu/migrex.toml --peer 510116 --kind BIRTH --json"
    )]
    Notices(notices::NoticesArgs),
    /// List inbound notices waiting for our receipt or feedback (待办), oldest deadline first.
    Pending(inbox::PendingArgs),
    /// Sign for an inbound notice (签收).
    #[command(
        after_help = "Example:\n  migrex ack --config ./shuangliu/migrex.toml 0193a5c2-7d1e-7c3a-9f40-2b6f1e0c9a11"
    )]
    Ack(inbox::AckArgs),
    /// Answer an inbound notice with verification feedback (核查反馈).
    Feedback(inbox::FeedbackArgs),
    /// Timeliness figures for a period (接收率, 反馈率, 及时率), by peer and/or kind.
    Stats(monitoring::StatsArgs),
    /// Notices still without their reply past their deadline (超时未复), both directions.
    #[command(
        after_help = "Examples:\n  migrex overdue --config ./luohu/migrex.toml\n  migrex overdue --config ./luohu/migrex.toml --direction inbound --json"
    )]
    Overdue(monitoring::OverdueArgs),
    /// Compare this node's records of a month with a peer's (对账): the notices and facts on which they differ.
    Reconcile(monitoring::ReconcileArgs),
    /// The monthly assessment report (月度通报) as CSV (Excel) or a self-contained HTML page.
    Report(report::ReportArgs),
}

/// A command-line error from the parser as one line, like every other
/// error: what is wrong, then where its help is
/// (`the following required arguments were not provided: --config <CONFIG>;
/// see migrex serve --help`).
pub fn usage_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut what = Vec::new();
    let mut command = "migrex".to_string();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(usage) = line.strip_prefix("Usage: ") {
            command = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['-', '<', '[']))
                .collect::<Vec<_>>()
                .join(" ");
            break;
        }
        what.push(line.strip_prefix("error: ").unwrap_or(line).to_string());
    }
    let what = what
        .into_iter()
        .filter(|l| !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ");
    format!("{what}; see {command} --help")
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
        Command::Directory(c) => directory::directory(c).await,
        Command::Calendar(c) => calendar::calendar(c).await,
        Command::Peer(c) => admin::peer(c).await,
        Command::Serve { config } => admin::serve(&config).await,
        Command::Store(c) => admin::store(c).await,
        Command::Backup { config, out } => admin::backup(config, out).await,
        Command::Token(c) => tokens::token(c).await,
        Command::Audit(c) => audit::audit(c).await,
        Command::User(c) => admin::user(c).await,
        Command::Notice(c) => notices::notice(*c).await,
        Command::Verify {
            file,
            ca,
            crl,
            json,
        } => proofs::verify_file(&file, &ca, crl.as_deref(), json),
        Command::Notices(a) => notices::notices(a).await,
        Command::Pending(a) => inbox::pending(a).await,
        Command::Ack(a) => inbox::ack(a).await,
        Command::Feedback(a) => inbox::feedback(a).await,
        Command::Stats(a) => monitoring::stats(a).await,
        Command::Overdue(a) => monitoring::overdue(a).await,
        Command::Reconcile(a) => monitoring::reconcile(a).await,
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    /// Every command of the tree, by its full name, with its after-help text.
    fn walk(c: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        let name = format!("{path} {}", c.get_name()).trim().to_string();
        let help = c
            .get_after_help()
            .or(c.get_after_long_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        out.push((name.clone(), help));
        for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &name, out);
        }
    }

    #[test]
    fn every_command_s_help_has_an_example_of_itself() {
        Cli::command().debug_assert();
        let mut all = Vec::new();
        walk(&Cli::command(), "", &mut all);
        assert!(all.len() > 30, "{}", all.len());
        let lacking: Vec<&str> = all
            .iter()
            .filter(|(name, help)| !(help.contains("Example") && help.contains(name.as_str())))
            .map(|(name, _)| name.as_str())
            .collect();
        assert!(
            lacking.is_empty(),
            "--help without an example of itself: {lacking:?}"
        );

        // And every example is a command line the parser takes.
        let (mut bad, mut parsed) = (Vec::new(), 0);
        for (_, help) in &all {
            for line in help.lines().map(str::trim) {
                let Some(at) = line.find("migrex ") else {
                    continue;
                };
                let line = line[at..].split("  #").next().unwrap().trim();
                if line.ends_with('\\') || line.contains("migrex.toml)") {
                    continue;
                }
                let words = split(line);
                parsed += 1;
                if let Err(e) = Cli::try_parse_from(&words) {
                    bad.push(format!("{line}: {}", e.kind()));
                }
            }
        }
        assert!(bad.is_empty(), "examples the parser refuses: {bad:#?}");
        assert!(parsed > 40, "{parsed} examples parsed");
    }

    #[test]
    fn a_usage_error_is_one_line_naming_the_help_to_read() {
        let e = Cli::try_parse_from(["migrex", "serve"]).unwrap_err();
        assert_eq!(
            super::usage_error_line(&e),
            "the following required arguments were not provided: --config <CONFIG>; see migrex serve --help"
        );
        let e =
            Cli::try_parse_from(["migrex", "peer", "add", "--config", "x", "--bogus"]).unwrap_err();
        let line = super::usage_error_line(&e);
        assert!(!line.contains('\n') && line.contains("--bogus"), "{line}");
        assert!(line.ends_with("see migrex peer add --help"), "{line}");
    }

    /// Shell words, enough for the examples: quotes group, `$(…)` is a word.
    fn split(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quote, mut depth) = (Vec::new(), String::new(), None, 0);
        for ch in line.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            match (quote, ch) {
                (None, '\'' | '"') => quote = Some(ch),
                (Some(q), c) if c == q => quote = None,
                (None, ' ') if depth == 0 => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                (_, c) => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }
}
