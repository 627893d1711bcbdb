//! `keystead serve --dev`: what trying Keystead on one machine needs, and never anything
//! without `--dev`.
//!
//! - A development OpenID issuer under [`ISSUER_PATH`]: discovery, a JWKS, `POST
//!   /dev/oidc/token {"sub", "email", "aud"?}` that mints an EdDSA-signed ID token for
//!   anyone who asks, and a small page at `GET /dev/oidc` that does the same. Its key is
//!   an Ed25519 PKCS#8 PEM file, `<data_dir>/dev-oidc-key.pem` (mode 0600), made on first
//!   start.
//! - A demo app (`demo`, origin [`DEMO_ORIGIN`], provider [`DEMO_PROVIDER`] at that issuer
//!   with client id [`DEMO_CLIENT_ID`]), made on first start through the same code as
//!   `keystead app create`; its id and key are kept in `<data_dir>/dev-app.json` (mode
//!   0600) so that every start prints the same ones.
//! - The network `local` (see [`crate::config::DEV_NETWORK`]), added by the configuration
//!   loader.
//!
//! Anyone who can reach a server in this mode can log in as anyone: it says so loudly.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, FromRequest, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};
use keystead_identity::hash_token;
use keystead_store::{AppProvider, Store, StoreError};
use keystead_types::ErrorCode;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower_http::cors::{Any, CorsLayer};
use zeroize::Zeroizing;

use crate::admin;
use crate::config::Config;
use crate::http::ApiError;

/// Where the development issuer lives on the server.
pub const ISSUER_PATH: &str = "/dev/oidc";
/// The issuer's signing key, in the data directory.
pub const KEY_FILE: &str = "dev-oidc-key.pem";
/// The demo app's id and key, in the data directory.
pub const APP_FILE: &str = "dev-app.json";
pub const DEMO_APP_NAME: &str = "demo";
pub const DEMO_ORIGIN: &str = "http://localhost:5173";
/// The demo app's name for the development issuer (`POST /v1/auth/id-token {"provider"}`).
pub const DEMO_PROVIDER: &str = "dev";
/// The demo app's client id at the development issuer: minted tokens' default `aud`.
pub const DEMO_CLIENT_ID: &str = "keystead-demo";
/// How long a minted ID token is valid.
pub const TOKEN_TTL_SECS: u64 = 10 * 60;
/// Key and app files are tiny; refuse to read anything large.
const MAX_FILE_BYTES: u64 = 16 * 1024;
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The demo app's id and key, as kept in [`APP_FILE`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoApp {
    pub app_id: String,
    pub app_key: String,
}

/// Sets up development mode when `config.dev` is on and returns its routes; without
/// `dev`, does nothing and returns an empty router. Runs before the server listens.
pub async fn start<R: CryptoRng + ?Sized>(
    config: &Config,
    store: &Store,
    now: u64,
    rng: &mut R,
) -> anyhow::Result<Router> {
    if !config.dev {
        return Ok(Router::new());
    }
    let issuer = issuer_url(config.listen)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let key = load_or_create_key(&config.data_dir.join(KEY_FILE), rng)?;
    let dev = Arc::new(DevIssuer::new(issuer, key));
    let demo = ensure_demo_app(
        store,
        &config.data_dir.join(APP_FILE),
        &dev.issuer,
        now,
        rng,
    )
    .await
    .context("setting up the demo app")?;
    announce(config, &dev.issuer, &demo);
    Ok(routes(dev))
}

