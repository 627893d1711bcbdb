//! The real `keystead serve --dev`, with its embedded defaults (SQLite, local KMS, one
//! supervised enclave process), on a free loopback port and a throwaway data directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::http1::Http1;
use crate::procfs;

/// The demo app `--dev` makes, as `<data_dir>/dev-app.json` keeps it.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoApp {
    pub app_id: String,
    pub app_key: String,
}

pub struct Server {
    child: Child,
    pub base: String,
    pub pid: u32,
    pub dir: tempfile::TempDir,
}

/// The directory holding `keystead` and `keystead-enclave`: `--bin-dir`, else this
/// program's own (cargo puts every workspace binary of a profile together).
pub fn bin_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("locating keystead-bench")?
            .parent()
            .context("keystead-bench has no directory")?
            .to_path_buf(),
    };
    for name in ["keystead", "keystead-enclave"] {
        if !procfs::is_executable(&dir.join(name)) {
            bail!(
                "{} is missing: build every binary first (cargo build --release --bins), or pass --bin-dir",
                dir.join(name).display()
            );
        }
    }
    Ok(dir)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    /// Starts `keystead serve --dev` with the network `local` at `rpc_url`; its stderr
    /// goes to `server.log` in the data directory.
    pub fn start(bin_dir: &Path, rpc_url: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let child = Command::new(bin_dir.join("keystead"))
            .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--network", &format!("local=31337@{rpc_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting keystead serve")?;
        Ok(Self {
            pid: child.id(),
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        })
    }

    /// Waits until `/readyz` answers 200 (the database and the enclave answer).
    pub async fn wait_ready(&mut self, http: &Http1) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let ready = http.call(http::Method::GET, "/readyz", None, None, None);
            if let Ok(r) = ready.await
                && r.status == 200
            {
                return Ok(start.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "keystead serve exited at start ({status}):\n{}",
                    self.log_tail()
                );
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!(
                    "keystead serve was not ready within 60 s:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The demo app's id and key.
    pub fn demo_app(&self) -> anyhow::Result<DemoApp> {
        let path = self.dir.path().join("dev-app.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not the demo app", path.display()))
    }

    /// The enclave process the server supervises: its child named `keystead-enclave`.
    pub fn enclave_pid(&self) -> Option<u32> {
        procfs::child_named(self.pid, "keystead-enclave")
    }

    /// The last lines of the server's log, without the lines that name the demo app's
    /// key.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.to_ascii_lowercase().contains("key"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Size of the server's log so far, in bytes.
    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(self.dir.path().join("server.log")).map_or(0, |m| m.len())
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill only sends a signal to our own child.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
