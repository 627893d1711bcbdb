//! An in-process OpenID provider for tests (written by the identity work).
//!
//! [`TestIssuer::start`] serves `/.well-known/openid-configuration` and `/jwks` on
//! `127.0.0.1:0` and mints ID tokens with real keys: a fresh RSA-2048 key (RS256) and a
//! P-256 key (ES256). It can also mint every kind of bad token a verifier must refuse
//! (`alg: none`, HS256 signed with the RSA public key, unknown kid, another issuer),
//! rotate its RSA key, serve a wrong issuer in its discovery document, and counts how
//! often its JWKS was fetched.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use p256::pkcs8::EncodePrivateKey as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// What to put in a minted token. [`TokenSpec::new`] gives a valid one; change fields
/// to make it bad.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    /// `aud`: a string or an array of strings (any JSON, to test malformed ones).
    pub aud: Value,
    pub exp: u64,
    pub iat: u64,
    pub nbf: Option<u64>,
    /// Header `kid` instead of the signing key's own (`Some("")` still sends `""`).
    pub kid: Option<String>,
    /// Omit `kid` from the header altogether.
    pub no_kid: bool,
    /// `None`: RS256 with the current RSA key. Otherwise one of:
    /// - `"RS256"`, `"RS384"`, `"RS512"`, `"PS256"`, `"PS384"`, `"PS512"`: the current
    ///   RSA key with that algorithm;
    /// - `"ES256"`: the P-256 key;
    /// - `"none"`: an unsigned token (empty signature);
    /// - `"HS256-with-public-key"`: header `HS256`, HMAC keyed with the RSA public key's
    ///   PEM (the RS/HS confusion attack);
    /// - anything else: that string in the header over an RS256 signature.
    pub alg: Option<String>,
    /// `iss` instead of this issuer's URL.
    pub issuer: Option<String>,
    /// More claims, merged last (they can overwrite the ones above).
    pub extra: Map<String, Value>,
}

impl TokenSpec {
    /// A valid token for `sub` and client `aud`, issued at `now`, valid for 10 minutes.
    pub fn new(sub: &str, aud: &str, now: u64) -> Self {
        Self {
            sub: sub.to_string(),
            email: Some(format!("{sub}@example.com")),
            email_verified: Some(true),
            aud: Value::String(aud.to_string()),
            exp: now + 600,
            iat: now,
            nbf: None,
            kid: None,
            no_kid: false,
            alg: None,
            issuer: None,
            extra: Map::new(),
        }
    }
}

struct RsaKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

struct EcKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

struct Shared {
    issuer: String,
    /// Published RSA keys, oldest first; the last one signs.
    rsa: Mutex<Vec<Arc<RsaKey>>>,
    ec: EcKey,
    discovery_issuer: Mutex<Option<String>>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

/// A running OpenID provider; the server stops when this is dropped.
pub struct TestIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 thumbprint of the required members, as the kid.
fn thumbprint(required: &Value) -> String {
    // serde_json's Map is ordered by key, as RFC 7638 asks.
    let canonical = serde_json::to_vec(required).expect("JSON");
    b64(&Sha256::digest(canonical))
}

fn new_rsa_key() -> RsaKey {
    let private =
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key generation");
    let public = private.to_public_key();
    let n = b64(&public.n().to_bytes_be());
    let e = b64(&public.e().to_bytes_be());
    let kid = thumbprint(&json!({"e": e, "kty": "RSA", "n": n}));
    let der = private.to_pkcs1_der().expect("PKCS#1 DER");
    RsaKey {
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}),
        public_pem: public
            .to_public_key_pem(LineEnding::LF)
            .expect("public key PEM"),
        kid,
    }
}

