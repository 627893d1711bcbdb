//! A real, certified OpenID provider for tests: panva's `oidc-provider` (npm), run by
//! `crates/testkit/node/oidc-provider/server.mjs`.
//!
//! `scripts/lib/oidc_provider.sh` (`ensure_oidc_provider`, which `scripts/test` runs)
//! installs it and exports `KEYSTEAD_OIDC_PROVIDER_DIR`; [`OidcProvider::start`] runs
//! `node server.mjs` from there on `127.0.0.1` with a port the OS picked, and its issuer
//! is `http://127.0.0.1:<port>`. It signs RS256 ID tokens with a fixed test key, so its
//! JWKS is the same across restarts. It is killed on drop.
//!
//! [`OidcProvider::id_token`] logs a user in the way a browser would, without one: the
//! authorization-code flow with PKCE (S256) through the provider's development login and
//! consent pages (`devInteractions`: any login name, any password), keeping the
//! provider's cookies, stopping at the client's `redirect_uri` (never connected to), and
//! redeeming the code at `/token`. The ID token's `sub` is the login name and its
//! `email` is `<login>@example.test` (or the login itself when it contains `@`), with
//! `email_verified: true`.
//!
//! For tokens a provider must never issue (wrong audience, expired, bad algorithms...),
//! use the in-process [`crate::oidc::TestIssuer`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

/// Where a [`ClientSpec`] is redirected unless told otherwise. Nothing listens there:
/// the login stops at the redirect and reads the code from its `Location`.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

const START_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const KEEP_LINES: usize = 200;
/// Requests one login may take (auth, login page, login, resume, consent page, consent,
/// resume: seven in practice).
const MAX_STEPS: usize = 20;

/// A client registered at the provider: authorization code flow, `response_type=code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    pub client_id: String,
    /// `None`: a public client (`token_endpoint_auth_method: none`, like an SPA or a
    /// mobile app). `Some`: a confidential one using `client_secret_basic`.
    pub client_secret: Option<String>,
    pub redirect_uri: String,
}

impl ClientSpec {
    /// A public client (no secret) redirected to [`DEFAULT_REDIRECT_URI`].
    pub fn public(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            client_secret: None,
            redirect_uri: DEFAULT_REDIRECT_URI.to_string(),
        }
    }

    /// A confidential client authenticating with HTTP Basic at `/token`.
    pub fn confidential(client_id: &str, client_secret: &str) -> Self {
        Self {
            client_secret: Some(client_secret.to_string()),
            ..Self::public(client_id)
        }
    }

    /// The same client with another redirect URI.
    pub fn with_redirect_uri(mut self, redirect_uri: &str) -> Self {
        self.redirect_uri = redirect_uri.to_string();
        self
    }

    /// The client's metadata as oidc-provider takes it.
    fn metadata(&self) -> Value {
        let mut metadata = json!({
            "client_id": self.client_id,
            "redirect_uris": [self.redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        });
        match &self.client_secret {
            Some(secret) => {
                metadata["client_secret"] = json!(secret);
                metadata["token_endpoint_auth_method"] = json!("client_secret_basic");
            }
            None => metadata["token_endpoint_auth_method"] = json!("none"),
        }
        metadata
    }
}

/// A public client (see [`ClientSpec::public`]).
pub fn public_client(client_id: &str) -> ClientSpec {
    ClientSpec::public(client_id)
}

/// A confidential client (see [`ClientSpec::confidential`]).
pub fn confidential_client(client_id: &str, client_secret: &str) -> ClientSpec {
    ClientSpec::confidential(client_id, client_secret)
}

/// A running oidc-provider, killed on drop.
pub struct OidcProvider {
    child: Option<Child>,
    port: u16,
    clients: Vec<ClientSpec>,
    output: Arc<Mutex<VecDeque<String>>>,
    http: reqwest::Client,
}

impl OidcProvider {
    /// Starts a provider that knows `clients`, on a port the OS picks, and waits until
    /// it listens. Panics (with what to run) when the provider is not installed.
    pub fn start(clients: &[ClientSpec]) -> Self {
        Self::start_on_port(clients, 0)
    }

    /// As [`OidcProvider::start`], on `port` (0: any free port).
    pub fn start_on_port(clients: &[ClientSpec], port: u16) -> Self {
        let mut provider = Self {
            child: None,
            port,
            clients: clients.to_vec(),
            output: Arc::new(Mutex::new(VecDeque::new())),
            http: reqwest::Client::new(),
        };
        provider.spawn();
        provider
    }

