//! Keystead's own access tokens: short-lived EdDSA JWTs, one per session and app.
//!
//! The server key is an Ed25519 key in a PKCS#8 PEM file (`openssl genpkey -algorithm
//! ed25519` writes the same form), created with mode 0600 when missing. Its `kid` is a
//! short hash of the public key, so a kid names one key forever. Rotation: start with a
//! new key file and pass the old public keys to [`SessionSigner::with_previous`] until
//! the tokens they signed have expired; [`SessionSigner::jwks`] publishes them all.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::jwt::{self, signed};

/// `iss` of every access token.
pub const ACCESS_TOKEN_ISSUER: &str = "keystead";
/// `typ` header of every access token (RFC 9068), so no other JWT passes for one.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Allowed clock difference between Keystead servers for `iat`.
const IAT_LEEWAY_SECS: i64 = 60;
/// Key files are tiny; refuse to read anything large.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// Who an access token speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub app_id: String,
    pub user_id: String,
    pub session_id: String,
}

/// Why an access token was refused. Safe to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    #[error("access token is malformed")]
    Malformed,
    #[error("access token algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("access token is signed with an unknown key")]
    UnknownKey,
    #[error("access token signature is invalid")]
    BadSignature,
    #[error("access token is from another issuer")]
    WrongIssuer,
    #[error("access token is for another app")]
    WrongApp,
    #[error("access token has expired")]
    Expired,
    #[error("access token is issued in the future")]
    IssuedInFuture,
}

