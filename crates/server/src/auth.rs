//! Login and sessions: ID token → user → session, refresh rotation, access-token checks.
//!
//! Handlers stay thin and pass in the time (Unix seconds) and a CSPRNG; the identity and
//! store crates do the cryptography and the persistence.

use std::sync::Arc;

use keystead_identity::{
    AccessClaims, AccessTokenError, IdClaims, IdTokenError, OidcVerifier, ProviderConfig,
    SessionSigner, UserStatus, hash_token, id_prefix, new_id, new_refresh_token, token_digest,
    user_status,
};
use keystead_store::{App, Session, Store, StoreError, User};
use keystead_types::ErrorCode;
use rand::CryptoRng;

use crate::http::ApiError;

/// How long an access token is valid unless configured (`access_token_ttl_secs`).
pub const ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// How long a session (and so its refresh tokens) lives.
pub const SESSION_TTL_SECS: u64 = 30 * 24 * 60 * 60;

/// The session signer and the ID-token verifier, shared by all requests.
pub struct Auth {
    pub signer: SessionSigner,
    pub verifier: OidcVerifier,
    /// Lifetime of the access tokens this server issues, in seconds.
    pub access_token_ttl_secs: u64,
    /// Access tokens already checked (signature and live session), by token digest, for
    /// [`CHECKED_TOKEN_TTL`]: a client's requests in a burst are checked once. Claims are
    /// shared with the requests they pass, not copied into each.
    pub checked: crate::cache::TtlCache<[u8; 32], (Arc<AccessClaims>, u64, u64)>,
    /// Apps' login providers by (app id, name), for [`PROVIDER_CACHE_TTL`]: a provider
    /// changed or removed with `keystead app …` is seen within it.
    providers: crate::cache::TtlCache<(String, String), keystead_store::AppProvider>,
    /// Bumped whenever this server ends a session: every earlier check is void.
    revocations: std::sync::atomic::AtomicU64,
}

