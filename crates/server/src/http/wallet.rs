//! `/v1/wallet*`, `/v1/accounts*` and `/v1/sign/*`: thin handlers over [`crate::wallet`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keystead_enclave_proto::{
    ChangePinRequest, ExportRequest, RecoverRequest, Request, Response, SignPayload,
};
use keystead_envelope::Sealed;
use keystead_store::AccountRow;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{Authed, JsonBody};
use super::{ApiError, ApiResult, SharedState};
use crate::auth::now_secs;
use crate::wallet;
use keystead_types::ErrorCode;

/// An HPKE-sealed value: `{"enc", "ciphertext"}`, both standard base64.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the shape of `keystead_envelope::Sealed` for OpenAPI
pub struct SealedValue {
    pub enc: String,
    pub ciphertext: String,
}

/// `POST /v1/wallet` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWalletRequest {
    /// A `create_wallet` PIN envelope carrying the new PIN.
    #[schema(value_type = SealedValue)]
    pub pin: Sealed,
    /// The client's one-time X25519 public key (base64); the recovery kit is sealed to it.
    pub client_key: String,
}

/// An address of the user's wallet on one network.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    pub id: String,
    pub network: String,
    /// `evm`.
    pub family: String,
    /// EIP-55.
    pub address: String,
    pub path: String,
}

impl From<AccountRow> for Account {
    fn from(a: AccountRow) -> Self {
        Account {
            id: a.id,
            network: a.network,
            family: a.family,
            address: a.address,
            path: a.path,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWalletResponse {
    pub wallet_id: String,
    pub accounts: Vec<Account>,
    /// `{"recoveryCode"}` sealed to `clientKey`: shown to the user once.
    #[schema(value_type = SealedValue)]
    pub recovery_kit: Sealed,
}

#[derive(Serialize, ToSchema)]
pub struct AccountsResponse {
    pub accounts: Vec<Account>,
}

#[derive(Serialize, ToSchema)]
pub struct Amount {
    pub symbol: String,
    pub decimals: u8,
    /// Base units, decimal.
    pub amount: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenAmount {
    pub contract: String,
    pub symbol: String,
    pub decimals: u8,
    pub amount: String,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceResponse {
    pub network: String,
    pub address: String,
    pub native: Amount,
    pub tokens: Vec<TokenAmount>,
}

/// `POST /v1/wallet/pin` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePinBody {
    /// A `change_pin` envelope carrying the current PIN.
    #[schema(value_type = SealedValue)]
    pub pin: Sealed,
    /// A `new_pin` envelope carrying the new PIN.
    #[schema(value_type = SealedValue)]
    pub new_pin: Sealed,
}

/// `POST /v1/wallet/recover` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecoverBody {
    /// A `recover` envelope whose `pin` field holds the recovery code.
    #[schema(value_type = SealedValue)]
    pub recovery: Sealed,
    #[schema(value_type = SealedValue)]
    pub new_pin: Sealed,
}

/// `POST /v1/wallet/export` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportBody {
    #[schema(value_type = SealedValue)]
    pub pin: Sealed,
    pub client_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct ExportResponse {
    /// `{"mnemonic"}` sealed to `clientKey`.
    #[schema(value_type = SealedValue)]
    pub mnemonic: Sealed,
}

#[derive(Deserialize, ToSchema, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MessageEncoding {
    #[default]
    Utf8,
    Hex,
}

/// `POST /v1/sign/message` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignMessageBody {
    pub account_id: String,
    pub message: String,
    /// `utf8` (default) or `hex` (`0x`-prefixed).
    #[serde(default)]
    pub encoding: MessageEncoding,
    #[schema(value_type = SealedValue)]
    pub pin: Sealed,
}

/// `POST /v1/sign/typed-data` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignTypedDataBody {
    pub account_id: String,
    /// EIP-712 typed data: `types`, `primaryType`, `domain`, `message`.
    #[schema(value_type = Object)]
    pub typed_data: Value,
    #[schema(value_type = SealedValue)]
    pub pin: Sealed,
}

#[derive(Serialize, ToSchema)]
pub struct SignatureResponse {
    /// 65 bytes `r ‖ s ‖ v` as `0x`-hex, `v` 27 or 28.
    pub signature: String,
}

const AUTH_PARAMS: &str = "X-App-Key and Authorization: Bearer";

