//! `keystead serve --dev` through the real binary: the demo app it makes and prints, its
//! development OpenID issuer logging users in, both kept across restarts; and none of it
//! without `--dev`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Server, start_with_args, stderr_path, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A network that is never dialled, so that the tests need nothing on port 8545.
const NETWORK: &str = "local=31337@http://127.0.0.1:1";

fn start_dev(dir: tempfile::TempDir) -> Server {
    start_with_args(dir, &["--dev", "--network", NETWORK])
}

/// Stops the server and hands back its data directory.
fn stop(mut server: Server) -> tempfile::TempDir {
    let _ = server.child.kill();
    let _ = server.child.wait();
    std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap())
}

/// The value after `label` on a line of the server's stderr, waiting for it to appear.
async fn printed(server: &Server, label: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(stderr_path(server)).unwrap_or_default();
        if let Some(value) = text.lines().find_map(|line| {
            line.trim()
                .strip_prefix(label)
                .map(|rest| rest.trim().to_string())
        }) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "the server never printed {label:?}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &Server) -> Self {
        Self {
            base: server.base.clone(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, key: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.header("x-app-key", key);
        }
        self.send(req).await
    }

    async fn mint(&self, body: Value) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(format!("{}/dev/oidc/token", self.base))
                .json(&body),
        )
        .await
    }

    async fn login(&self, key: &str, id_token: &str) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(format!("{}/v1/auth/id-token", self.base))
                .header("x-app-key", key)
                .json(&json!({"provider": "dev", "idToken": id_token})),
        )
        .await
    }

    async fn me(&self, key: &str, access: &str) -> (StatusCode, Value) {
        self.send(
            self.http
                .get(format!("{}/v1/me", self.base))
                .header("x-app-key", key)
                .bearer_auth(access),
        )
        .await
    }

    /// Mints a token for `sub` and logs in with it; returns the session.
    async fn mint_and_login(&self, key: &str, sub: &str) -> Value {
        let (status, minted) = self
            .mint(json!({"sub": sub, "email": format!("{sub}@example.test")}))
            .await;
        assert_eq!(status, StatusCode::OK, "{minted}");
        let id_token = minted["idToken"].as_str().expect("an idToken");
        let (status, session) = self.login(key, id_token).await;
        assert_eq!(status, StatusCode::OK, "{session}");
        session
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn dev_mode_prints_a_demo_app_whose_users_log_in_through_the_dev_issuer() {
    let server = start_dev(tempfile::tempdir().unwrap());
    wait_for(&format!("{}/healthz", server.base), 200).await;
    let api = Api::new(&server);
    let issuer = format!("{}/dev/oidc", server.base);

    // The demo app's id and key are printed, and kept privately in the data directory.
    let app_id = printed(&server, "appId:").await;
    let app_key = printed(&server, "appKey:").await;
    let stderr = std::fs::read_to_string(stderr_path(&server)).unwrap();
    assert!(stderr.contains("DEVELOPMENT MODE"), "{stderr}");
    assert!(stderr.contains(&issuer), "{stderr}");
    let app_file = server.dir.path().join("dev-app.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&app_file).unwrap()).unwrap();
    assert_eq!(saved, json!({"appId": app_id, "appKey": app_key}));
    assert_eq!(mode(&app_file), 0o600);
    assert_eq!(mode(&server.dir.path().join("dev-oidc-key.pem")), 0o600);

    // The key works, and the app lists the development provider.
    let (status, app) = api.get(Some(&app_key), "/v1/app").await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["appId"], app_id.as_str());
    assert_eq!(app["name"], "demo");
    let providers = app["loginProviders"].as_array().unwrap();
    assert!(
        providers
            .iter()
            .any(|p| p["name"] == "dev" && p["issuer"] == issuer.as_str()),
        "{app}"
    );

    // The issuer's discovery document and keys; no app key needed.
    let (status, discovery) = api
        .get(None, "/dev/oidc/.well-known/openid-configuration")
        .await;
    assert_eq!(status, StatusCode::OK, "{discovery}");
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(discovery["jwks_uri"], format!("{issuer}/jwks"));
    assert_eq!(discovery["token_endpoint"], format!("{issuer}/token"));
    assert!(
        discovery["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("EdDSA")),
        "{discovery}"
    );
    let (status, jwks) = api.get(None, "/dev/oidc/jwks").await;
    assert_eq!(status, StatusCode::OK, "{jwks}");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA", "{jwks}");
    let page = api.http.get(&issuer).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form") && html.contains(&issuer), "{html}");

    // A minted token logs in, and /v1/me answers.
    let session = api.mint_and_login(&app_key, "alice").await;
    assert_eq!(session["status"], "pin_required", "{session}");
    assert_eq!(session["user"]["email"], "alice@example.test");
    let user_id = session["user"]["id"].as_str().unwrap().to_string();
    let access = session["accessToken"].as_str().unwrap();
    let (status, me) = api.me(&app_key, access).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], user_id.as_str());
    assert_eq!(me["user"]["email"], "alice@example.test");

    // Tokens for another client are refused; bad requests are invalid_request.
    let (status, minted) = api
        .mint(json!({"sub": "alice", "email": "alice@example.test", "aud": "someone-else"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    let (status, body) = api
        .login(&app_key, minted["idToken"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body["error"]["details"]["reason"], "wrong_audience",
        "{body}"
    );
    for bad in [
        json!({"sub": ""}),
        json!({"email": "alice@example.test"}),
        json!({"sub": "alice", "email": "no-at-sign"}),
        json!({"sub": "alice", "surprise": true}),
    ] {
        let (status, body) = api.mint(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{bad}: {body}");
    }

    // A restart (on another port) keeps the app and its key, points its provider at the
    // new address, and the same subject is the same user.
    let dir = stop(server);
    let server = start_dev(dir);
    wait_for(&format!("{}/healthz", server.base), 200).await;
    let api = Api::new(&server);
    assert_eq!(printed(&server, "appId:").await, app_id);
    assert_eq!(printed(&server, "appKey:").await, app_key);
    let (status, app) = api.get(Some(&app_key), "/v1/app").await;
    assert_eq!(status, StatusCode::OK, "{app}");
    let new_issuer = format!("{}/dev/oidc", server.base);
    assert!(
        app["loginProviders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "dev" && p["issuer"] == new_issuer.as_str()),
        "{app}"
    );
    let session = api.mint_and_login(&app_key, "alice").await;
    assert_eq!(session["user"]["id"], user_id.as_str(), "{session}");
}

#[tokio::test]
async fn without_dev_there_is_no_issuer_and_no_demo_app() {
    let server = start_with_args(tempfile::tempdir().unwrap(), &["--network", NETWORK]);
    wait_for(&format!("{}/healthz", server.base), 200).await;
    let api = Api::new(&server);
    let (status, _) = api.mint(json!({"sub": "alice"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in [
        "/dev/oidc",
        "/dev/oidc/.well-known/openid-configuration",
        "/dev/oidc/jwks",
    ] {
        let (status, _) = api.get(None, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(!server.dir.path().join("dev-app.json").exists());
    assert!(!server.dir.path().join("dev-oidc-key.pem").exists());
    let stderr = std::fs::read_to_string(stderr_path(&server)).unwrap();
    assert!(!stderr.contains("DEVELOPMENT MODE"), "{stderr}");
}

/// The JSON a login result page hands to its opener: (origin, result).
fn result_of(page: &str) -> (Value, Value) {
    let start = page.find("id=\"result\">").expect("a result page") + "id=\"result\">".len();
    let end = start + page[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&page[start..end]).unwrap();
    (data["origin"].clone(), data["result"].clone())
}

#[tokio::test]
async fn the_popup_login_works_with_the_dev_issuer() {
    let server = start_dev(tempfile::tempdir().unwrap());
    wait_for(&format!("{}/healthz", server.base), 200).await;
    let app_key = printed(&server, "appKey:").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = format!(
        "{}/v1/auth/oauth/start?appKey={app_key}&provider=dev&origin=http://localhost:5173",
        server.base
    );
    let r = http.get(&start).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        authorize.path().ends_with("/dev/oidc/authorize"),
        "{authorize}"
    );

    // The sign-in page, then its form: a code goes back to the server's callback only.
    let page = http.get(authorize.clone()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("name=\"code_challenge\"")
    );
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    form.push(("sub".into(), "dora".into()));
    form.push(("email".into(), "dora@example.test".into()));
    let mut elsewhere = form.clone();
    for (k, v) in elsewhere.iter_mut() {
        if k == "redirect_uri" {
            *v = "https://evil.example/cb".into();
        }
    }
    let encode = |fields: &[(String, String)]| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
    };
    let refused = http
        .post(authorize.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&elsewhere))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let back = http
        .post(authorize)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&form))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.starts_with(&format!("{}/v1/auth/oauth/callback?code=", server.base)));

    let page = http
        .get(&callback)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (origin, result) = result_of(&page);
    assert_eq!(origin, "http://localhost:5173");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["session"]["user"]["email"], "dora@example.test");
    let api = Api::new(&server);
    let (status, me) = api
        .me(&app_key, result["session"]["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["email"], "dora@example.test");

    // The code was single use.
    let page = http
        .get(&callback)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(result_of(&page).1["ok"], false);
}
