//! One `migrex serve` process, as operators run it, for the benchmarks that
//! measure the node from outside: its readiness, memory and end. Included
//! by path (`#[path = "common/serve.rs"] mod serve;`), apart from
//! `common`, so that a benchmark that starts no process does not carry it.

use migrex::config::Config;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `migrex serve` process and the ops address it answers on.
pub struct Serve {
    child: Child,
    ops: String,
}

impl Serve {
    /// Starts the release (or debug) binary beside the example with `config`.
    pub fn start(config: &Path) -> Serve {
        let (c, _) = Config::load(config).expect("config");
        let exe = std::env::current_exe().expect("exe");
        let migrex = exe
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("migrex"))
            .expect("target folder");
        let child = Command::new(&migrex)
            .args(["serve", "--config"])
            .arg(config)
            // BENCH_LOG sets the processes' log filter (default: errors only).
            .env(
                "MIGREX_LOG",
                std::env::var("BENCH_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (cargo build --release)", migrex.display()));
        Serve {
            child,
            ops: c.ops_listen,
        }
    }

    /// A memory figure of the process from /proc, in MiB: `VmRSS` (resident
    /// now) or `VmHWM` (peak resident so far).
    pub fn mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Returns once `/readyz` answers 200 (polled every 5 ms, for two
    /// minutes at most).
    pub async fn ready(&self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(&self.ops).await {
                let get = format!(
                    "GET /readyz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.ops
                );
                let mut out = String::new();
                if s.write_all(get.as_bytes()).await.is_ok()
                    && s.read_to_string(&mut out).await.is_ok()
                    && out.starts_with("HTTP/1.1 200")
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{} never became ready", self.ops);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