#[utoipa::path(post, path = "/v1/wallet", request_body = CreateWalletRequest,
    description = AUTH_PARAMS,
    responses((status = 201, body = CreateWalletResponse), (status = 409, body = keystead_types::ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<CreateWalletRequest>,
) -> ApiResult<(StatusCode, Json<CreateWalletResponse>)> {
    let mut rng = OsRng.unwrap_err();
    let created = wallet::create(
        &state,
        &caller,
        body.pin,
        body.client_key,
        now_secs(),
        &mut rng,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreateWalletResponse {
            wallet_id: created.wallet_id,
            accounts: created.accounts.into_iter().map(Account::from).collect(),
            recovery_kit: created.recovery_kit,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/accounts", description = AUTH_PARAMS,
    responses((status = 200, body = AccountsResponse)))]
pub async fn accounts(
    State(state): State<SharedState>,
    Authed(caller): Authed,
) -> ApiResult<Json<AccountsResponse>> {
    let mut rng = OsRng.unwrap_err();
    let accounts = wallet::accounts(&state, &caller, now_secs(), &mut rng).await?;
    Ok(Json(AccountsResponse {
        accounts: accounts.into_iter().map(Account::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/accounts/{id}/balance", description = AUTH_PARAMS,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, body = BalanceResponse)))]
pub async fn balance(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    Path(account_id): Path<String>,
) -> ApiResult<Json<BalanceResponse>> {
    let account = wallet::caller_account(&state, &caller, &account_id).await?;
    let client = state.chains.get(&account.network).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ChainUnavailable,
            "the account's network is no longer configured",
        )
    })?;
    let address = account
        .address
        .parse()
        .map_err(|_| ApiError::internal("stored address is not an address"))?;
    let config = client.config();
    let (amount, token_amounts) = tokio::try_join!(
        client.balance(address),
        futures_util::future::try_join_all(
            config
                .tokens
                .iter()
                .map(|t| client.erc20_balance(t.contract, address))
        ),
    )?;
    Ok(Json(BalanceResponse {
        network: account.network,
        address: account.address,
        native: Amount {
            symbol: config.symbol.clone(),
            decimals: config.decimals,
            amount: amount.to_string(),
        },
        tokens: config
            .tokens
            .iter()
            .zip(token_amounts)
            .map(|(token, amount)| TokenAmount {
                contract: token.contract.to_checksum(None),
                symbol: token.symbol.clone(),
                decimals: token.decimals,
                amount: amount.to_string(),
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/v1/wallet/pin", request_body = ChangePinBody, description = AUTH_PARAMS,
    responses((status = 204), (status = 403, body = keystead_types::ErrorBody)))]
pub async fn change_pin(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<ChangePinBody>,
) -> ApiResult<StatusCode> {
    let response = wallet::call_with_caller_wallet(&state, &caller, now_secs(), |wallet| {
        Request::ChangePin(ChangePinRequest {
            wallet,
            pin: body.pin,
            new_pin: body.new_pin,
        })
    })
    .await?;
    wallet::expect_resealed(response)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/wallet/recover", request_body = RecoverBody, description = AUTH_PARAMS,
    responses((status = 204), (status = 403, body = keystead_types::ErrorBody)))]
pub async fn recover(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<RecoverBody>,
) -> ApiResult<StatusCode> {
    let response = wallet::call_with_caller_wallet(&state, &caller, now_secs(), |wallet| {
        Request::Recover(RecoverRequest {
            wallet,
            recovery: body.recovery,
            new_pin: body.new_pin,
        })
    })
    .await?;
    wallet::expect_resealed(response)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/wallet/export", request_body = ExportBody, description = AUTH_PARAMS,
    responses((status = 200, body = ExportResponse), (status = 403, body = keystead_types::ErrorBody)))]
pub async fn export(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<ExportBody>,
) -> ApiResult<Json<ExportResponse>> {
    let response = wallet::call_with_caller_wallet(&state, &caller, now_secs(), |wallet| {
        Request::Export(ExportRequest {
            wallet,
            client_key: body.client_key,
            pin: body.pin,
        })
    })
    .await?;
    match response {
        Response::Exported { mnemonic } => Ok(Json(ExportResponse { mnemonic })),
        _ => Err(ApiError::internal("unexpected enclave response to export")),
    }
}

fn message_bytes(message: &str, encoding: MessageEncoding) -> ApiResult<Vec<u8>> {
    match encoding {
        MessageEncoding::Utf8 => Ok(message.as_bytes().to_vec()),
        MessageEncoding::Hex => message
            .strip_prefix("0x")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "a hex message must be 0x-prefixed hex",
                )
            }),
    }
}

fn signature_response(signature: &[u8]) -> Json<SignatureResponse> {
    Json(SignatureResponse {
        signature: alloy_primitives::hex::encode_prefixed(signature),
    })
}

#[utoipa::path(post, path = "/v1/sign/message", request_body = SignMessageBody, description = AUTH_PARAMS,
    responses((status = 200, body = SignatureResponse), (status = 403, body = keystead_types::ErrorBody)))]
pub async fn sign_message(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<SignMessageBody>,
) -> ApiResult<Json<SignatureResponse>> {
    let message = message_bytes(&body.message, body.encoding)?;
    let signed = wallet::sign_for_account(
        &state,
        &caller,
        &body.account_id,
        body.pin,
        SignPayload::Message(message),
        now_secs(),
    )
    .await?;
    Ok(signature_response(&signed.signature))
}

#[utoipa::path(post, path = "/v1/sign/typed-data", request_body = SignTypedDataBody, description = AUTH_PARAMS,
    responses((status = 200, body = SignatureResponse), (status = 403, body = keystead_types::ErrorBody)))]
pub async fn sign_typed_data(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<SignTypedDataBody>,
) -> ApiResult<Json<SignatureResponse>> {
    if !body.typed_data.is_object() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "typedData must be an EIP-712 object",
        ));
    }
    let signed = wallet::sign_for_account(
        &state,
        &caller,
        &body.account_id,
        body.pin,
        SignPayload::TypedData(body.typed_data.to_string()),
        now_secs(),
    )
    .await?;
    Ok(signature_response(&signed.signature))
}