/// `http://<listen>/dev/oidc`. An unspecified listen address (`0.0.0.0`, `[::]`) becomes
/// loopback: the server fetches its own discovery document from there.
pub fn issuer_url(listen: SocketAddr) -> anyhow::Result<String> {
    if listen.port() == 0 {
        anyhow::bail!(
            "--dev needs a fixed listen port: the development issuer's URL names it (e.g. --listen 127.0.0.1:8080)"
        );
    }
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    if !ip.is_loopback() {
        tracing::warn!(
            %ip,
            "the development issuer is plain HTTP on a non-loopback address; the ID-token verifier accepts plain-HTTP issuers only on loopback, so its tokens will be refused"
        );
    }
    Ok(format!(
        "http://{}{ISSUER_PATH}",
        SocketAddr::new(ip, listen.port())
    ))
}

/// The development issuer: its URL and signing key.
pub struct DevIssuer {
    issuer: String,
    key: SigningKey,
    kid: String,
    /// Authorization codes handed out and not yet redeemed (single use, 5 minutes).
    codes: std::sync::Mutex<std::collections::HashMap<String, IssuedCode>>,
}

/// What an authorization code stands for until the token endpoint redeems it.
struct IssuedCode {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: String,
    login: MintRequest,
    expires_at: u64,
}

/// The code flow's query (`GET /dev/oidc/authorize`) and the login form's fields.
#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_type: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// Filled in by the login form.
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `POST /dev/oidc/token` as OAuth clients send it (form-encoded).
#[derive(Debug, Deserialize)]
pub struct CodeExchange {
    pub grant_type: String,
    pub code: String,
    pub redirect_uri: String,
    pub client_id: String,
    pub code_verifier: String,
}

/// How long an authorization code may wait to be redeemed.
const CODE_TTL_SECS: u64 = 300;

/// What `POST /dev/oidc/token` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    pub sub: String,
    pub email: Option<String>,
    /// Default: [`DEMO_CLIENT_ID`].
    pub aud: Option<String>,
}

impl DevIssuer {
    pub fn new(issuer: String, key: SigningKey) -> Self {
        let kid = thumbprint(&key);
        Self {
            issuer,
            key,
            kid,
            codes: Default::default(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64(self.key.verifying_key().as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/jwks", self.issuer),
            "token_endpoint": format!("{}/token", self.issuer),
            "authorization_endpoint": format!("{}/authorize", self.issuer),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "claims_supported": ["iss", "sub", "aud", "iat", "exp", "email", "email_verified"],
        })
    }

    /// The only place a code may be sent: this server's own login callback.
    fn allowed_redirect(&self) -> String {
        let base = self.issuer.trim_end_matches(ISSUER_PATH);
        format!("{base}/v1/auth/oauth/callback")
    }

    /// Checks an authorization request; the error is shown to the user.
    pub fn check_authorize(&self, params: &AuthorizeParams) -> Result<(), String> {
        if params.response_type != "code" {
            return Err("response_type must be code".into());
        }
        if params.redirect_uri != self.allowed_redirect() {
            return Err(format!(
                "redirect_uri must be this server's callback, {}",
                self.allowed_redirect()
            ));
        }
        if params.code_challenge_method.as_deref() != Some("S256")
            || params.code_challenge.as_deref().is_none_or(str::is_empty)
        {
            return Err("PKCE with code_challenge_method S256 is required".into());
        }
        Ok(())
    }

    /// Hands out a code for a checked request and the login the user typed.
    pub fn issue_code<R: CryptoRng + ?Sized>(
        &self,
        params: &AuthorizeParams,
        login: MintRequest,
        now: u64,
        rng: &mut R,
    ) -> Result<String, String> {
        self.check_authorize(params)?;
        self.mint(&login, now)?; // refuses what minting would refuse, before redirecting
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let code = b64(&bytes);
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, c| c.expires_at > now);
        codes.insert(
            code.clone(),
            IssuedCode {
                client_id: params.client_id.clone(),
                redirect_uri: params.redirect_uri.clone(),
                nonce: params.nonce.clone(),
                code_challenge: params.code_challenge.clone().unwrap_or_default(),
                login,
                expires_at: now + CODE_TTL_SECS,
            },
        );
        Ok(code)
    }