    /// The directory with `server.mjs` and its `node_modules`: `$KEYSTEAD_OIDC_PROVIDER_DIR`.
    /// Panics with what to run when it is unset or not installed.
    pub fn directory() -> PathBuf {
        const HOW: &str = "run scripts/test, which installs it, or \
            `source scripts/lib/oidc_provider.sh && ensure_oidc_provider` in this shell \
            and run the tests again";
        let dir = match std::env::var_os("KEYSTEAD_OIDC_PROVIDER_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => panic!("KEYSTEAD_OIDC_PROVIDER_DIR is not set (the real OpenID provider): {HOW}"),
        };
        assert!(
            dir.join("server.mjs").is_file()
                && dir
                    .join("node_modules/oidc-provider/package.json")
                    .is_file(),
            "KEYSTEAD_OIDC_PROVIDER_DIR={} holds no installed oidc-provider: {HOW}",
            dir.display()
        );
        dir
    }

    fn spawn(&mut self) {
        let dir = Self::directory();
        // A new client each time: kept-alive connections to a killed provider are dead.
        self.http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT)
            .build()
            .expect("HTTP client");
        let clients: Vec<Value> = self.clients.iter().map(ClientSpec::metadata).collect();
        let mut child = Command::new("node")
            .arg("server.mjs")
            .args(["--port", &self.port.to_string()])
            .args(["--clients", &Value::Array(clients).to_string()])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `node server.mjs` in {} (is Node.js installed?): {e}",
                    dir.display()
                )
            });
        let (port_tx, port_rx) = mpsc::channel::<u16>();
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, Arc::clone(&self.output), Some(port_tx));
        }
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, Arc::clone(&self.output), None);
        }
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        self.port = loop {
            match port_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(port) => break port,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.fail("oidc-provider closed its output before saying where it listens")
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.fail(&format!("oidc-provider exited at start ({status})"));
            }
            if Instant::now() > deadline {
                self.fail("oidc-provider did not say where it listens within 30 s");
            }
        };
    }

    /// The issuer, `http://127.0.0.1:<port>` (as in `iss` and the discovery document).
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The clients it was started with.
    pub fn clients(&self) -> &[ClientSpec] {
        &self.clients
    }

    /// Kills the provider and starts it again on the same port (same issuer, same
    /// signing key; sessions, codes and tokens it kept in memory are gone).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Logs `login` in to `client` through the real authorization-code flow with PKCE
    /// and returns the ID token. Panics, with the provider's output, on any failure.
    pub async fn id_token(&self, client: &ClientSpec, login: &str) -> String {
        match self.try_id_token(client, login).await {
            Ok(token) => token,
            Err(e) => panic!(
                "login of {login:?} to client {:?} at {} failed: {e:#}\noidc-provider's output:\n{}",
                client.client_id,
                self.issuer(),
                self.output()
            ),
        }
    }

    /// As [`OidcProvider::id_token`], returning failures (an unknown client, a redirect
    /// URI the provider refuses...) as errors.
    pub async fn try_id_token(&self, client: &ClientSpec, login: &str) -> anyhow::Result<String> {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let issuer = Url::parse(&self.issuer())?;

        let mut url = issuer.join("/auth")?;
        url.query_pairs_mut()
            .append_pair("client_id", &client.client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email")
            .append_pair("redirect_uri", &client.redirect_uri)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");

        let redirect = self.authorize(url, &client.redirect_uri, login).await?;
        let params: Vec<(String, String)> = redirect.query_pairs().into_owned().collect();
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if let Some(error) = get("error") {
            bail!(
                "the provider redirected with error {error}: {}",
                get("error_description").unwrap_or_default()
            );
        }
        ensure!(
            get("state").as_deref() == Some(&state),
            "state mismatch in {redirect}"
        );
        if let Some(iss) = get("iss") {
            ensure!(iss == self.issuer(), "iss {iss} in the redirect");
        }
        let code = get("code").ok_or_else(|| anyhow!("no code in {redirect}"))?;

        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let token_url = issuer.join("/token")?;
        let mut request = self
            .http
            .post(token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded");
        match &client.client_secret {
            // client_secret_basic: both form-urlencoded first (RFC 6749 §2.3.1).
            Some(secret) => {
                request =
                    request.basic_auth(form_encode(&client.client_id), Some(form_encode(secret)))
            }
            None => fields.push(("client_id", client.client_id.as_str())),
        }
        let response = request
            .body(form_body(&fields))
            .send()
            .await
            .with_context(|| format!("request to {token_url}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        ensure!(status.is_success(), "{status} from {token_url}: {body}");
        let answer: Value = serde_json::from_str(&body).context("token response is not JSON")?;
        answer
            .get("id_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no id_token in the token response: {body}"))
    }

    /// Drives a browser's part of an authorization request at this provider: follows
    /// `authorization_url` through the development login (as `login`) and consent pages,
    /// and returns the URL the provider finally redirects to at `redirect_uri` (carrying
    /// `code` and `state`, or `error`), without requesting it.
    pub async fn authorize(
        &self,
        authorization_url: Url,
        redirect_uri: &str,
        login: &str,
    ) -> anyhow::Result<Url> {
        let redirect_uri = Url::parse(redirect_uri).context("redirect_uri")?;
        let mut url = authorization_url;
        let mut jar = CookieJar::default();
        let mut form: Option<Vec<(&str, &str)>> = None;
        for _ in 0..MAX_STEPS {
            let request = match form.take() {
                Some(fields) => self
                    .http
                    .post(url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form_body(&fields)),
                None => self.http.get(url.clone()),
            };
            let request = match jar.header_for(&url) {
                Some(cookies) => request.header("cookie", cookies),
                None => request,
            };
            let response = request
                .send()
                .await
                .with_context(|| format!("request to {url}"))?;
            jar.store(&response);
            let status = response.status();

            if status.is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| anyhow!("{status} from {url} without a Location"))?;
                let next = url.join(location).context("Location")?;
                if same_endpoint(&next, &redirect_uri) {
                    return Ok(next);
                }
                url = next;
                continue;
            }

            let body = response.text().await.unwrap_or_default();
            ensure!(
                status.is_success() && url.path().starts_with("/interaction/"),
                "{status} from {url}: {body}"
            );
            // The development login and consent pages post back to the same URL.
            if body.contains(r#"name="prompt" value="login""#) {
                form = Some(vec![
                    ("prompt", "login"),
                    ("login", login),
                    ("password", "any password"),
                ]);
            } else if body.contains(r#"name="prompt" value="consent""#) {
                form = Some(vec![("prompt", "consent")]);
            } else {
                bail!("unexpected interaction page at {url}: {body}");
            }
        }
        bail!("no redirect to {redirect_uri} after {MAX_STEPS} requests")
    }

    /// The last lines the provider printed (for diagnostics).
    pub fn output(&self) -> String {
        let lines = self.output.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn fail(&mut self, what: &str) -> ! {
        self.kill();
        // Give the drain threads a moment to collect the last words.
        std::thread::sleep(Duration::from_millis(50));
        panic!("{what}; oidc-provider's output:\n{}", self.output());
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.kill();
    }
}

fn form_body(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Same scheme, host, port and path (the redirect URI, whatever its query).
fn same_endpoint(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
}

/// Just enough of a browser's cookie jar for one host: cookies by (name, path),
/// sent to paths under their own, removed when the server expires them.
#[derive(Default)]
struct CookieJar {
    cookies: Vec<(String, String, String)>,
}

impl CookieJar {
    fn store(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all("set-cookie") {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let mut parts = header.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let mut path = "/".to_string();
            let mut expired = false;
            for attribute in parts {
                let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
                match key.to_ascii_lowercase().as_str() {
                    "path" if val.starts_with('/') => path = val.to_string(),
                    "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|s| s <= 0),
                    "expires" => expired |= val.contains("1970"),
                    _ => {}
                }
            }
            self.cookies.retain(|(n, _, p)| !(n == name && *p == path));
            if !expired {
                self.cookies
                    .push((name.to_string(), value.to_string(), path));
            }
        }
    }

    fn header_for(&self, url: &Url) -> Option<String> {
        let request_path = url.path();
        let matching: Vec<String> = self
            .cookies
            .iter()
            .filter(|(_, _, path)| {
                request_path == path
                    || (request_path.starts_with(path.as_str())
                        && (path.ends_with('/')
                            || request_path.as_bytes().get(path.len()) == Some(&b'/')))
            })
            .map(|(name, value, _)| format!("{name}={value}"))
            .collect();
        (!matching.is_empty()).then(|| matching.join("; "))
    }
}

fn drain(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<VecDeque<String>>>,
    port_tx: Option<mpsc::Sender<u16>>,
) {
    std::thread::spawn(move || {
        let mut port_tx = port_tx;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &port_tx
                && let Some(port) = line
                    .trim()
                    .strip_prefix("listening http://127.0.0.1:")
                    .and_then(|p| p.parse::<u16>().ok())
            {
                let _ = tx.send(port);
                port_tx = None;
            }
            let mut lines = output.lock().unwrap_or_else(|p| p.into_inner());
            if lines.len() == KEEP_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    });
}