/// How long a checked access token is trusted without looking at its session again: a
/// session ended on another server (or by refresh-token reuse) is seen within this; a
/// logout on this server is seen at once.
pub const CHECKED_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// How long an app's login provider is used without reading it again.
pub const PROVIDER_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Auth {
    pub fn new(signer: SessionSigner, verifier: OidcVerifier, access_token_ttl_secs: u64) -> Self {
        Self {
            signer,
            verifier,
            access_token_ttl_secs,
            checked: crate::cache::TtlCache::new(CHECKED_TOKEN_TTL, 100_000),
            providers: crate::cache::TtlCache::new(PROVIDER_CACHE_TTL, 10_000),
            revocations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Voids every checked token: a session was just ended here (logout, or a reused
    /// refresh token). Rare, so the cost of re-checking all is small.
    pub fn session_ended(&self) {
        self.revocations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn revocation_epoch(&self) -> u64 {
        self.revocations.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A logged-in user's tokens and where they stand.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user: User,
    pub status: UserStatus,
}

/// Who made a request, from its access token.
#[derive(Debug)]
pub struct Caller {
    pub claims: Arc<AccessClaims>,
}

fn unauthenticated(message: impl Into<String>, reason: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message).with_detail("reason", reason)
}

/// A refused ID token as a safe answer: the kind of reason, never the token.
pub fn id_token_error(e: IdTokenError) -> ApiError {
    let reason = match &e {
        IdTokenError::Malformed => "malformed",
        IdTokenError::UnsupportedAlgorithm => "unsupported_algorithm",
        IdTokenError::UnknownKey => "unknown_key",
        IdTokenError::BadSignature => "bad_signature",
        IdTokenError::WrongIssuer => "wrong_issuer",
        IdTokenError::WrongAudience => "wrong_audience",
        IdTokenError::Expired => "expired",
        IdTokenError::IssuedInFuture => "issued_in_future",
        IdTokenError::NotYetValid => "not_yet_valid",
        IdTokenError::Discovery(cause) => {
            tracing::warn!(%cause, "OpenID provider unavailable");
            return unauthenticated(
                "the login provider could not be reached; try again shortly",
                "provider_unavailable",
            );
        }
    };
    unauthenticated(e.to_string(), reason)
}

/// A refused access token as a safe answer.
pub fn access_token_error(e: AccessTokenError) -> ApiError {
    let reason = match e {
        AccessTokenError::Malformed => "malformed",
        AccessTokenError::UnsupportedAlgorithm => "unsupported_algorithm",
        AccessTokenError::UnknownKey => "unknown_key",
        AccessTokenError::BadSignature => "bad_signature",
        AccessTokenError::WrongIssuer => "wrong_issuer",
        AccessTokenError::WrongApp => "wrong_app",
        AccessTokenError::Expired => "expired",
        AccessTokenError::IssuedInFuture => "issued_in_future",
    };
    unauthenticated(e.to_string(), reason)
}

/// The bearer token of an `Authorization` header value, if it has one.
pub fn bearer(header: Option<&str>) -> Result<&str, ApiError> {
    header
        .and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unauthenticated(
                "an Authorization: Bearer access token is required",
                "missing_token",
            )
        })
}

impl Auth {
    /// Logs in with an ID token from one of `app`'s providers.
    pub async fn login<R: CryptoRng + ?Sized>(
        &self,
        store: &Store,
        app: &App,
        provider: &str,
        id_token: &str,
        now: u64,
        rng: &mut R,
    ) -> Result<Issued, ApiError> {
        let provider = match self.app_provider(store, &app.id, provider).await {
            Ok(p) if p.kind == "oidc" => p,
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "the app has no login provider of that name",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let config = provider_config(&provider);
        let claims = self
            .verifier
            .verify(&config, id_token, now)
            .await
            .map_err(id_token_error)?;
        self.login_with_claims(store, app, &provider.name, &claims, now, rng)
            .await
    }

    /// An app's login provider, from the cache when read less than [`PROVIDER_CACHE_TTL`]
    /// ago. Only found providers are kept, so unknown names cannot fill the cache.
    async fn app_provider(
        &self,
        store: &Store,
        app_id: &str,
        name: &str,
    ) -> Result<keystead_store::AppProvider, StoreError> {
        let key = (app_id.to_owned(), name.to_owned());
        let now = std::time::Instant::now();
        if let Some(provider) = self.providers.get(&key, now) {
            return Ok(provider);
        }
        let provider = store.get_app_provider(app_id, name).await?;
        self.providers.put(key, provider.clone(), now);
        Ok(provider)
    }

    /// Logs in the user a verified ID token names (found by provider and subject, or
    /// created), and opens a session.
    pub async fn login_with_claims<R: CryptoRng + ?Sized>(
        &self,
        store: &Store,
        app: &App,
        provider: &str,
        claims: &IdClaims,
        now: u64,
        rng: &mut R,
    ) -> Result<Issued, ApiError> {
        let (user, has_wallet) =
            find_or_create_user(store, app, provider, claims, now, rng).await?;
        self.open_session(store, app, user, user_status(has_wallet, false), now, rng)
            .await
    }

    async fn open_session<R: CryptoRng + ?Sized>(
        &self,
        store: &Store,
        app: &App,
        user: User,
        status: UserStatus,
        now: u64,
        rng: &mut R,
    ) -> Result<Issued, ApiError> {
        let (refresh_token, refresh_hash) = new_refresh_token(rng);
        let session = Session {
            id: new_id(id_prefix::SESSION, rng),
            app_id: app.id.clone(),
            user_id: user.id.clone(),
            created_at: secs(now),
            expires_at: secs(now.saturating_add(SESSION_TTL_SECS)),
            revoked_at: None,
        };
        store.create_session(&session, &refresh_hash).await?;
        Ok(self.issue(&session, user, status, refresh_token, now, rng))
    }

    fn issue<R: CryptoRng + ?Sized>(
        &self,
        session: &Session,
        user: User,
        status: UserStatus,
        refresh_token: String,
        now: u64,
        rng: &mut R,
    ) -> Issued {
        let access_token = self.signer.issue_access_token(
            &AccessClaims {
                app_id: session.app_id.clone(),
                user_id: user.id.clone(),
                session_id: session.id.clone(),
            },
            now,
            self.access_token_ttl_secs,
            rng,
        );
        Issued {
            access_token,
            refresh_token,
            expires_in: self.access_token_ttl_secs,
            user,
            status,
        }
    }

    /// Rotates a refresh token. A spent one revokes its session (the store does it).
    pub async fn refresh<R: CryptoRng + ?Sized>(
        &self,
        store: &Store,
        app: &App,
        refresh_token: &str,
        now: u64,
        rng: &mut R,
    ) -> Result<Issued, ApiError> {
        let (new_token, new_hash) = new_refresh_token(rng);
        let session = match store
            .rotate_refresh(&app.id, &hash_token(refresh_token), &new_hash, secs(now))
            .await
        {
            Ok(session) => session,
            Err(StoreError::NotFound) => {
                return Err(unauthenticated(
                    "the refresh token is invalid or its session has ended",
                    "invalid_refresh_token",
                ));
            }
            Err(StoreError::RefreshReuse) => {
                self.session_ended();
                tracing::warn!(app = %app.id, "refresh token reused; session revoked");
                return Err(unauthenticated(
                    "the refresh token was already used; the session is revoked",
                    "refresh_token_reused",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let user = store.get_user(&app.id, &session.user_id).await?;
        let status = status_of(store, &app.id, &user.id).await?;
        Ok(self.issue(&session, user, status, new_token, now, rng))
    }

    /// Checks an access token for `app`, and that its session is still live.
    pub async fn authenticate(
        &self,
        store: &Store,
        app: &App,
        authorization: Option<&str>,
        now: u64,
    ) -> Result<Caller, ApiError> {
        let token = bearer(authorization)?;
        let key = token_digest(token);
        let instant = std::time::Instant::now();
        let epoch = self.revocation_epoch();
        let mut verified = None;
        if let Some(((claims, expires_at, checked_in), fresh)) =
            self.checked.get_even_stale(&key, instant)
            && claims.app_id == app.id
            && now < expires_at
        {
            if fresh && checked_in == epoch {
                return Ok(Caller { claims });
            }
            // The same token's signature was good and still is (the key lives as long as
            // the process); only its session needs looking at again.
            verified = Some(claims);
        }
        let claims = match verified {
            Some(claims) => claims,
            None => Arc::new(
                self.signer
                    .verify_access_token(token, &app.id, now)
                    .map_err(access_token_error)?,
            ),
        };
        let ended = || unauthenticated("the session has ended", "session_ended");
        match store.get_session(&app.id, &claims.session_id).await {
            Ok(s) if s.is_live(secs(now)) && s.user_id == claims.user_id => {
                // Trusted again only while both the token and the session still run.
                let expires_at = token_expiry(token)
                    .unwrap_or(now)
                    .min(u64::try_from(s.expires_at).unwrap_or(0));
                self.checked
                    .put(key, (claims.clone(), expires_at, epoch), instant);
                Ok(Caller { claims })
            }
            Ok(_) | Err(StoreError::NotFound) => Err(ended()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The `exp` of an access token already verified (its payload is trusted here).
fn token_expiry(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// What the verifier needs of an app's provider.
pub fn provider_config(provider: &keystead_store::AppProvider) -> ProviderConfig {
    ProviderConfig {
        name: provider.name.clone(),
        issuer: provider.issuer.clone(),
        client_id: provider.client_id.clone(),
    }
}

/// What the user must do next in this app.
pub async fn status_of(store: &Store, app_id: &str, user_id: &str) -> Result<UserStatus, ApiError> {
    let has_wallet = store.wallet_for_user(app_id, user_id).await?.is_some();
    Ok(user_status(has_wallet, false))
}

async fn find_or_create_user<R: CryptoRng + ?Sized>(
    store: &Store,
    app: &App,
    provider: &str,
    claims: &IdClaims,
    now: u64,
    rng: &mut R,
) -> Result<(User, bool), ApiError> {
    // An email the provider says is unverified is not kept.
    let email = claims
        .email
        .clone()
        .filter(|_| claims.email_verified != Some(false));
    if let Some(found) = store
        .find_login_user(&app.id, provider, &claims.subject)
        .await?
    {
        let mut user = found.user;
        if email.is_some() && email != user.email {
            store
                .set_user_email(&app.id, &user.id, email.as_deref())
                .await?;
            user.email = email;
        }
        return Ok((user, found.has_wallet));
    }
    let user = User {
        id: new_id(id_prefix::USER, rng),
        app_id: app.id.clone(),
        email,
        created_at: secs(now),
    };
    match store
        .create_user_with_identity(&user, provider, &claims.subject)
        .await
    {
        Ok(()) => Ok((user, false)),
        // A concurrent first login for the same identity won: use its user.
        Err(StoreError::Conflict) => store
            .find_login_user(&app.id, provider, &claims.subject)
            .await?
            .map(|found| (found.user, found.has_wallet))
            .ok_or_else(|| ApiError::internal("identity conflict without a user")),
        Err(e) => Err(e.into()),
    }
}

fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Now, in Unix seconds, as the store keeps times.
pub fn now_secs() -> i64 {
    secs(now())
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer  abc ")).unwrap(), "abc");
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic abc"),
        ] {
            let e = bearer(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthenticated, "{bad:?}");
        }
    }

    /// Past [`CHECKED_TOKEN_TTL`] a checked token's session is read again (its signature,
    /// already verified, is not): a session ended behind this server's back, as another
    /// server sharing the database would end it, is refused; a live one still passes.
    #[tokio::test]
    async fn a_checked_token_has_its_session_read_again_after_the_ttl() {
        use rand::TryRngCore;
        use rand::rngs::OsRng;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let t = now();
        let app = App {
            id: "app_a".into(),
            name: "A".into(),
            created_at: secs(t),
        };
        store.create_app(&app).await.unwrap();
        let user = User {
            id: "usr_1".into(),
            app_id: app.id.clone(),
            email: None,
            created_at: secs(t),
        };
        store.create_user(&user).await.unwrap();
        let mut rng = OsRng.unwrap_err();
        let auth = Auth::new(
            SessionSigner::generate(&mut rng),
            OidcVerifier::with_options(Default::default()).unwrap(),
            600,
        );
        let mut tokens = Vec::new();
        for id in ["ses_live", "ses_ended"] {
            let session = Session {
                id: id.into(),
                app_id: app.id.clone(),
                user_id: user.id.clone(),
                created_at: secs(t),
                expires_at: secs(t) + 3600,
                revoked_at: None,
            };
            store
                .create_session(&session, &format!("hash {id}"))
                .await
                .unwrap();
            let issued = auth.issue(
                &session,
                user.clone(),
                UserStatus::PinRequired,
                String::new(),
                t,
                &mut rng,
            );
            tokens.push(format!("Bearer {}", issued.access_token));
        }
        for token in &tokens {
            auth.authenticate(&store, &app, Some(token), now())
                .await
                .unwrap();
        }
        store
            .revoke_session(&app.id, "ses_ended", secs(now()))
            .await
            .unwrap();
        let cached = auth
            .authenticate(&store, &app, Some(&tokens[1]), now())
            .await;
        assert!(cached.is_ok(), "within the TTL the check stands");
        tokio::time::sleep(CHECKED_TOKEN_TTL + std::time::Duration::from_millis(100)).await;
        let live = auth
            .authenticate(&store, &app, Some(&tokens[0]), now())
            .await
            .unwrap();
        assert_eq!(live.claims.session_id, "ses_live");
        let ended = auth
            .authenticate(&store, &app, Some(&tokens[1]), now())
            .await
            .unwrap_err();
        assert_eq!(ended.code, ErrorCode::Unauthenticated);
        assert_eq!(ended.details["reason"], "session_ended", "{ended:?}");
    }

    #[test]
    fn refusals_name_the_reason_kind() {
        let e = id_token_error(IdTokenError::WrongAudience);
        assert_eq!(e.code, ErrorCode::Unauthenticated);
        assert_eq!(e.details["reason"], "wrong_audience");
        let e = id_token_error(IdTokenError::Discovery("http://x: refused".into()));
        assert_eq!(e.details["reason"], "provider_unavailable");
        assert!(!e.message.contains("http://x"));
        let e = access_token_error(AccessTokenError::WrongApp);
        assert_eq!(e.details["reason"], "wrong_app");
    }
}
