//! OpenID Connect ID-token verification against an app's configured providers.
//!
//! Order of checks, cheapest and least trusting first:
//! 1. the token splits into three base64url parts with JSON header and payload;
//! 2. the header's `alg` is an asymmetric algorithm we allow (`none` and every `HS*` are
//!    refused here, before any key or library sees the token);
//! 3. the (still unverified) `iss` equals the configured issuer, so a token for another
//!    issuer never causes a network fetch;
//! 4. the key named by `kid` is found in the issuer's cached JWKS (fetched on first use,
//!    refreshed hourly, and refetched on an unknown `kid` at most once per
//!    [`REFETCH_INTERVAL_SECS`]); the JWK's type, curve and `alg` must fit the token's
//!    `alg`;
//! 5. the signature (by `jsonwebtoken`'s RustCrypto backend);
//! 6. `aud`, `exp`, `iat`, `nbf` against the `now` passed in, with [`LEEWAY_SECS`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::jwt::{self, signed};

/// Where discovery lives under an issuer.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Allowed clock difference with the provider, in seconds, for `exp`, `iat` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;
/// An unknown `kid` refetches an issuer's JWKS at most once per this many seconds.
pub const REFETCH_INTERVAL_SECS: u64 = 30;

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Largest RSA modulus accepted, in bytes (the `rsa` crate's limit, 4096 bits).
const MAX_RSA_MODULUS_BYTES: usize = 512;

/// One OpenID provider an app accepts logins from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// The name the app uses for it in `POST /v1/auth/id-token {"provider"}` ("google").
    pub name: String,
    /// The issuer exactly as the provider writes it in `iss` and in its discovery
    /// document (`https://accounts.google.com`).
    pub issuer: String,
    /// The app's client id at the provider: ID tokens must name it in `aud`.
    pub client_id: String,
}

/// What a verified ID token says about its user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// `sub`: stable per (issuer, user). With `issuer`, the identity to link.
    pub subject: String,
    pub email: Option<String>,
    /// `email_verified`, as a boolean or the strings `"true"`/`"false"` (Apple).
    pub email_verified: Option<bool>,
    pub issuer: String,
    /// `nonce`, when the token carries one: an authorization-code login must check it.
    pub nonce: Option<String>,
}

/// Why an ID token was refused. Safe to log: no variant carries token contents.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("ID token is malformed")]
    Malformed,
    #[error("ID token algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("ID token is signed with a key the provider does not publish")]
    UnknownKey,
    #[error("ID token signature is invalid")]
    BadSignature,
    #[error("ID token is from another issuer")]
    WrongIssuer,
    #[error("ID token is for another client")]
    WrongAudience,
    #[error("ID token has expired")]
    Expired,
    #[error("ID token is issued in the future")]
    IssuedInFuture,
    #[error("ID token is not valid yet")]
    NotYetValid,
    /// The provider's discovery document or JWKS could not be had or used; the text
    /// names the URL and the cause (configuration, never token contents).
    #[error("OpenID provider metadata: {0}")]
    Discovery(String),
}

/// Knobs of an [`OidcVerifier`]; `Default` is what production wants.
#[derive(Clone, Debug)]
pub struct VerifierOptions {
    /// Connect and whole-request timeout for discovery and JWKS fetches.
    pub http_timeout: Duration,
    /// An unknown `kid` refetches the JWKS at most once per this many seconds.
    pub refetch_interval_secs: u64,
    /// Known keys are refreshed after this many seconds (a revoked key stops working).
    pub max_cache_age_secs: u64,
    /// After a failed fetch with nothing cached, wait this long before trying again.
    pub failure_retry_secs: u64,
    /// Accept `http://` issuers and JWKS URIs on any host. Without it, plain HTTP is
    /// accepted only on loopback (`localhost`, 127.0.0.0/8, `::1`): tests and `--dev`.
    pub allow_insecure_http: bool,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        Self {
            http_timeout: Duration::from_secs(5),
            refetch_interval_secs: REFETCH_INTERVAL_SECS,
            max_cache_age_secs: 3600,
            failure_retry_secs: 5,
            allow_insecure_http: false,
        }
    }
}

