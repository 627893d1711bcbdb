//! Running the real `keystead` binary: the server, `keystead app create` on its data
//! directory, and `keystead wallet ...` as a user would.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn keystead_bin() -> PathBuf {
    keystead_testkit::workspace_bin("keystead")
}

/// A running `keystead serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

/// Starts `keystead serve` on a free port over `dir`, with the network `local` on `rpc`.
pub fn start_server(dir: &Path, rpc: &str) -> Server {
    let port = free_port();
    let child = Command::new(keystead_bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .args(["--network", &format!("local=31337@{rpc}")])
        .env("KEYSTEAD_LOG", "error")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn keystead serve");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// Waits until `url` answers `status`.
pub async fn wait_for(url: &str, status: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().as_u16() == status
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `keystead app create --json` with one OpenID provider: the app's id and key.
pub fn create_app(dir: &Path, name: &str, oidc: &str) -> (String, String) {
    let out = Command::new(keystead_bin())
        .args([
            "app",
            "create",
            "--name",
            name,
            "--origin",
            "http://localhost:5173",
            "--oidc",
            oidc,
            "--json",
            "--data-dir",
        ])
        .arg(dir)
        .env("KEYSTEAD_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run keystead app create");
    assert!(
        out.status.success(),
        "app create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("app create prints JSON");
    (
        created["appId"].as_str().expect("appId").to_string(),
        created["appKey"].as_str().expect("appKey").to_string(),
    )
}

/// `keystead wallet ...` for one user, with their own session file.
pub struct Wallet {
    pub session: PathBuf,
    /// Stands in for the user's home: nothing is written to the real one.
    pub home: PathBuf,
}

/// How a command gets its PINs.
pub enum Pins<'a> {
    None,
    Env(&'a [(&'a str, &'a str)]),
    Stdin(&'a str),
}

impl Wallet {
    /// Runs `keystead wallet ARGS --session FILE --json`.
    pub fn run(&self, args: &[&str], pins: Pins<'_>) -> Output {
        let mut command = Command::new(keystead_bin());
        command
            .arg("wallet")
            .args(args)
            .arg("--session")
            .arg(&self.session)
            .arg("--json")
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("KEYSTEAD_PIN")
            .env_remove("KEYSTEAD_NEW_PIN")
            .env_remove("KEYSTEAD_SESSION")
            .env_remove("KEYSTEAD_ATTESTATION")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut input = None;
        match pins {
            Pins::None => {
                command.stdin(Stdio::null());
            }
            Pins::Env(vars) => {
                command.stdin(Stdio::null());
                for (k, v) in vars {
                    command.env(k, v);
                }
            }
            Pins::Stdin(text) => {
                command.arg("--pin-stdin").stdin(Stdio::piped());
                input = Some(text.to_string());
            }
        }
        // The in-process OpenID issuer must keep serving while this thread waits.
        tokio::task::block_in_place(|| {
            let mut child = command.spawn().expect("spawn keystead wallet");
            if let Some(text) = input {
                use std::io::Write as _;
                let mut stdin = child.stdin.take().expect("stdin");
                stdin.write_all(text.as_bytes()).expect("write stdin");
            }
            child.wait_with_output().expect("keystead wallet output")
        })
    }

    /// Runs a command that must succeed and print one JSON object.
    pub fn ok(&self, args: &[&str], pins: Pins<'_>) -> Value {
        let out = self.run(args, pins);
        assert!(
            out.status.success(),
            "keystead wallet {args:?} failed: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "keystead wallet {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs a command that must fail, and returns the error object it printed.
    pub fn fails(&self, args: &[&str], pins: Pins<'_>) -> Value {
        let out = self.run(args, pins);
        assert!(
            !out.status.success(),
            "keystead wallet {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let body: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "keystead wallet {args:?} printed no error JSON ({e}): stdout {} stderr {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(body["error"]["code"].is_string(), "{body}");
        body
    }
}
