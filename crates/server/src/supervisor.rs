//! Starts the enclave process and starts it again whenever it exits, with a growing
//! pause between tries, until the server shuts down.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::config::Config;

pub struct EnclaveCommand {
    pub binary: PathBuf,
    pub args: Vec<String>,
}

impl EnclaveCommand {
    pub fn from_config(config: &Config) -> std::io::Result<Self> {
        let binary = match &config.enclave.binary {
            Some(path) => path.clone(),
            None => sibling_binary("keystead-enclave")?,
        };
        let args = vec![
            "--socket".into(),
            config.enclave_socket().display().to_string(),
            "--kms-keyring".into(),
            config.kms_keyring().display().to_string(),
            "--dr-kms-keyring".into(),
            config.dr_kms_keyring().display().to_string(),
        ];
        Ok(Self { binary, args })
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let mut command = Command::new(&self.binary);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; the closure touches nothing else. The enclave
        // must not outlive a server that died without cleaning up.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn()
    }
}

fn sibling_binary(name: &str) -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    Ok(dir.join(name))
}

/// Runs until `shutdown` turns true; then stops the enclave.
pub async fn supervise(command: EnclaveCommand, mut shutdown: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(100);
    loop {
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(binary = %command.binary.display(), error = %e, "cannot start the enclave");
                if wait_or_shutdown(&mut shutdown, pause).await {
                    return;
                }
                pause = (pause * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        tracing::info!(pid = child.id(), "enclave started");
        let started = std::time::Instant::now();
        tokio::select! {
            status = child.wait() => {
                tracing::error!(status = ?status.ok(), "enclave exited; restarting");
            }
            _ = shutdown.changed() => {
                let _ = child.kill().await;
                return;
            }
        }
        // A process that ran a while earns a quick restart; a crash loop backs off.
        pause = if started.elapsed() > Duration::from_secs(30) {
            Duration::from_millis(100)
        } else {
            (pause * 2).min(Duration::from_secs(10))
        };
        if wait_or_shutdown(&mut shutdown, pause).await {
            return;
        }
    }
}

async fn wait_or_shutdown(shutdown: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