/// Verifies ID tokens. Cheap to clone: clones share one HTTP client and one key cache
/// (per issuer, so apps that use the same provider share its keys).
#[derive(Clone)]
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    options: VerifierOptions,
    issuers: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<IssuerKeys>>>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// One issuer's cached keys. Its async mutex is held across a fetch, so concurrent
/// verifications of one issuer never fetch twice.
#[derive(Default)]
struct IssuerKeys {
    keys: Vec<VerifyKey>,
    /// When the last fetch was attempted / last succeeded (the `now` of that call).
    attempted_at: Option<u64>,
    fetched_at: Option<u64>,
    last_error: Option<String>,
    /// The discovery document's code-flow endpoints, fetched with the keys.
    endpoints: Option<CodeEndpoints>,
}

/// Where the authorization-code flow sends the user, and where it redeems the code.
#[derive(Clone, Debug)]
pub(crate) struct CodeEndpoints {
    pub(crate) authorization: Option<String>,
    pub(crate) token: Option<String>,
}

#[derive(Clone)]
struct VerifyKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// The algorithms accepted in an ID token header. `none`, `HS*` and anything unknown
/// are refused.
fn accepted_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

#[derive(Deserialize)]
pub(crate) struct DiscoveryDocument {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: String,
    #[serde(default)]
    pub(crate) authorization_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) token_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Turns one published JWK into a verification key, or says why it is unusable.
fn parse_jwk(value: &Value) -> Result<VerifyKey, &'static str> {
    let jwk: RawJwk = serde_json::from_value(value.clone()).map_err(|_| "not a JWK")?;
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signing key");
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err("not a verification key");
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(accepted_alg(name).ok_or("unaccepted alg")?),
    };
    let component = |v: &Option<String>| v.as_deref().and_then(jwt::b64_decode);
    let (kind, key) = match jwk.kty.as_str() {
        "RSA" => {
            let n = component(&jwk.n).ok_or("bad n")?;
            let e = component(&jwk.e).ok_or("bad e")?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            if n.len() < MIN_RSA_MODULUS_BYTES {
                return Err("RSA key shorter than 2048 bits");
            }
            if n.len() > MAX_RSA_MODULUS_BYTES {
                return Err("RSA key longer than 4096 bits");
            }
            if e.is_empty() || e.len() > 8 {
                return Err("bad RSA exponent");
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(n, e))
        }
        "EC" => {
            let (kind, size) = match jwk.crv.as_deref() {
                Some("P-256") => (KeyKind::P256, 32),
                Some("P-384") => (KeyKind::P384, 48),
                _ => return Err("unsupported curve"),
            };
            let x = component(&jwk.x).ok_or("bad x")?;
            let y = component(&jwk.y).ok_or("bad y")?;
            if x.len() != size || y.len() != size {
                return Err("bad EC coordinates");
            }
            let mut sec1 = Vec::with_capacity(1 + 2 * size);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&sec1))
        }
        "OKP" => {
            if jwk.crv.as_deref() != Some("Ed25519") {
                return Err("unsupported curve");
            }
            let x = component(&jwk.x).ok_or("bad x")?;
            // jsonwebtoken slices the first 32 bytes: make sure there are exactly 32.
            if x.len() != 32 {
                return Err("bad Ed25519 key");
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        // "oct" (HMAC secrets) and anything else are never verification keys here.
        _ => return Err("unsupported key type"),
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err("alg does not fit the key type");
    }
    Ok(VerifyKey {
        kid: jwk.kid,
        kind,
        alg,
        key,
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Plain HTTP only on loopback unless allowed; never anything but http(s).
fn check_url(url: &str, allow_insecure_http: bool) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
    if parsed.fragment().is_some() {
        return Err(format!("{url:?} has a fragment"));
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let host = parsed.host_str().unwrap_or("");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback || allow_insecure_http {
                Ok(parsed)
            } else {
                Err(format!("{url:?} is plain HTTP on a non-loopback host"))
            }
        }
        _ => Err(format!("{url:?} is not an http(s) URL")),
    }
}

enum Lookup {
    Found(VerifyKey),
    /// A key with that kid exists but cannot verify this algorithm.
    Unfit,
    Missing,
}

fn lookup(keys: &[VerifyKey], kid: Option<&str>, alg: Algorithm) -> Lookup {
    let candidates: Vec<&VerifyKey> = match kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect(),
        // Without a kid, only an unambiguous single-key set names the key.
        None if keys.len() == 1 => keys.iter().collect(),
        None => Vec::new(),
    };
    if candidates.is_empty() {
        return Lookup::Missing;
    }
    candidates
        .into_iter()
        .find(|k| k.kind.fits(alg) && k.alg.is_none_or(|a| a == alg))
        .map_or(Lookup::Unfit, |k| Lookup::Found(k.clone()))
}

