//! keystead-identity: who may reach a wallet.
//!
//! - [`OidcVerifier`] checks OpenID Connect ID tokens from an app's configured providers
//!   (discovery and JWKS fetched over HTTP and cached; everything else is pure logic).
//! - [`SessionSigner`] issues and checks Keystead's own short-lived access tokens
//!   (EdDSA JWTs) and publishes their JWKS.
//! - [`new_refresh_token`], [`new_app_key`], [`hash_token`], [`new_id`]: the secrets and
//!   identifiers the `store` crate persists (only hashes of secrets are stored).
//! - [`UserStatus`] and [`user_status`]: what a logged-in user must do next.
//!
//! Time (Unix seconds) and randomness (a `rand` 0.9 [`rand::CryptoRng`]) are always
//! passed in; nothing here reads the clock or the OS RNG. Nothing here touches the
//! database.

mod code_flow;
mod jwt;
mod oidc;
mod session;
mod status;
mod tokens;

pub use code_flow::{CodeFlowError, PendingLogin};
pub use oidc::{
    DISCOVERY_PATH, IdClaims, IdTokenError, LEEWAY_SECS, OidcVerifier, ProviderConfig,
    REFETCH_INTERVAL_SECS, VerifierOptions,
};
pub use session::{
    ACCESS_TOKEN_ISSUER, ACCESS_TOKEN_TYPE, AccessClaims, AccessTokenError, KeyFileError,
    SessionPublicKey, SessionSigner,
};
pub use status::{UserStatus, user_status};
pub use tokens::{
    APP_KEY_PREFIX, ID_CHARS, REFRESH_TOKEN_PREFIX, hash_token, id_prefix, new_app_key, new_id,
    new_refresh_token, token_digest,
};