/// Loading, creating or parsing a server key failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("session key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("session key file {path} is not an Ed25519 PKCS#8 PEM private key")]
    InvalidFile { path: PathBuf },
    #[error("invalid session key: {0}")]
    Invalid(&'static str),
    #[error("session key file {path} is readable by group or others; chmod 600 it")]
    TooOpen { path: PathBuf },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A public key that verifies access tokens: the current one or a previous one.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionPublicKey {
    kid: String,
    key: VerifyingKey,
}

impl fmt::Debug for SessionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionPublicKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SessionPublicKey {
    /// From the 32-byte Ed25519 public key; refuses bytes that are not a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyFileError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| KeyFileError::Invalid("not an Ed25519 public key"))?;
        Ok(Self::from_verifying(key))
    }

    /// From a published JWK (`{"kty":"OKP","crv":"Ed25519","x":...}`); the kid is
    /// recomputed from the key, and a `kid` in the JWK must agree with it.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyFileError> {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") {
            return Err(KeyFileError::Invalid("not an Ed25519 JWK"));
        }
        let x = field("x")
            .and_then(jwt::b64_decode)
            .and_then(|x| <[u8; 32]>::try_from(x).ok())
            .ok_or(KeyFileError::Invalid("bad Ed25519 JWK x"))?;
        let key = Self::from_bytes(&x)?;
        if field("kid").is_some_and(|kid| kid != key.kid) {
            return Err(KeyFileError::Invalid("JWK kid does not match its key"));
        }
        Ok(key)
    }

    fn from_verifying(key: VerifyingKey) -> Self {
        Self {
            kid: kid_of(&key),
            key,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn to_jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": jwt::b64(self.key.as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

/// `ks1-` + the first 8 bytes of SHA-256(public key), hex: short, stable, collision-free
/// in practice for the handful of keys a deployment ever has.
fn kid_of(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("ks1-{}", hex::encode(&digest[..8]))
}

/// The server's session key: signs access tokens, verifies them (also under previous
/// keys), and publishes the JWKS. `Debug` shows only key ids; the private key is wiped
/// from memory on drop.
#[derive(Clone)]
pub struct SessionSigner {
    signing: SigningKey,
    current: SessionPublicKey,
    previous: Vec<SessionPublicKey>,
}

impl fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("SessionSigner")
            .field("kid", &self.current.kid)
            .field("previous", &previous)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct WireClaims {
    iss: String,
    aud: String,
    sub: String,
    sid: String,
    iat: u64,
    exp: u64,
    jti: String,
}

impl SessionSigner {
    /// A new random key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_signing(SigningKey::from_bytes(&seed))
    }

    fn from_signing(signing: SigningKey) -> Self {
        let current = SessionPublicKey::from_verifying(signing.verifying_key());
        Self {
            signing,
            current,
            previous: Vec::new(),
        }
    }

    /// From PKCS#8 PEM text (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyFileError> {
        let signing = SigningKey::from_pkcs8_pem(pem)
            .map_err(|_| KeyFileError::Invalid("not an Ed25519 PKCS#8 PEM private key"))?;
        Ok(Self::from_signing(signing))
    }

    /// The private key as PKCS#8 PEM, in memory that is wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        self.signing
            .to_pkcs8_pem(LineEnding::LF)
            // Encoding a well-formed 32-byte key into a 48-byte document cannot fail.
            .unwrap_or_else(|_| Zeroizing::new(String::new()))
    }

    /// Loads the key at `path`. A file group or others can read or write is refused: anyone
    /// who reads it can mint access tokens for every user.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let metadata = std::fs::metadata(path).map_err(io_error(path))?;
        if metadata.len() > MAX_KEY_FILE_BYTES {
            return Err(KeyFileError::InvalidFile {
                path: path.to_path_buf(),
            });
        }
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: path.to_path_buf(),
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_error(path))?);
        Self::from_pkcs8_pem(&text).map_err(|_| KeyFileError::InvalidFile {
            path: path.to_path_buf(),
        })
    }

    /// Loads the key at `path`, or creates it (mode 0600, parent directories 0700) when
    /// there is none. Creation is atomic and never overwrites: when two processes race,
    /// both end up with the key that landed first.
    pub fn load_or_create<R: CryptoRng + ?Sized>(
        path: &Path,
        rng: &mut R,
    ) -> Result<Self, KeyFileError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => return Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path)(e)),
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_error(&dir))?;

        let signer = Self::generate(rng);
        let mut suffix = [0u8; 8];
        rng.fill_bytes(&mut suffix);
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(suffix)));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(signer.to_pkcs8_pem().as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error(&tmp)(e));
        }
        // A hard link publishes the complete file under its name, or fails if one is
        // already there.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if let Ok(d) = std::fs::File::open(&dir) {
                    let _ = d.sync_all();
                }
                tracing::info!(path = %path.display(), kid = %signer.kid(), "created session key");
                Ok(signer)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io_error(path)(e)),
        }
    }

    /// Also accept tokens signed by these (older) keys; they are published in
    /// [`jwks`](Self::jwks) too. The current key and duplicates are ignored.
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = SessionPublicKey>) -> Self {
        for key in previous {
            if key.kid != self.current.kid && !self.previous.iter().any(|k| k.kid == key.kid) {
                self.previous.push(key);
            }
        }
        self
    }

    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    pub fn public_key(&self) -> SessionPublicKey {
        self.current.clone()
    }

    /// An access token for `claims`, valid from `now` for `ttl_secs`. `rng` makes its
    /// `jti`.
    pub fn issue_access_token<R: CryptoRng + ?Sized>(
        &self,
        claims: &AccessClaims,
        now: u64,
        ttl_secs: u64,
        rng: &mut R,
    ) -> String {
        let mut jti = [0u8; 16];
        rng.fill_bytes(&mut jti);
        let jti = jwt::b64(&jti);
        let header = json!({"alg": "EdDSA", "typ": ACCESS_TOKEN_TYPE, "kid": self.current.kid});
        let payload = WireClaims {
            iss: ACCESS_TOKEN_ISSUER.to_string(),
            aud: claims.app_id.clone(),
            sub: claims.user_id.clone(),
            sid: claims.session_id.clone(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            jti,
        };
        // Serialising string and integer fields cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let payload = serde_json::to_vec(&payload).unwrap_or_default();
        let signing_input = format!("{}.{}", jwt::b64(&header), jwt::b64(&payload));
        let signature = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", jwt::b64(&signature.to_bytes()))
    }

    /// Checks a token this service issued for `expected_app_id`, at `now`.
    pub fn verify_access_token(
        &self,
        token: &str,
        expected_app_id: &str,
        now: u64,
    ) -> Result<AccessClaims, AccessTokenError> {
        use AccessTokenError::*;
        let parts = jwt::split(token).ok_or(Malformed)?;
        let header_str = |name| jwt::opt_str(&parts.header, name).map_err(|_| Malformed);
        if header_str("alg")? != Some("EdDSA") {
            return Err(UnsupportedAlgorithm);
        }
        if header_str("typ")? != Some(ACCESS_TOKEN_TYPE) || parts.header.contains_key("crit") {
            return Err(Malformed);
        }
        let kid = header_str("kid")?.ok_or(UnknownKey)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid == kid)
            .ok_or(UnknownKey)?;
        let signature = jwt::b64_decode(parts.signature)
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .ok_or(BadSignature)?;
        key.key
            .verify_strict(
                parts.signing_input.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .map_err(|_| BadSignature)?;

        let claims: WireClaims =
            serde_json::from_value(Value::Object(parts.payload)).map_err(|_| Malformed)?;
        if claims.iss != ACCESS_TOKEN_ISSUER {
            return Err(WrongIssuer);
        }
        if claims.aud != expected_app_id {
            return Err(WrongApp);
        }
        let now_signed = signed(now);
        if now >= claims.exp {
            return Err(Expired);
        }
        if signed(claims.iat) > now_signed.saturating_add(IAT_LEEWAY_SECS) {
            return Err(IssuedInFuture);
        }
        Ok(AccessClaims {
            app_id: claims.aud,
            user_id: claims.sub,
            session_id: claims.sid,
        })
    }

    /// The public JWKS to serve at `/v1/auth/jwks.json`: the current key first, then
    /// the previous ones.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = std::iter::once(&self.current)
            .chain(&self.previous)
            .map(SessionPublicKey::to_jwk)
            .collect();
        json!({ "keys": keys })
    }
}
