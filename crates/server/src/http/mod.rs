//! The HTTP API: routing, layers, and thin handlers.

mod app_check;
mod apps;
mod auth;
mod context;
pub mod error;
mod extract;
mod oauth;
mod system;
mod tx;
mod wallet;
pub mod widget;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::metrics::Metrics;
use keystead_enclave_client::EnclaveClient;
use keystead_store::Store;

pub use app_check::CurrentApp;
pub use error::{ApiError, ApiResult};

/// What every handler may reach.
pub struct AppState {
    pub enclave: Arc<EnclaveClient>,
    pub store: Store,
    pub metrics: Metrics,
    pub readiness_timeout: Duration,
    pub auth: crate::auth::Auth,
    pub chains: Arc<keystead_chains::ChainRegistry>,
    /// One enclave operation at a time per wallet (its PIN counter is in its record).
    pub wallet_locks: crate::locks::Locks,
    /// One send at a time per (chain, sender), so a refused nonce can be given back.
    pub account_locks: crate::locks::Locks,
    /// Apps by key hash, for [`APP_KEY_CACHE_TTL`]: every request names its app.
    pub app_keys: crate::cache::TtlCache<String, Arc<keystead_store::App>>,
    /// Where browsers reach this server (`Config::public_base_url`), and its origin.
    pub public_url: String,
    pub public_origin: String,
}

pub type SharedState = Arc<AppState>;

/// How long an app looked up by its key is reused: a rotated (revoked) key stops working
/// within this.
pub const APP_KEY_CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keystead",
        description = "Embedded wallets whose keys live only in an enclave."
    ),
    paths(
        system::healthz,
        system::readyz,
        system::attestation,
        apps::get_app,
        auth::id_token,
        auth::refresh,
        auth::logout,
        auth::me,
        auth::jwks,
        oauth::start,
        oauth::callback,
        wallet::create,
        wallet::accounts,
        wallet::balance,
        wallet::change_pin,
        wallet::recover,
        wallet::export,
        wallet::sign_message,
        wallet::sign_typed_data,
        tx::prepare,
        tx::sign,
        tx::send,
        tx::get
    ),
    components(schemas(
        keystead_types::ErrorBody,
        keystead_types::ErrorCode,
        keystead_types::AttestationResponse,
        keystead_types::Health,
        apps::AppInfo,
        apps::NetworkInfo,
        apps::TokenInfo,
        apps::LoginProvider,
        auth::IdTokenLogin,
        auth::RefreshRequest,
        auth::UserInfo,
        auth::SessionResponse,
        auth::MeResponse,
        wallet::SealedValue,
        wallet::CreateWalletRequest,
        wallet::CreateWalletResponse,
        wallet::Account,
        wallet::AccountsResponse,
        wallet::Amount,
        wallet::TokenAmount,
        wallet::BalanceResponse,
        wallet::ChangePinBody,
        wallet::RecoverBody,
        wallet::ExportBody,
        wallet::ExportResponse,
        wallet::MessageEncoding,
        wallet::SignMessageBody,
        wallet::SignTypedDataBody,
        wallet::SignatureResponse,
        crate::transfer::Intent,
        tx::PrepareBody,
        tx::PrepareResponse,
        tx::SignTxBody,
        tx::SignedTxResponse,
        tx::TxResponse
    ))
)]
pub struct ApiDoc;

/// The API's routes. The body limit is not among their layers: a router's `layer` wraps
/// each route on its own, one more boxed service called per request, so the server puts
/// it around the whole app once (`serve.rs`).
pub fn router(state: SharedState) -> Router {
    let metrics = state.metrics.clone();
    // Everything under `/v1` but the OpenAPI document is for an app: the app check runs
    // first (it also answers CORS preflights, so OPTIONS never reaches a handler).
    let v1 = Router::new()
        .route("/v1/app", get(apps::get_app))
        .route("/v1/enclave/attestation", get(system::attestation))
        .route("/v1/auth/id-token", post(auth::id_token))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/jwks.json", get(auth::jwks))
        .route("/v1/me", get(auth::me))
        .route("/v1/wallet", post(wallet::create))
        .route("/v1/wallet/pin", post(wallet::change_pin))
        .route("/v1/wallet/recover", post(wallet::recover))
        .route("/v1/wallet/export", post(wallet::export))
        .route("/v1/accounts", get(wallet::accounts))
        .route("/v1/accounts/{id}/balance", get(wallet::balance))
        .route("/v1/sign/message", post(wallet::sign_message))
        .route("/v1/sign/typed-data", post(wallet::sign_typed_data))
        .route("/v1/tx/prepare", post(tx::prepare))
        .route("/v1/tx/sign", post(tx::sign))
        .route("/v1/tx/send", post(tx::send))
        .route("/v1/tx/{id}", get(tx::get))
        .layer(app_check::AppCheckLayer::new(state.clone()));
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/v1/openapi.json", get(system::openapi))
        // Browser navigations in a login popup: no app-key header, the key is a parameter.
        .route("/v1/auth/oauth/start", get(oauth::start))
        .route(oauth::CALLBACK_PATH, get(oauth::callback))
        .merge(v1)
        .with_state(state)
        // Inside the router, where the matched route (the metrics' label) is known.
        .layer(context::RequestContextLayer::new(metrics))
}