fn new_ec_key() -> EcKey {
    let private = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    let point = private.verifying_key().to_encoded_point(false);
    let x = b64(point.x().expect("uncompressed point"));
    let y = b64(point.y().expect("uncompressed point"));
    let kid = thumbprint(&json!({"crv": "P-256", "kty": "EC", "x": x, "y": y}));
    let der = private.to_pkcs8_der().expect("PKCS#8 DER");
    EcKey {
        encoding: EncodingKey::from_ec_der(der.as_bytes()),
        jwk: json!({"kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": kid, "x": x, "y": y}),
        kid,
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let issuer = shared
        .discovery_issuer
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| shared.issuer.clone());
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/jwks", shared.issuer),
        "authorization_endpoint": format!("{}/authorize", shared.issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let mut keys: Vec<Value> = shared
        .rsa
        .lock()
        .expect("lock")
        .iter()
        .map(|k| k.jwk.clone())
        .collect();
    keys.push(shared.ec.jwk.clone());
    Json(json!({ "keys": keys }))
}

impl TestIssuer {
    /// Generates keys and starts serving on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let (rsa_key, ec) = tokio::task::spawn_blocking(|| (new_rsa_key(), new_ec_key()))
            .await
            .expect("key generation");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            rsa: Mutex::new(vec![Arc::new(rsa_key)]),
            ec,
            discovery_issuer: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            shared,
            addr,
            server,
        }
    }

    /// The issuer URL (`http://127.0.0.1:PORT`), as `iss` and discovery carry it.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kid of the RSA key that signs now.
    pub fn kid(&self) -> String {
        self.current_rsa().kid.clone()
    }

    /// The kid of the P-256 key (`alg: "ES256"`).
    pub fn ec_kid(&self) -> String {
        self.shared.ec.kid.clone()
    }

    /// The current RSA public key as SPKI PEM.
    pub fn rsa_public_pem(&self) -> String {
        self.current_rsa().public_pem.clone()
    }

    /// The JWKS this issuer publishes now.
    pub fn jwks_json(&self) -> Value {
        let mut keys: Vec<Value> = self
            .shared
            .rsa
            .lock()
            .expect("lock")
            .iter()
            .map(|k| k.jwk.clone())
            .collect();
        keys.push(self.shared.ec.jwk.clone());
        json!({ "keys": keys })
    }

    fn current_rsa(&self) -> Arc<RsaKey> {
        self.shared
            .rsa
            .lock()
            .expect("lock")
            .last()
            .expect("an RSA key")
            .clone()
    }

    /// Adds a new RSA key, which signs from now on (the old ones stay published).
    /// Returns the new kid.
    pub fn rotate_key(&self) -> String {
        let key = new_rsa_key();
        let kid = key.kid.clone();
        self.shared.rsa.lock().expect("lock").push(Arc::new(key));
        kid
    }

    /// Serve this `issuer` in the discovery document instead of the real one (`None`
    /// restores it).
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        *self.shared.discovery_issuer.lock().expect("lock") = issuer.map(str::to_string);
    }

    /// How many times `/jwks` was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was fetched.
    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Mints an ID token as `spec` says.
    pub fn mint(&self, spec: &TokenSpec) -> String {
        let mut claims = Map::new();
        claims.insert(
            "iss".into(),
            Value::String(spec.issuer.clone().unwrap_or_else(|| self.issuer())),
        );
        claims.insert("sub".into(), Value::String(spec.sub.clone()));
        claims.insert("aud".into(), spec.aud.clone());
        claims.insert("exp".into(), spec.exp.into());
        claims.insert("iat".into(), spec.iat.into());
        if let Some(nbf) = spec.nbf {
            claims.insert("nbf".into(), nbf.into());
        }
        if let Some(email) = &spec.email {
            claims.insert("email".into(), Value::String(email.clone()));
        }
        if let Some(verified) = spec.email_verified {
            claims.insert("email_verified".into(), Value::Bool(verified));
        }
        for (k, v) in &spec.extra {
            claims.insert(k.clone(), v.clone());
        }

        let rsa_key = self.current_rsa();
        let alg_name = spec.alg.as_deref().unwrap_or("RS256");
        // (header alg, key id of the signing key, how to sign)
        let (header_alg, own_kid, signer): (&str, String, Signer) = match alg_name {
            "none" => ("none", rsa_key.kid.clone(), Signer::Unsigned),
            "HS256-with-public-key" => (
                "HS256",
                rsa_key.kid.clone(),
                Signer::Key(
                    EncodingKey::from_secret(rsa_key.public_pem.as_bytes()),
                    Algorithm::HS256,
                ),
            ),
            "ES256" => (
                "ES256",
                self.shared.ec.kid.clone(),
                Signer::Key(self.shared.ec.encoding.clone(), Algorithm::ES256),
            ),
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
                let alg: Algorithm = alg_name.parse().expect("RSA algorithm");
                (
                    alg_name,
                    rsa_key.kid.clone(),
                    Signer::Key(rsa_key.encoding.clone(), alg),
                )
            }
            other => (
                other,
                rsa_key.kid.clone(),
                Signer::Key(rsa_key.encoding.clone(), Algorithm::RS256),
            ),
        };

        let mut header = Map::new();
        header.insert("alg".into(), Value::String(header_alg.to_string()));
        header.insert("typ".into(), Value::String("JWT".into()));
        if !spec.no_kid {
            let kid = spec.kid.clone().unwrap_or(own_kid);
            header.insert("kid".into(), Value::String(kid));
        }
        let signing_input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&header).expect("JSON")),
            b64(&serde_json::to_vec(&claims).expect("JSON"))
        );
        let signature = match signer {
            Signer::Unsigned => String::new(),
            Signer::Key(key, alg) => {
                jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, alg).expect("signing")
            }
        };
        format!("{signing_input}.{signature}")
    }
}

enum Signer {
    Unsigned,
    Key(EncodingKey, Algorithm),
}
