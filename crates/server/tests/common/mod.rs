//! Running the real `keystead` binary: the server, and its command line on the same data
//! directory.

#![allow(dead_code)] // each test file uses a different part

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `keystead serve` on a free port, in `dir`.
pub fn start_in(dir: tempfile::TempDir) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_keystead"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("KEYSTEAD_LOG", "error")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

pub fn start() -> Server {
    start_in(tempfile::tempdir().unwrap())
}

pub async fn wait_for(url: &str, status: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().as_u16() == status
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `keystead ARGS --data-dir DIR` and returns its output.
pub fn keystead(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keystead"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("KEYSTEAD_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs a command that must succeed and print JSON.
pub fn keystead_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = keystead(dir, args);
    assert!(
        out.status.success(),
        "keystead {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "keystead {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `keystead app create --json`: the new app's id and key.
pub fn create_app(dir: &Path, name: &str, origins: &[&str]) -> (String, String) {
    let mut args = vec!["app", "create", "--name", name, "--json"];
    for origin in origins {
        args.extend(["--origin", origin]);
    }
    let created = keystead_json(dir, &args);
    (
        created["appId"].as_str().unwrap().to_string(),
        created["appKey"].as_str().unwrap().to_string(),
    )
}

/// Where [`start_with_args`] writes the server's stderr: `stderr.log` in its data
/// directory.
pub fn stderr_path(server: &Server) -> std::path::PathBuf {
    server.dir.path().join("stderr.log")
}

/// Starts `keystead serve --listen (a free port) --data-dir DIR ARGS...`, its stderr in
/// [`stderr_path`].
pub fn start_with_args(dir: tempfile::TempDir, args: &[&str]) -> Server {
    let port = free_port();
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_keystead"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .env("KEYSTEAD_LOG", "error")
        .stdin(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}