    /// Redeems a code (once) for an ID token, checking the PKCE verifier, the client and
    /// the redirect URI.
    pub fn redeem(&self, exchange: &CodeExchange, now: u64) -> Result<String, String> {
        if exchange.grant_type != "authorization_code" {
            return Err("unsupported_grant_type".into());
        }
        let issued = self
            .codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&exchange.code)
            .filter(|c| c.expires_at > now)
            .ok_or("invalid_grant")?;
        let challenge = b64(&Sha256::digest(exchange.code_verifier.as_bytes()));
        if challenge != issued.code_challenge
            || exchange.client_id != issued.client_id
            || exchange.redirect_uri != issued.redirect_uri
        {
            return Err("invalid_grant".into());
        }
        let login = MintRequest {
            aud: Some(issued.client_id),
            ..issued.login
        };
        self.mint_with_nonce(&login, issued.nonce.as_deref(), now)
    }

    /// A signed ID token for `request`, issued at `now`, valid for [`TOKEN_TTL_SECS`].
    pub fn mint(&self, request: &MintRequest, now: u64) -> Result<String, String> {
        self.mint_with_nonce(request, None, now)
    }

    fn mint_with_nonce(
        &self,
        request: &MintRequest,
        nonce: Option<&str>,
        now: u64,
    ) -> Result<String, String> {
        let sub = request.sub.as_str();
        if sub.trim().is_empty() || sub.len() > 255 || sub.chars().any(char::is_control) {
            return Err("sub must be 1 to 255 characters, none of them control characters".into());
        }
        let aud = request.aud.as_deref().unwrap_or(DEMO_CLIENT_ID);
        if aud.is_empty() || aud.len() > 255 || aud.chars().any(char::is_control) {
            return Err("aud must be 1 to 255 characters".into());
        }
        let mut claims = json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": aud,
            "iat": now,
            "exp": now.saturating_add(TOKEN_TTL_SECS),
        });
        if let Some(email) = &request.email {
            let email = email.trim();
            let valid = email.len() <= 254
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
            if !valid {
                return Err("email must look like name@domain".into());
            }
            claims["email"] = json!(email);
            claims["email_verified"] = json!(true);
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", b64(&signature.to_bytes())))
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 JWK thumbprint of the public key: a stable `kid`.
fn thumbprint(key: &SigningKey) -> String {
    let x = b64(key.verifying_key().as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    b64(&Sha256::digest(canonical.as_bytes()))
}

/// The issuer's routes (they need no app key), with their own state and layers.
pub fn routes(dev: Arc<DevIssuer>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE]);
    Router::new()
        .route(ISSUER_PATH, get(page))
        .route(
            &format!("{ISSUER_PATH}/.well-known/openid-configuration"),
            get(discovery),
        )
        .route(&format!("{ISSUER_PATH}/jwks"), get(jwks))
        .route(&format!("{ISSUER_PATH}/token"), post(token))
        .route(
            &format!("{ISSUER_PATH}/authorize"),
            get(authorize_page).post(authorize_submit),
        )
        .with_state(dev)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors)
}

async fn discovery(State(dev): State<Arc<DevIssuer>>) -> Json<Value> {
    Json(dev.discovery())
}

async fn jwks(State(dev): State<Arc<DevIssuer>>) -> Json<Value> {
    Json(json!({ "keys": [dev.jwk()] }))
}

