//! Login, sessions and `/v1/me` through the real binary, against an in-process OpenID
//! provider.

mod common;

use common::{keystead_json, start_in, wait_for};
use keystead_testkit::oidc::{TestIssuer, TokenSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};

const CLIENT_ID: &str = "client-a";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(
        &self,
        key: &str,
        path: &str,
        body: Value,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-app-key", key)
            .json(&body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn login(&self, key: &str, provider: &str, token: &str) -> (StatusCode, Value) {
        self.post(
            key,
            "/v1/auth/id-token",
            json!({"provider": provider, "idToken": token}),
            None,
        )
        .await
    }

    async fn me(&self, key: &str, bearer: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}/v1/me", self.base))
            .header("x-app-key", key)
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn create_app(dir: &std::path::Path, name: &str, oidc: &str) -> (String, String) {
    let created = keystead_json(
        dir,
        &[
            "app",
            "create",
            "--name",
            name,
            "--origin",
            "https://app.example",
            "--oidc",
            oidc,
            "--json",
        ],
    );
    (
        created["appId"].as_str().unwrap().to_string(),
        created["appKey"].as_str().unwrap().to_string(),
    )
}

fn assert_unauthenticated(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unauthenticated", "{what}: {body}");
}

#[tokio::test]
async fn login_refresh_logout_and_me() {
    let issuer = TestIssuer::start().await;
    let other_issuer = TestIssuer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let oidc = format!("test={}@{CLIENT_ID}", issuer.issuer());
    let (app_a, key_a) = create_app(&data, "App A", &oidc);
    let (_app_b, key_b) = create_app(&data, "App B", &oidc);

    let server = start_in(dir);
    let api = Api {
        base: server.base.clone(),
        http: reqwest::Client::new(),
    };
    wait_for(&format!("{}/readyz", api.base), 200).await;

    // The new endpoints are documented.
    let doc: Value = reqwest::get(format!("{}/v1/openapi.json", api.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/auth/id-token",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/jwks.json",
        "/v1/me",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} not in OpenAPI");
    }

    // Bad ID tokens are refused and create no user.
    let t = now();
    let mut bad: Vec<(&str, String)> = Vec::new();
    let mut expired = TokenSpec::new("alice", CLIENT_ID, t - 7200);
    expired.exp = t - 3600;
    bad.push(("expired", issuer.mint(&expired)));
    bad.push((
        "wrong_audience",
        issuer.mint(&TokenSpec::new("alice", "someone-else", t)),
    ));
    bad.push((
        "wrong issuer",
        other_issuer.mint(&TokenSpec::new("alice", CLIENT_ID, t)),
    ));
    let mut none = TokenSpec::new("alice", CLIENT_ID, t);
    none.alg = Some("none".into());
    bad.push(("alg none", issuer.mint(&none)));
    let mut hs = TokenSpec::new("alice", CLIENT_ID, t);
    hs.alg = Some("HS256-with-public-key".into());
    bad.push(("HS256 with the public key", issuer.mint(&hs)));
    let mut kid = TokenSpec::new("alice", CLIENT_ID, t);
    kid.kid = Some("no-such-kid".into());
    bad.push(("unknown kid", issuer.mint(&kid)));
    bad.push(("garbage", "not.a.token".into()));
    for (what, token) in &bad {
        let (status, body) = api.login(&key_a, "test", token).await;
        assert_unauthenticated(status, &body, what);
        let text = body.to_string();
        assert!(!text.contains(token.as_str()), "{what}: token echoed");
    }
    let (status, body) = api.login(&key_a, "test", &bad[0].1).await;
    assert_eq!(
        body["error"]["details"]["reason"], "expired",
        "{status} {body}"
    );
    let (_, body) = api.login(&key_a, "test", &bad[1].1).await;
    assert_eq!(
        body["error"]["details"]["reason"], "wrong_audience",
        "{body}"
    );

    // Unknown provider: invalid_request.
    let good = issuer.mint(&TokenSpec::new("alice", CLIENT_ID, t));
    let (status, body) = api.login(&key_a, "nope", &good).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");

    let store = keystead_store::Store::connect(&format!(
        "sqlite://{}",
        server.dir.path().join("keystead.db").display()
    ))
    .await
    .unwrap();
    assert!(
        store
            .find_user_by_identity(&app_a, "test", "alice")
            .await
            .unwrap()
            .is_none(),
        "a refused token created a user"
    );

    // A valid login: a session, PIN required.
    let (status, session) = api.login(&key_a, "test", &good).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["status"], "pin_required");
    assert_eq!(session["expiresIn"], 900);
    assert_eq!(session["user"]["email"], "alice@example.com");
    let user_id = session["user"]["id"].as_str().unwrap().to_string();
    assert!(user_id.starts_with("usr_"), "{session}");
    let access = session["accessToken"].as_str().unwrap().to_string();
    let refresh = session["refreshToken"].as_str().unwrap().to_string();
    let stored = store
        .find_user_by_identity(&app_a, "test", "alice")
        .await
        .unwrap()
        .expect("the user exists");
    assert_eq!(stored.id, user_id);

    let (status, me) = api.me(&key_a, &access).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me,
        json!({"user": {"id": user_id, "email": "alice@example.com"}, "status": "pin_required", "walletId": null})
    );

    // The same subject again: the same user.
    let again = issuer.mint(&TokenSpec::new("alice", CLIENT_ID, now()));
    let (status, second) = api.login(&key_a, "test", &again).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["user"]["id"], user_id.as_str());

    // An access token is for its app only.
    let (status, body) = api.me(&key_b, &access).await;
    assert_unauthenticated(status, &body, "another app's key");
    let (status, body) = api.me(&key_a, "garbage").await;
    assert_unauthenticated(status, &body, "garbage bearer");

    // JWKS.
    let jwks: Value = api
        .http
        .get(format!("{}/v1/auth/jwks.json", api.base))
        .header("x-app-key", &key_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty(), "{jwks}");

    // Refresh rotates; reusing the old token revokes the session.
    let (status, rotated) = api
        .post(
            &key_a,
            "/v1/auth/refresh",
            json!({"refreshToken": refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["user"]["id"], user_id.as_str());
    let new_refresh = rotated["refreshToken"].as_str().unwrap().to_string();
    let new_access = rotated["accessToken"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, refresh);
    assert_eq!(api.me(&key_a, &new_access).await.0, StatusCode::OK);
    let (status, body) = api
        .post(
            &key_a,
            "/v1/auth/refresh",
            json!({"refreshToken": refresh}),
            None,
        )
        .await;
    assert_unauthenticated(status, &body, "reused refresh token");
    let (status, body) = api
        .post(
            &key_a,
            "/v1/auth/refresh",
            json!({"refreshToken": new_refresh}),
            None,
        )
        .await;
    assert_unauthenticated(status, &body, "refresh after reuse");
    let (status, body) = api.me(&key_a, &new_access).await;
    assert_unauthenticated(status, &body, "access token of a revoked session");

    // Logout ends the session.
    let (status, third) = api
        .login(
            &key_a,
            "test",
            &issuer.mint(&TokenSpec::new("alice", CLIENT_ID, now())),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let access = third["accessToken"].as_str().unwrap().to_string();
    assert_eq!(api.me(&key_a, &access).await.0, StatusCode::OK);
    let (status, _) = api
        .post(&key_a, "/v1/auth/logout", json!({}), Some(&access))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.me(&key_a, &access).await;
    assert_unauthenticated(status, &body, "after logout");
    let (status, body) = api
        .post(
            &key_a,
            "/v1/auth/refresh",
            json!({"refreshToken": third["refreshToken"]}),
            None,
        )
        .await;
    assert_unauthenticated(status, &body, "refresh after logout");

    // Still exactly one user for alice; the second session (unused) still works.
    let (status, _) = api
        .me(&key_a, second["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    store.close().await;
}
