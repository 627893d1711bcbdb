//! The real `keystead` binary: it starts and supervises the real enclave, serves health,
//! readiness, metrics, OpenAPI and the attestation, and survives the enclave's death.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{create_app, start_in, wait_for};

use base64::Engine;
use keystead_attestation::{AttestationVerifier, DevVerifier};

/// The enclave process the server started: its child named `keystead-enclave`.
fn enclave_pid(server_pid: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (name, rest) = stat.split_once(") ")?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == server_pid && name.ends_with("(keystead-enclav")).then_some(pid)
        })
}

#[tokio::test]
async fn serves_health_readiness_metrics_openapi_and_attestation() {
    // The app is made before the server starts: both would migrate the new database.
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = create_app(dir.path(), "Test", &["http://localhost:3000"]);
    let server = start_in(dir);
    wait_for(&format!("{}/healthz", server.base), 200).await;
    wait_for(&format!("{}/readyz", server.base), 200).await;
    let http = reqwest::Client::new();

    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert!(
        health.headers().contains_key("x-request-id"),
        "every answer names its request"
    );
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );

    let attestation: serde_json::Value = http
        .get(format!("{}/v1/enclave/attestation", server.base))
        .header("x-app-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(attestation["format"], "dev");
    assert_eq!(
        attestation["suite"],
        "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let document = b64
        .decode(attestation["document"].as_str().unwrap())
        .unwrap();
    let public_key = b64
        .decode(attestation["publicKey"].as_str().unwrap())
        .unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let verified = DevVerifier::new().verify(&document, now_ms).unwrap();
    assert_eq!(verified.public_key, Some(public_key));

    let openapi: serde_json::Value = http
        .get(format!("{}/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        openapi["paths"]["/v1/enclave/attestation"]["get"].is_object(),
        "{openapi}"
    );
    assert!(openapi["components"]["schemas"]["ErrorCode"].is_object());
    assert!(openapi["paths"]["/v1/app"]["get"].is_object(), "{openapi}");
    // Every route of API.md's table is described.
    for (path, method) in [
        ("/v1/auth/id-token", "post"),
        ("/v1/auth/refresh", "post"),
        ("/v1/auth/logout", "post"),
        ("/v1/me", "get"),
        ("/v1/wallet", "post"),
        ("/v1/wallet/pin", "post"),
        ("/v1/wallet/recover", "post"),
        ("/v1/wallet/export", "post"),
        ("/v1/accounts", "get"),
        ("/v1/accounts/{id}/balance", "get"),
        ("/v1/sign/message", "post"),
        ("/v1/sign/typed-data", "post"),
        ("/v1/tx/prepare", "post"),
        ("/v1/tx/sign", "post"),
        ("/v1/tx/send", "post"),
        ("/v1/tx/{id}", "get"),
    ] {
        assert!(
            openapi["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    // The JavaScript SDK's types are generated from a snapshot of this document: it must
    // be this document (refresh: `npm --prefix sdk/js run fetch:api && npm --prefix sdk/js
    // run gen:api`). Read at run time: a cached build may come from another checkout.
    let snapshot_path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../sdk/js/openapi.json");
    let snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&snapshot_path).unwrap()).unwrap();
    assert!(snapshot == openapi, "sdk/js/openapi.json is stale");
    for schema in [
        "Intent",
        "TxResponse",
        "CreateWalletResponse",
        "SealedValue",
    ] {
        assert!(
            openapi["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }

    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("keystead_http_requests_total{method=\"GET\",route=\"/v1/enclave/attestation\",status=\"200\"} 1"), "{metrics}");
}

/// A second server on the same SQLite database is refused (the first keeps signing's
/// reads in memory, which another writer of wallet records would make stale); the
/// command line's app commands still run beside the first.
#[tokio::test]
async fn a_second_server_on_the_same_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    create_app(dir.path(), "First", &["http://localhost:3000"]);
    let server = start_in(dir);
    wait_for(&format!("{}/readyz", server.base), 200).await;
    let second = Command::new(env!("CARGO_BIN_EXE_keystead"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.dir.path())
        .env("KEYSTEAD_LOG", "error")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another keystead server"), "{stderr}");
    create_app(server.dir.path(), "Second", &["http://localhost:3001"]);
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the first server still serves");
}

#[tokio::test]
async fn a_killed_enclave_gives_enclave_unavailable_then_comes_back() {
    // The app is made before the server starts: both would migrate the new database.
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = create_app(dir.path(), "Test", &["http://localhost:3000"]);
    let server = start_in(dir);
    wait_for(&format!("{}/readyz", server.base), 200).await;
    let pid = enclave_pid(server.child.id()).expect("the server started an enclave");
    // SAFETY: kill(2) on a process this test's server started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };

    let http = reqwest::Client::new();
    let started = Instant::now();
    let reply = http
        .get(format!("{}/v1/enclave/attestation", server.base))
        .header("x-app-key", &key)
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    if reply.status() == 503 {
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["error"]["code"], "enclave_unavailable");
        assert!(
            waited < Duration::from_secs(6),
            "bounded by the enclave deadline: {waited:?}"
        );
    } else {
        // The supervisor was quicker than this request: a new enclave answered.
        assert_eq!(reply.status(), 200);
    }
    // The supervisor starts a new enclave; readiness and attestation come back.
    wait_for(&format!("{}/readyz", server.base), 200).await;
    let new_pid = enclave_pid(server.child.id()).expect("restarted");
    assert_ne!(new_pid, pid);
    let reply = http
        .get(format!("{}/v1/enclave/attestation", server.base))
        .header("x-app-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
}

#[test]
fn config_check_refuses_unknown_keys_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keystead"))
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "database_url = \"postgres://keystead:hunter2@127.0.0.1/keystead\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keystead"))
        .args(["config", "check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("127.0.0.1/keystead") && !shown.contains("hunter2"),
        "{shown}"
    );
}
