//! Apps (tenants) through the real binary: `keystead app ...` on the server's data
//! directory, then the app check, CORS and `GET /v1/app` over HTTP.

mod common;

use common::{create_app, keystead, keystead_json, start_in, wait_for};
use reqwest::StatusCode;
use serde_json::Value;

async fn get_app(base: &str, key: Option<&str>, origin: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{base}/v1/app"));
    if let Some(key) = key {
        req = req.header("x-app-key", key);
    }
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    req.send().await.unwrap()
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn app_keys_origins_cors_rotation_and_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let created = keystead_json(
        &data,
        &[
            "app",
            "create",
            "--name",
            "Shop A",
            "--origin",
            "https://Shop-A.example/",
            "--origin",
            "http://localhost:3000",
            "--oidc",
            "google=https://accounts.google.com@a-client.apps.googleusercontent.com",
            "--json",
        ],
    );
    let app_a = created["appId"].as_str().unwrap().to_string();
    let key_a = created["appKey"].as_str().unwrap().to_string();
    assert!(app_a.starts_with("app_"), "{created}");
    assert!(key_a.starts_with("ksa_"), "{created}");
    let (app_b, key_b) = create_app(&data, "Shop B", &["https://shop-b.example"]);

    // The database holds the key's hash, never the key.
    let mut bytes = std::fs::read(data.join("keystead.db")).unwrap();
    if let Ok(wal) = std::fs::read(data.join("keystead.db-wal")) {
        bytes.extend(wal);
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        !contains(&key_a) && !contains(&key_b),
        "a key is stored in clear"
    );
    let hash_a = keystead_identity::hash_token(&key_a);
    assert!(contains(&hash_a), "the key's hash is stored");

    let listed = keystead_json(&data, &["app", "list", "--json"]);
    let apps = listed["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2, "{listed}");
    // Apps made in the same second list in id order: find A by its id.
    let listed_a = apps.iter().find(|a| a["appId"] == app_a.as_str());
    assert_eq!(
        listed_a.expect("app A is listed")["origins"],
        serde_json::json!(["http://localhost:3000", "https://shop-a.example"])
    );
    assert!(!listed.to_string().contains(&key_a));

    // Bad input is refused before anything is stored.
    for bad in ["ftp://x.example", "https://x.example/path", "x.example"] {
        let out = keystead(
            &data,
            &["app", "create", "--name", "Bad", "--origin", bad, "--json"],
        );
        assert!(!out.status.success(), "{bad} accepted");
    }
    assert_eq!(
        keystead_json(&data, &["app", "list", "--json"])["apps"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let server = start_in(dir);
    let base = server.base.clone();
    wait_for(&format!("{base}/readyz"), 200).await;

    // The OpenAPI document needs no key.
    let openapi = reqwest::get(format!("{base}/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(openapi.status(), StatusCode::OK);

    // A's key names app A, with its providers.
    let reply = get_app(&base, Some(&key_a), None).await;
    assert_eq!(reply.status(), StatusCode::OK);
    let info: Value = reply.json().await.unwrap();
    assert_eq!(
        info,
        serde_json::json!({
            "appId": app_a,
            "name": "Shop A",
            "networks": [],
            "loginProviders": [{"name": "google", "issuer": "https://accounts.google.com"}],
            "origins": ["http://localhost:3000", "https://shop-a.example"],
        })
    );

    // B's key sees B only.
    let info: Value = get_app(&base, Some(&key_b), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["appId"], app_b.as_str());
    assert_eq!(info["name"], "Shop B");
    assert_eq!(info["loginProviders"], serde_json::json!([]));

    // No key, an unknown key.
    for key in [None, Some("ksa_unknown"), Some("")] {
        let reply = get_app(&base, key, None).await;
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(error_code(reply).await, "unauthenticated");
    }

    // A registered origin gets CORS headers for itself, never `*`.
    let reply = get_app(&base, Some(&key_a), Some("https://shop-a.example")).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "https://shop-a.example"
    );
    assert!(
        reply
            .headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin"))
    );
    // An unregistered origin, or another app's, is refused.
    for origin in ["https://evil.example", "https://shop-b.example", "null"] {
        let reply = get_app(&base, Some(&key_a), Some(origin)).await;
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{origin}");
        assert!(reply.headers().get("access-control-allow-origin").is_none());
        assert_eq!(error_code(reply).await, "forbidden_origin");
    }
    // Without an Origin (not a browser) no CORS headers are added.
    let reply = get_app(&base, Some(&key_a), None).await;
    assert!(reply.headers().get("access-control-allow-origin").is_none());

    // Preflights: answered for a registered origin, refused for others.
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{base}/v1/app"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-app-key")
            .send()
    };
    let reply = preflight("http://localhost:3000").await.unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let allowed = reply.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(allowed.contains("x-app-key"), "{allowed}");
    let reply = preflight("https://evil.example").await.unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    assert!(reply.headers().get("access-control-allow-origin").is_none());

    // A new origin, added while the server runs, is accepted at once.
    let out = keystead(
        &data,
        &[
            "app",
            "add-origin",
            "--app",
            &app_a,
            "--origin",
            "https://new.example",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = get_app(&base, Some(&key_a), Some("https://new.example")).await;
    assert_eq!(reply.status(), StatusCode::OK);

    // Rotation: the old key fails, the new one works, B is untouched.
    let rotated = keystead_json(&data, &["app", "rotate-key", "--app", &app_a, "--json"]);
    assert_eq!(rotated["appId"], app_a.as_str());
    let new_key = rotated["appKey"].as_str().unwrap();
    assert_ne!(new_key, key_a);
    // The server reuses an app found by its key for 5 s (APP_KEY_CACHE_TTL): the revoked
    // key stops working within that, and for good.
    let revoked_by = std::time::Instant::now() + std::time::Duration::from_secs(6);
    let reply = loop {
        let reply = get_app(&base, Some(&key_a), None).await;
        if reply.status() != StatusCode::OK || std::time::Instant::now() > revoked_by {
            break reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(reply).await, "unauthenticated");
    let info: Value = get_app(&base, Some(new_key), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["appId"], app_a.as_str());
    assert_eq!(
        get_app(&base, Some(&key_b), None).await.status(),
        StatusCode::OK
    );

    // Unknown apps are reported, not created.
    let out = keystead(&data, &["app", "rotate-key", "--app", "app_nope"]);
    assert!(!out.status.success());
}

#[test]
fn migrate_runs_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    for _ in 0..2 {
        let out = keystead(&data, &["migrate"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(data.join("keystead.db").exists());
    // And the migrated database is usable by the other commands.
    let (app_id, _) = create_app(&data, "After migrate", &["https://a.example"]);
    assert!(app_id.starts_with("app_"));
}
