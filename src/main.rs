//! The `migrex` binary: parses the command line and reports any error as one
//! line on stderr with a non-zero exit status.

use clap::Parser;

#[tokio::main]
async fn main() {
    // Everything the node writes is its owner's alone (migrex::files).
    migrex::files::private_umask();
    let cli = migrex::cli::Cli::parse();
    if !cli.serves() {
        // A command that prints data ends quietly when its reader goes away
        // (`migrex stats | head`), as Unix tools do, instead of panicking on
        // the broken pipe. Long-running commands keep Rust's default (ignored).
        // SAFETY: called before any other thread writes or handles signals.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if let Err(e) = migrex::cli::run(cli).await {
        // Each cause once: a message that already ends with its cause's
        // text (`database: <cause>`) does not get it repeated.
        let mut chain: Vec<String> = Vec::new();
        for cause in e.chain().map(|c| c.to_string()) {
            if !chain.last().is_some_and(|m| m.ends_with(&cause)) {
                chain.push(cause);
            }
        }
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}
