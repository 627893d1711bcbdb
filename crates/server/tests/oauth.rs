//! Login in a popup through the server (authorization code + PKCE) against a real OpenID
//! provider: the server sends the browser there, exchanges the code, checks the ID token
//! and its nonce, and hands the session only to the registered origin.

mod common;
mod e2e;

use common::{keystead_json, wait_for};
use e2e::{ServerProcess, free_port};
use keystead_testkit::oidc_provider::{ClientSpec, OidcProvider};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;

const ORIGIN: &str = "http://localhost:5173";

/// The JSON the result page hands to its opener, and the origin it posts to.
fn page_result(html: &str) -> (Value, Value) {
    let start = html.find("id=\"result\">").expect("result element") + "id=\"result\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    (data["origin"].clone(), data["result"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popup_login_through_the_server_with_a_real_provider() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let callback = format!("{base}/v1/auth/oauth/callback");
    let provider =
        OidcProvider::start(&[ClientSpec::public("keystead-web").with_redirect_uri(&callback)]);
    let dir = tempfile::tempdir().unwrap();
    let oidc = format!("real={}@keystead-web", provider.issuer());
    let app = keystead_json(
        dir.path(),
        &[
            "app", "create", "--name", "popup", "--origin", ORIGIN, "--oidc", &oidc, "--json",
        ],
    );
    let app_key = app["appKey"].as_str().unwrap().to_string();
    let server = ServerProcess::start_on(dir, port, Vec::new());
    wait_for(&format!("{base}/readyz"), 200).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let start = |origin: &str, key: &str| {
        let mut url = reqwest::Url::parse(&format!("{base}/v1/auth/oauth/start")).unwrap();
        url.query_pairs_mut()
            .append_pair("appKey", key)
            .append_pair("provider", "real")
            .append_pair("origin", origin);
        http.get(url).send()
    };

    // Refused before the provider is involved: unknown key, unregistered origin.
    let r = start(ORIGIN, "ksa_nope").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = start("https://evil.example", &app_key).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = start(ORIGIN, &app_key).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", server.log());
    let to_provider = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(to_provider.as_str().starts_with(&provider.issuer()));
    let params: std::collections::HashMap<_, _> = to_provider.query_pairs().into_owned().collect();
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["redirect_uri"], callback);
    assert!(!params.contains_key("code_verifier"));

    // The user logs in at the provider; it redirects back with a code.
    let back = provider
        .authorize(to_provider, &callback, "alice")
        .await
        .unwrap();
    let r = http.get(back.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let (origin, result) = page_result(&r.text().await.unwrap());
    assert_eq!(
        origin, ORIGIN,
        "the session goes to the registered origin only"
    );
    assert_eq!(result["ok"], true, "{result}\n{}", server.log());
    let session = &result["session"];
    assert_eq!(session["user"]["email"], "alice@example.test");

    // The session works for the app.
    let me: Value = reqwest::Client::new()
        .get(format!("{base}/v1/me"))
        .header("x-app-key", &app_key)
        .bearer_auth(session["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], "alice@example.test");

    // The code and the login are single use.
    let r = http.get(back).send().await.unwrap();
    let (origin, result) = page_result(&r.text().await.unwrap());
    assert!(origin.is_null());
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"]["code"], "unauthenticated");

    // A forged state is refused and hands nothing to anyone.
    let r = http
        .get(format!("{callback}?state=forged&code=abc"))
        .send()
        .await
        .unwrap();
    let (origin, result) = page_result(&r.text().await.unwrap());
    assert!(origin.is_null());
    assert_eq!(result["ok"], false);

    // The server's own origin (its widget) may start a login too.
    let r = start(&base, &app_key).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}
