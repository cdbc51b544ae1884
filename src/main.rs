//! The `migrex` binary: parses the command line and reports any error as one
//! line on stderr with a non-zero exit status.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = migrex::cli::Cli::parse();
    if let Err(e) = migrex::cli::run(cli).await {
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}