async fn token(State(dev): State<Arc<DevIssuer>>, request: axum::extract::Request) -> Response {
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let answer = if form {
        match axum::extract::Form::<CodeExchange>::from_request(request, &()).await {
            Ok(axum::extract::Form(exchange)) => redeem(&dev, &exchange),
            Err(e) => oauth_error("invalid_request", &e.body_text()),
        }
    } else {
        match Json::<MintRequest>::from_request(request, &()).await {
            Ok(Json(mint)) => mint_json(&dev, &mint),
            Err(e) => ApiError::new(ErrorCode::InvalidRequest, e.body_text()).into_response(),
        }
    };
    let mut response = answer;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn mint_json(dev: &DevIssuer, request: &MintRequest) -> Response {
    match dev.mint(request, crate::auth::now()) {
        Ok(id_token) => {
            // The subject is no secret; the token is never logged.
            tracing::info!(sub = %request.sub, "development issuer minted an ID token");
            Json(json!({"idToken": id_token, "expiresIn": TOKEN_TTL_SECS})).into_response()
        }
        Err(m) => ApiError::new(ErrorCode::InvalidRequest, m).into_response(),
    }
}

fn redeem(dev: &DevIssuer, exchange: &CodeExchange) -> Response {
    match dev.redeem(exchange, crate::auth::now()) {
        Ok(id_token) => Json(json!({
            "id_token": id_token,
            "token_type": "Bearer",
            "access_token": "dev-issuer-grants-nothing",
            "expires_in": TOKEN_TTL_SECS,
        }))
        .into_response(),
        Err(error) => oauth_error(
            &error,
            "the code is unknown, used, expired or for another client",
        ),
    }
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        axum::http::StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The login page of the code flow: who to sign in as.
async fn authorize_page(
    State(dev): State<Arc<DevIssuer>>,
    axum::extract::Query(params): axum::extract::Query<AuthorizeParams>,
) -> Response {
    if let Err(why) = dev.check_authorize(&params) {
        return (axum::http::StatusCode::BAD_REQUEST, why).into_response();
    }
    let hidden: String = [
        ("client_id", Some(params.client_id.as_str())),
        ("redirect_uri", Some(params.redirect_uri.as_str())),
        ("response_type", Some(params.response_type.as_str())),
        ("state", params.state.as_deref()),
        ("nonce", params.nonce.as_deref()),
        ("code_challenge", params.code_challenge.as_deref()),
        (
            "code_challenge_method",
            params.code_challenge_method.as_deref(),
        ),
        ("scope", params.scope.as_deref()),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value.map(|v| {
            format!(
                r#"<input type="hidden" name="{name}" value="{}">"#,
                html_escape(v)
            )
        })
    })
    .collect();
    Html(AUTHORIZE_PAGE.replace("{hidden}", &hidden)).into_response()
}

/// The login form's answer: a code, sent back to the server's callback.
async fn authorize_submit(
    State(dev): State<Arc<DevIssuer>>,
    axum::extract::Form(params): axum::extract::Form<AuthorizeParams>,
) -> Response {
    let login = MintRequest {
        sub: params.sub.clone().unwrap_or_default(),
        email: params.email.clone().filter(|e| !e.trim().is_empty()),
        aud: None,
    };
    let mut rng = rand::TryRngCore::unwrap_err(rand::rngs::OsRng);
    match dev.issue_code(&params, login, crate::auth::now(), &mut rng) {
        Ok(code) => {
            let mut url = match url::Url::parse(&params.redirect_uri) {
                Ok(url) => url,
                Err(_) => {
                    return (axum::http::StatusCode::BAD_REQUEST, "bad redirect_uri")
                        .into_response();
                }
            };
            url.query_pairs_mut().append_pair("code", &code);
            if let Some(state) = &params.state {
                url.query_pairs_mut().append_pair("state", state);
            }
            axum::response::Redirect::to(url.as_str()).into_response()
        }
        Err(why) => (axum::http::StatusCode::BAD_REQUEST, why).into_response(),
    }
}

const AUTHORIZE_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keystead development sign-in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 2rem auto">
<h1>Development sign-in</h1>
<p><strong>keystead serve --dev</strong>: this issuer signs anyone in. Never use it in production.</p>
<form method="post">
{hidden}
<p><label>User (subject) <input name="sub" required value="alice"></label></p>
<p><label>Email <input name="email" type="email" value="alice@example.test"></label></p>
<p><button type="submit">Sign in</button></p>
</form>
</body></html>
"#;

async fn page(State(dev): State<Arc<DevIssuer>>) -> Html<String> {
    Html(
        PAGE.replace("{issuer}", &html_escape(&dev.issuer))
            .replace("{client_id}", DEMO_CLIENT_ID)
            .replace("{provider}", DEMO_PROVIDER)
            .replace("{token_path}", &format!("{ISSUER_PATH}/token")),
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Keystead development OpenID issuer</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }
.warn { background: #fff3cd; border: 1px solid #e0c36c; padding: .75rem 1rem; }
label { display: block; margin: .5rem 0; }
input { width: 22rem; }
textarea { width: 100%; height: 8rem; font-family: monospace; }
pre { background: #f4f4f4; padding: .5rem; overflow-x: auto; }
</style>
</head>
<body>
<h1>Keystead development OpenID issuer</h1>
<p class="warn"><strong>Development mode.</strong> This issuer signs an ID token for
anyone who asks. It exists only under <code>keystead serve --dev</code>.</p>
<p>Issuer <code>{issuer}</code>; the demo app knows it as provider <code>{provider}</code>
with client id <code>{client_id}</code>.</p>
<form id="mint">
<label>sub <input name="sub" value="alice" required></label>
<label>email <input name="email" value="alice@example.test"></label>
<label>aud <input name="aud" placeholder="{client_id}"></label>
<button type="submit">Mint an ID token</button>
</form>
<p id="error" style="color: #b00020"></p>
<textarea id="token" readonly placeholder="the ID token appears here"></textarea>
<p>Log in with it:</p>
<pre>keystead wallet login --server SERVER --app-key APP_KEY --provider {provider} --id-token TOKEN</pre>
<p>(the demo app's key is printed when the server starts, and kept in
<code>dev-app.json</code> in its data directory.)</p>
<script>
document.getElementById("mint").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { sub: form.get("sub") };
  if (form.get("email")) body.email = form.get("email");
  if (form.get("aud")) body.aud = form.get("aud");
  document.getElementById("error").textContent = "";
  const response = await fetch("{token_path}", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.ok) {
    document.getElementById("token").value = answer.idToken;
  } else {
    document.getElementById("error").textContent = answer.error ? answer.error.message : response.statusText;
  }
});
</script>
</body>
</html>
"#;

/// Loads the issuer key at `path`, or creates it (mode 0600) when there is none.
pub fn load_or_create_key<R: CryptoRng + ?Sized>(
    path: &Path,
    rng: &mut R,
) -> anyhow::Result<SigningKey> {
    if let Some(pem) = read_private(path)? {
        return SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
            anyhow::anyhow!(
                "{} is not an Ed25519 PKCS#8 PEM private key; delete it to make a new one",
                path.display()
            )
        });
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the development issuer key: {e}"))?;
    write_private(path, pem.as_bytes())?;
    tracing::info!(path = %path.display(), "created the development issuer key");
    Ok(key)
}

/// A small private file's text, or `None` when there is none. Warns when group or others
/// may read it.
fn read_private(path: &Path) -> anyhow::Result<Option<Zeroizing<String>>> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if metadata.len() > MAX_FILE_BYTES {
        anyhow::bail!("{} is too large to be a Keystead file", path.display());
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "file is readable by group or others; chmod 600 it");
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(Zeroizing::new(text)))
}