impl OidcVerifier {
    /// A verifier with the default options (5 s HTTP timeouts, 30 s refetch bound).
    pub fn new() -> Result<Self, IdTokenError> {
        Self::with_options(VerifierOptions::default())
    }

    pub fn with_options(options: VerifierOptions) -> Result<Self, IdTokenError> {
        let http = reqwest::Client::builder()
            .timeout(options.http_timeout)
            .connect_timeout(options.http_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("keystead/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IdTokenError::Discovery(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                options,
                issuers: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Verifies `id_token` as issued by `provider` to its client, at time `now` (Unix
    /// seconds).
    pub async fn verify(
        &self,
        provider: &ProviderConfig,
        id_token: &str,
        now: u64,
    ) -> Result<IdClaims, IdTokenError> {
        let result = self.verify_inner(provider, id_token, now).await;
        if let Err(error) = &result {
            tracing::debug!(provider = %provider.name, %error, "ID token refused");
        }
        result
    }

    async fn verify_inner(
        &self,
        provider: &ProviderConfig,
        id_token: &str,
        now: u64,
    ) -> Result<IdClaims, IdTokenError> {
        use IdTokenError::*;
        let token = jwt::split(id_token).ok_or(Malformed)?;
        let alg_name = jwt::opt_str(&token.header, "alg")
            .map_err(|_| Malformed)?
            .ok_or(Malformed)?;
        let alg = accepted_alg(alg_name).ok_or(UnsupportedAlgorithm)?;
        if token.header.contains_key("crit") {
            // No extension is understood, so none may be critical (RFC 7515 §4.1.11).
            return Err(UnsupportedAlgorithm);
        }
        let kid = jwt::opt_str(&token.header, "kid").map_err(|_| Malformed)?;

        let claims = &token.payload;
        let iss = jwt::opt_str(claims, "iss")
            .map_err(|_| Malformed)?
            .ok_or(Malformed)?;
        if iss != provider.issuer {
            return Err(WrongIssuer);
        }

        let key = self.key_for(provider, kid, alg, now).await?;
        match jsonwebtoken::crypto::verify(
            token.signature,
            token.signing_input.as_bytes(),
            &key.key,
            alg,
        ) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(BadSignature),
        }

        check_claims(claims, provider, now)
    }

    fn issuer_entry(&self, issuer: &str) -> Arc<tokio::sync::Mutex<IssuerKeys>> {
        let mut map = self
            .inner
            .issuers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(issuer.to_string()).or_default().clone()
    }

    async fn key_for(
        &self,
        provider: &ProviderConfig,
        kid: Option<&str>,
        alg: Algorithm,
        now: u64,
    ) -> Result<VerifyKey, IdTokenError> {
        let options = &self.inner.options;
        let entry = self.issuer_entry(&provider.issuer);
        let mut state = entry.lock().await;
        let since = |t: Option<u64>| t.map(|t| now.saturating_sub(t));

        let mut fetched_now = false;
        let stale = since(state.fetched_at).is_none_or(|age| age >= options.max_cache_age_secs);
        if stale {
            let may_try = if state.keys.is_empty() {
                since(state.attempted_at).is_none_or(|age| age >= options.failure_retry_secs)
            } else {
                since(state.attempted_at).is_none_or(|age| age >= options.refetch_interval_secs)
            };
            if may_try {
                fetched_now = true;
                if let Err(error) = self.refresh(&mut state, provider, now).await
                    && state.keys.is_empty()
                {
                    return Err(error);
                }
            } else if state.keys.is_empty() {
                let cause = state.last_error.clone().unwrap_or_default();
                return Err(IdTokenError::Discovery(format!(
                    "keys unavailable, retrying shortly: {cause}"
                )));
            }
        }

        match lookup(&state.keys, kid, alg) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Unfit => return Err(IdTokenError::UnsupportedAlgorithm),
            Lookup::Missing => {}
        }
        // An unknown kid: the provider may have rotated. Refetch, at a bounded rate.
        let may_refetch = kid.is_some()
            && !fetched_now
            && since(state.attempted_at).is_none_or(|age| age >= options.refetch_interval_secs);
        if !may_refetch {
            return Err(IdTokenError::UnknownKey);
        }
        self.refresh(&mut state, provider, now).await?;
        match lookup(&state.keys, kid, alg) {
            Lookup::Found(key) => Ok(key),
            Lookup::Unfit => Err(IdTokenError::UnsupportedAlgorithm),
            Lookup::Missing => Err(IdTokenError::UnknownKey),
        }
    }

    /// Fetches discovery and the JWKS; on success replaces the cached keys.
    async fn refresh(
        &self,
        state: &mut IssuerKeys,
        provider: &ProviderConfig,
        now: u64,
    ) -> Result<(), IdTokenError> {
        state.attempted_at = Some(now);
        match self.fetch_keys(&provider.issuer).await {
            Ok((keys, endpoints)) => {
                tracing::debug!(issuer = %provider.issuer, keys = keys.len(), "fetched JWKS");
                state.keys = keys;
                state.endpoints = Some(endpoints);
                state.fetched_at = Some(now);
                state.last_error = None;
                Ok(())
            }
            Err(message) => {
                tracing::warn!(issuer = %provider.issuer, error = %message, "OpenID provider metadata fetch failed");
                state.last_error = Some(message.clone());
                Err(IdTokenError::Discovery(message))
            }
        }
    }

    /// The issuer's discovery document, checked to name the issuer itself.
    pub(crate) async fn discovery(&self, issuer: &str) -> Result<DiscoveryDocument, String> {
        let issuer_url = check_url(issuer, self.inner.options.allow_insecure_http)?;
        if issuer_url.query().is_some() {
            return Err(format!("issuer {issuer:?} has a query"));
        }
        let discovery_url = format!("{}{DISCOVERY_PATH}", issuer.trim_end_matches('/'));
        let discovery: DiscoveryDocument = self.fetch_json(&discovery_url).await?;
        if discovery.issuer != issuer {
            return Err(format!(
                "discovery at {discovery_url} names issuer {:?}, not the configured {issuer:?}",
                discovery.issuer
            ));
        }
        Ok(discovery)
    }

    /// Checks an endpoint URL by the same rules as the issuer's (HTTPS, or plain HTTP
    /// on loopback when allowed).
    pub(crate) fn check_endpoint(&self, url: &str) -> Result<reqwest::Url, String> {
        check_url(url, self.inner.options.allow_insecure_http)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The provider's code-flow endpoints, from the discovery document cached with its
    /// keys (fetched when missing or older than `max_cache_age_secs`).
    pub(crate) async fn code_endpoints(
        &self,
        provider: &ProviderConfig,
        now: u64,
    ) -> Result<CodeEndpoints, IdTokenError> {
        let entry = self.issuer_entry(&provider.issuer);
        let mut state = entry.lock().await;
        let fresh = state
            .fetched_at
            .is_some_and(|at| now.saturating_sub(at) < self.inner.options.max_cache_age_secs);
        if !fresh || state.endpoints.is_none() {
            self.refresh(&mut state, provider, now).await?;
        }
        state
            .endpoints
            .clone()
            .ok_or_else(|| IdTokenError::Discovery("no discovery document".into()))
    }

    async fn fetch_keys(&self, issuer: &str) -> Result<(Vec<VerifyKey>, CodeEndpoints), String> {
        let allow_http = self.inner.options.allow_insecure_http;
        let discovery = self.discovery(issuer).await?;
        let endpoints = CodeEndpoints {
            authorization: discovery.authorization_endpoint.clone(),
            token: discovery.token_endpoint.clone(),
        };
        let jwks_url = check_url(&discovery.jwks_uri, allow_http)?;
        let set: JwkSet = self.fetch_json(jwks_url.as_str()).await?;
        let mut keys = Vec::with_capacity(set.keys.len());
        for value in &set.keys {
            match parse_jwk(value) {
                Ok(key) => keys.push(key),
                Err(why) => {
                    let kid = value.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::debug!(issuer, kid, why, "skipping JWK");
                }
            }
        }
        if keys.is_empty() {
            return Err(format!("{jwks_url} has no usable signing key"));
        }
        Ok((keys, endpoints))
    }

    pub(crate) async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, String> {
        let mut response = self
            .inner
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching {url}: {}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(format!("{url} is too large"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading {url}: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url} is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url} is not the expected JSON: {e}"))
    }
}

/// The claim checks after the signature: `sub`, `aud`, `exp`, `iat`, `nbf`, `email*`.
fn check_claims(
    claims: &Map<String, Value>,
    provider: &ProviderConfig,
    now: u64,
) -> Result<IdClaims, IdTokenError> {
    use IdTokenError::*;
    let subject = jwt::opt_str(claims, "sub")
        .map_err(|_| Malformed)?
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or(Malformed)?;

    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == &provider.client_id,
        Some(Value::Array(auds)) => {
            if auds.iter().any(|a| !a.is_string()) {
                return Err(Malformed);
            }
            auds.iter().any(|a| a.as_str() == Some(&provider.client_id))
        }
        _ => return Err(Malformed),
    };
    if !audience_ok {
        return Err(WrongAudience);
    }

    let now = signed(now);
    let leeway = signed(LEEWAY_SECS);
    let exp = jwt::opt_time(claims, "exp")
        .map_err(|_| Malformed)?
        .ok_or(Malformed)?;
    if exp <= now.saturating_sub(leeway) {
        return Err(Expired);
    }
    let iat = jwt::opt_time(claims, "iat")
        .map_err(|_| Malformed)?
        .ok_or(Malformed)?;
    if iat > now.saturating_add(leeway) {
        return Err(IssuedInFuture);
    }
    if let Some(nbf) = jwt::opt_time(claims, "nbf").map_err(|_| Malformed)?
        && nbf > now.saturating_add(leeway)
    {
        return Err(NotYetValid);
    }

    let email = jwt::opt_str(claims, "email")
        .map_err(|_| Malformed)?
        .map(str::to_string);
    let email_verified = match claims.get("email_verified") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "true" => Some(true),
        Some(Value::String(s)) if s == "false" => Some(false),
        Some(_) => return Err(Malformed),
    };

    let nonce = jwt::opt_str(claims, "nonce")
        .map_err(|_| Malformed)?
        .map(str::to_string);

    Ok(IdClaims {
        subject: subject.to_string(),
        email,
        email_verified,
        issuer: provider.issuer.clone(),
        nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider() -> ProviderConfig {
        ProviderConfig {
            name: "test".into(),
            issuer: "https://issuer.example".into(),
            client_id: "client".into(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn claim_checks() {
        let p = provider();
        let now = 1_000_000;
        let base =
            json!({"iss": p.issuer, "sub": "u1", "aud": "client", "exp": now + 10, "iat": now});
        let ok = check_claims(&claims(base.clone()), &p, now).unwrap();
        assert_eq!(ok.subject, "u1");
        assert_eq!(ok.email, None);

        let with = |k: &str, v: Value| {
            let mut c = claims(base.clone());
            c.insert(k.into(), v);
            check_claims(&c, &p, now)
        };
        assert_eq!(
            with("aud", json!(["x", "client"])).map(|c| c.subject),
            Ok("u1".into())
        );
        assert_eq!(with("aud", json!(["x"])), Err(IdTokenError::WrongAudience));
        assert_eq!(with("aud", json!([1])), Err(IdTokenError::Malformed));
        assert_eq!(with("aud", json!(7)), Err(IdTokenError::Malformed));
        // Within the leeway is still valid; beyond it is not.
        assert!(with("exp", json!(now - 59)).is_ok());
        assert_eq!(with("exp", json!(now - 60)), Err(IdTokenError::Expired));
        assert!(with("iat", json!(now + 60)).is_ok());
        assert_eq!(
            with("iat", json!(now + 61)),
            Err(IdTokenError::IssuedInFuture)
        );
        assert!(with("nbf", json!(now + 60)).is_ok());
        assert_eq!(with("nbf", json!(now + 61)), Err(IdTokenError::NotYetValid));
        assert_eq!(with("exp", json!("soon")), Err(IdTokenError::Malformed));
        assert_eq!(with("sub", json!("")), Err(IdTokenError::Malformed));
        assert_eq!(
            with("email_verified", json!("true")).map(|c| c.email_verified),
            Ok(Some(true))
        );
        assert_eq!(
            with("email_verified", json!(1)),
            Err(IdTokenError::Malformed)
        );
    }

    #[test]
    fn jwk_parsing_refuses_weak_and_symmetric_keys() {
        assert_eq!(
            parse_jwk(&json!({"kty": "oct", "k": "c2VjcmV0"})).err(),
            Some("unsupported key type")
        );
        let short_n = jwt::b64(&[0xab; 128]);
        assert_eq!(
            parse_jwk(&json!({"kty": "RSA", "n": short_n, "e": "AQAB"})).err(),
            Some("RSA key shorter than 2048 bits")
        );
        let n = jwt::b64(&[0xab; 256]);
        assert!(parse_jwk(&json!({"kty": "RSA", "n": n, "e": "AQAB"})).is_ok());
        assert_eq!(
            parse_jwk(&json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "HS256"})).err(),
            Some("unaccepted alg")
        );
        assert_eq!(
            parse_jwk(&json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "ES256"})).err(),
            Some("alg does not fit the key type")
        );
        assert_eq!(
            parse_jwk(&json!({"kty": "RSA", "n": n, "e": "AQAB", "use": "enc"})).err(),
            Some("not a signing key")
        );
        assert_eq!(
            parse_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": jwt::b64(&[1; 8])})).err(),
            Some("bad Ed25519 key")
        );
    }

    #[test]
    fn url_policy() {
        assert!(check_url("https://accounts.google.com", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/dev/oidc", false).is_ok());
        assert!(check_url("http://localhost:1", false).is_ok());
        assert!(check_url("http://[::1]:1", false).is_ok());
        assert!(check_url("http://example.com", false).is_err());
        assert!(check_url("http://example.com", true).is_ok());
        assert!(check_url("file:///etc/passwd", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }

    #[test]
    fn header_algorithms() {
        for refused in ["none", "None", "HS256", "HS384", "HS512", "RS1", ""] {
            assert!(accepted_alg(refused).is_none(), "{refused}");
        }
        assert!(KeyKind::Rsa.fits(Algorithm::PS256));
        assert!(!KeyKind::Rsa.fits(Algorithm::ES256));
        assert!(!KeyKind::P256.fits(Algorithm::ES384));
    }
}
