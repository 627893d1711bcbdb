//! `GET /v1/app`: what a client needs to know about the app its key names.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::app_check::CurrentApp;
use super::{ApiResult, SharedState};

/// The app, its networks and the providers its users log in with.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub app_id: String,
    pub name: String,
    pub networks: Vec<NetworkInfo>,
    pub login_providers: Vec<LoginProvider>,
    /// The origins allowed to call the API for this app (the widget checks the page that
    /// embeds it against these).
    pub origins: Vec<String>,
}

/// A network the app's accounts live on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInfo {
    pub id: String,
    /// `evm`.
    pub family: String,
    pub chain_id: u64,
    pub name: String,
    pub symbol: String,
    pub decimals: u8,
    /// The ERC-20 tokens the operator lists for this network: balances are read for
    /// them, and a transfer of one is shown with this symbol and these decimals.
    pub tokens: Vec<TokenInfo>,
}

/// A listed ERC-20 token, as configured (never as the contract describes itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    /// The contract's address, EIP-55 checksummed.
    pub contract: String,
    pub symbol: String,
    pub decimals: u8,
}

impl From<&keystead_chains::TokenConfig> for TokenInfo {
    fn from(token: &keystead_chains::TokenConfig) -> Self {
        Self {
            contract: token.contract.to_checksum(None),
            symbol: token.symbol.clone(),
            decimals: token.decimals,
        }
    }
}

/// An OpenID provider the app accepts ID tokens from.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginProvider {
    pub name: String,
    pub issuer: String,
}

#[utoipa::path(
    get,
    path = "/v1/app",
    params(("X-App-Key" = String, Header, description = "The app's key")),
    responses(
        (status = 200, body = AppInfo),
        (status = 401, body = keystead_types::ErrorBody),
        (status = 403, body = keystead_types::ErrorBody)
    )
)]
pub async fn get_app(
    State(state): State<SharedState>,
    Extension(CurrentApp(app)): Extension<CurrentApp>,
) -> ApiResult<Json<AppInfo>> {
    let providers = state.store.list_app_providers(&app.id).await?;
    let origins = state.store.list_app_origins(&app.id).await?;
    Ok(Json(AppInfo {
        app_id: app.id.clone(),
        name: app.name.clone(),
        networks: state
            .chains
            .configs()
            .map(|n| NetworkInfo {
                id: n.id.clone(),
                family: "evm".into(),
                chain_id: n.chain_id,
                name: n.name.clone(),
                symbol: n.symbol.clone(),
                decimals: n.decimals,
                tokens: n.tokens.iter().map(TokenInfo::from).collect(),
            })
            .collect(),
        login_providers: providers
            .into_iter()
            .map(|p| LoginProvider {
                name: p.name,
                issuer: p.issuer,
            })
            .collect(),
        origins,
    }))
}