/// Writes `bytes` to `path` with mode 0600, atomically (a temporary file, then a rename).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // An existing temporary file keeps its mode: make sure.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// Makes sure the demo app exists, its key is the one in `app_file`, and its provider
/// [`DEMO_PROVIDER`] points at `issuer`.
pub async fn ensure_demo_app<R: CryptoRng + ?Sized>(
    store: &Store,
    app_file: &Path,
    issuer: &str,
    now: u64,
    rng: &mut R,
) -> anyhow::Result<DemoApp> {
    let now = i64::try_from(now).context("the clock")?;
    let saved = match read_private(app_file)? {
        None => None,
        Some(text) => Some(serde_json::from_str::<DemoApp>(&text).map_err(|_| {
            anyhow::anyhow!(
                "{} is not {{\"appId\", \"appKey\"}}; delete it to make a new demo app",
                app_file.display()
            )
        })?),
    };
    let demo = match saved {
        None => create_demo_app(store, app_file, issuer, now, rng).await?,
        Some(saved) => match store.app_for_key(&hash_token(&saved.app_key)).await {
            Ok(app) if app.id == saved.app_id => saved,
            Ok(_) | Err(StoreError::NotFound) => match store.get_app(&saved.app_id).await {
                Ok(_) => {
                    // The app is there but its key was rotated or revoked: a new one.
                    let rotated = admin::rotate_key(store, &saved.app_id, now, rng).await?;
                    let demo = DemoApp {
                        app_id: rotated.app_id,
                        app_key: rotated.app_key,
                    };
                    write_private(app_file, &serde_json::to_vec_pretty(&demo)?)?;
                    tracing::warn!(app = %demo.app_id, "the demo app's saved key no longer worked; it has a new one");
                    demo
                }
                Err(StoreError::NotFound) => {
                    tracing::warn!(app = %saved.app_id, "the saved demo app is not in the database; making a new one");
                    create_demo_app(store, app_file, issuer, now, rng).await?
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        },
    };
    let wanted = AppProvider {
        app_id: demo.app_id.clone(),
        name: DEMO_PROVIDER.into(),
        kind: "oidc".into(),
        issuer: issuer.to_string(),
        client_id: DEMO_CLIENT_ID.into(),
    };
    match store.get_app_provider(&demo.app_id, DEMO_PROVIDER).await {
        Ok(p)
            if p.kind == wanted.kind
                && p.issuer == wanted.issuer
                && p.client_id == wanted.client_id => {}
        Ok(_) | Err(StoreError::NotFound) => {
            store.put_app_provider(&wanted).await?;
            tracing::info!(app = %demo.app_id, issuer, "pointed the demo app's provider at the development issuer");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(demo)
}

async fn create_demo_app<R: CryptoRng + ?Sized>(
    store: &Store,
    app_file: &Path,
    issuer: &str,
    now: i64,
    rng: &mut R,
) -> anyhow::Result<DemoApp> {
    let new = admin::NewApp::parse(
        DEMO_APP_NAME,
        &[DEMO_ORIGIN.to_string()],
        &[format!("{DEMO_PROVIDER}={issuer}@{DEMO_CLIENT_ID}")],
    )?;
    let created = admin::create_app(store, &new, now, rng).await?;
    let demo = DemoApp {
        app_id: created.app_id,
        app_key: created.app_key,
    };
    write_private(app_file, &serde_json::to_vec_pretty(&demo)?)?;
    tracing::info!(app = %demo.app_id, file = %app_file.display(), "created the demo app");
    Ok(demo)
}

/// Says loudly, on stderr and in the log, that development mode is on and what it gives.
fn announce(config: &Config, issuer: &str, demo: &DemoApp) {
    tracing::warn!(
        issuer,
        demo_app = %demo.app_id,
        networks = ?config.networks,
        "DEVELOPMENT MODE: a development OpenID issuer that signs ID tokens for anyone, a demo app and a local network are enabled; never use --dev in production"
    );
    let networks = if config.networks.is_empty() {
        "none".to_string()
    } else {
        config
            .networks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let line = "=".repeat(78);
    eprintln!(
        "{line}
 KEYSTEAD DEVELOPMENT MODE (--dev) -- never use it in production
 It enables:
  - a development OpenID issuer that signs ID tokens for ANYONE who asks:
      {issuer}  (open it in a browser, or POST {issuer}/token)
  - a demo app, kept in {app_file}:
      appId:    {app_id}
      appKey:   {app_key}
      provider: {provider} (client id {client_id}), origin {origin}
  - networks: {networks}
 Mint an ID token:
   curl -s -X POST {issuer}/token -H 'content-type: application/json' -d '{{\"sub\":\"alice\",\"email\":\"alice@example.test\"}}'
{line}",
        app_file = config.data_dir.join(APP_FILE).display(),
        app_id = demo.app_id,
        app_key = demo.app_key,
        provider = DEMO_PROVIDER,
        client_id = DEMO_CLIENT_ID,
        origin = DEMO_ORIGIN,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    fn issuer() -> DevIssuer {
        let mut rng = rand::rng();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        DevIssuer::new(
            "http://127.0.0.1:8080/dev/oidc".into(),
            SigningKey::from_bytes(&seed),
        )
    }

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn issuer_urls_name_a_reachable_address() {
        let url = |s: &str| issuer_url(s.parse().unwrap());
        assert_eq!(
            url("127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/dev/oidc"
        );
        assert_eq!(
            url("0.0.0.0:9000").unwrap(),
            "http://127.0.0.1:9000/dev/oidc"
        );
        assert_eq!(url("[::]:9000").unwrap(), "http://[::1]:9000/dev/oidc");
        assert!(url("127.0.0.1:0").is_err());
    }

    #[test]
    fn minted_tokens_carry_the_claims_and_verify() {
        let dev = issuer();
        let token = dev
            .mint(
                &MintRequest {
                    sub: "alice".into(),
                    email: Some("alice@example.test".into()),
                    aud: None,
                },
                1_000,
            )
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], dev.kid());
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], dev.issuer());
        assert_eq!(claims["aud"], DEMO_CLIENT_ID);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["exp"], 1_000 + TOKEN_TTL_SECS);
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap()
            .try_into()
            .unwrap();
        dev.key
            .verifying_key()
            .verify_strict(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .unwrap();
        assert_eq!(dev.jwk()["kid"], dev.kid());
        assert_eq!(dev.discovery()["issuer"], dev.issuer());

        for bad in [("", None), ("bob", Some("not-an-email")), ("x\n", None)] {
            let request = MintRequest {
                sub: bad.0.into(),
                email: bad.1.map(str::to_string),
                aud: None,
            };
            assert!(dev.mint(&request, 1_000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let mut rng = rand::rng();
        let first = load_or_create_key(&path, &mut rng).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create_key(&path, &mut rng).unwrap();
        assert_eq!(first.verifying_key(), again.verifying_key());
    }

    #[tokio::test]
    async fn the_demo_app_is_made_once_and_follows_the_issuer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(APP_FILE);
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let mut rng = rand::rng();
        let a = "http://127.0.0.1:8080/dev/oidc";
        let b = "http://127.0.0.1:9090/dev/oidc";
        let first = ensure_demo_app(&store, &file, a, 100, &mut rng)
            .await
            .unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = ensure_demo_app(&store, &file, b, 200, &mut rng)
            .await
            .unwrap();
        assert_eq!(first, second);
        assert_eq!(store.list_apps().await.unwrap().len(), 1);
        let provider = store
            .get_app_provider(&first.app_id, DEMO_PROVIDER)
            .await
            .unwrap();
        assert_eq!(provider.issuer, b);
        assert_eq!(provider.client_id, DEMO_CLIENT_ID);

        // A rotated key is replaced, and the file follows.
        admin::rotate_key(&store, &first.app_id, 300, &mut rng)
            .await
            .unwrap();
        let third = ensure_demo_app(&store, &file, b, 400, &mut rng)
            .await
            .unwrap();
        assert_eq!(third.app_id, first.app_id);
        assert_ne!(third.app_key, first.app_key);
        let saved: DemoApp = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(saved, third);
    }
}
