//! The `migrex` binary: parses the command line and reports any error as one
//! line on stderr with a non-zero exit status (2 for a usage error, 1 for
//! the rest).

use clap::Parser;

#[tokio::main]
async fn main() {
    // Everything the node writes is its owner's alone (migrex::files).
    migrex::files::private_umask();
    // glibc gives threads that contend for the heap arenas of their own (up
    // to eight per core) and keeps what each frees for itself: two arenas
    // bound what a burst of work leaves resident (README, "Memory").
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets an allocator parameter under the allocator's
    // own lock; it is safe to call while other threads allocate.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let cli = match migrex::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version, and a command group named without its command.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            // A usage error is one line too (exit status 2, as clap's).
            eprintln!("error: {}", migrex::cli::usage_error_line(&e));
            std::process::exit(2);
        }
    };
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
