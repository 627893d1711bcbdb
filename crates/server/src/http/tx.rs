//! `/v1/tx/*`: thin handlers over [`crate::transfer`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use keystead_envelope::Sealed;
use keystead_store::TxRow;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Authed, JsonBody};
use super::wallet::SealedValue;
use super::{ApiError, ApiResult, SharedState};
use crate::auth::now_secs;
use crate::transfer::{self, Intent, public_status};
use keystead_types::ErrorCode;

/// `POST /v1/tx/prepare` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrepareBody {
    pub account_id: String,
    pub to: String,
    /// Wei, decimal.
    pub value: String,
    /// `0x`-hex call data.
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrepareResponse {
    pub intent: Intent,
    /// The `sign_transaction` digest (hex) a PIN envelope approving this intent carries.
    pub digest: String,
    /// `gasLimit × maxFeePerGas` in wei: the most the fee can be.
    pub max_fee: String,
}

/// `POST /v1/tx/sign` and `/v1/tx/send` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignTxBody {
    /// The intent exactly as `tx/prepare` returned it.
    pub intent: Intent,
    /// A `sign_transaction` envelope over the intent.
    #[schema(value_type = SealedValue)]
    pub pin: Sealed,
    /// Optional: the sending account (else found by the intent's network and `from`).
    #[serde(default)]
    pub account_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedTxResponse {
    /// EIP-2718 encoding, `0x`-hex.
    pub signed_transaction: String,
    pub hash: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TxResponse {
    pub id: String,
    pub hash: String,
    /// `pending`, `confirmed` or `failed`.
    pub status: String,
    pub block_number: Option<u64>,
    pub network: String,
    pub from: String,
    pub nonce: u64,
    /// Why the node refused it, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<TxRow> for TxResponse {
    fn from(tx: TxRow) -> Self {
        TxResponse {
            id: tx.id,
            hash: tx.hash,
            status: public_status(tx.status).to_string(),
            block_number: tx.block_number,
            network: tx.network,
            from: tx.from_address,
            nonce: tx.nonce,
            error: tx.error,
        }
    }
}

const AUTH_PARAMS: &str = "X-App-Key and Authorization: Bearer";

#[utoipa::path(post, path = "/v1/tx/prepare", request_body = PrepareBody, description = AUTH_PARAMS,
    responses((status = 200, body = PrepareResponse), (status = 422, body = keystead_types::ErrorBody)))]
pub async fn prepare(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<PrepareBody>,
) -> ApiResult<Json<PrepareResponse>> {
    let prepared = transfer::prepare(
        &state,
        &caller,
        &body.account_id,
        &body.to,
        &body.value,
        body.data.as_deref(),
    )
    .await?;
    Ok(Json(PrepareResponse {
        intent: prepared.intent,
        digest: prepared.digest,
        max_fee: prepared.max_fee.to_string(),
    }))
}

#[utoipa::path(post, path = "/v1/tx/sign", request_body = SignTxBody, description = AUTH_PARAMS,
    responses((status = 200, body = SignedTxResponse), (status = 403, body = keystead_types::ErrorBody)))]
pub async fn sign(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<SignTxBody>,
) -> ApiResult<Json<SignedTxResponse>> {
    let mut rng = OsRng.unwrap_err();
    let signed = transfer::sign(
        &state,
        &caller,
        &body.intent,
        body.account_id.as_deref(),
        body.pin,
        now_secs(),
        &mut rng,
    )
    .await?;
    let (Some(raw), Some(hash)) = (signed.signed_transaction, signed.transaction_hash) else {
        return Err(ApiError::internal(
            "the enclave returned no signed transaction",
        ));
    };
    Ok(Json(SignedTxResponse {
        signed_transaction: alloy_primitives::hex::encode_prefixed(raw),
        hash: alloy_primitives::hex::encode_prefixed(hash),
    }))
}

#[utoipa::path(post, path = "/v1/tx/send", request_body = SignTxBody,
    description = "X-App-Key and Authorization: Bearer; `Idempotency-Key` makes a retry return the first result",
    responses((status = 202, body = TxResponse), (status = 409, body = keystead_types::ErrorBody),
        (status = 422, body = keystead_types::ErrorBody)))]
pub async fn send(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignTxBody>,
) -> ApiResult<(StatusCode, Json<TxResponse>)> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "Idempotency-Key must be visible ASCII",
            )
        })?),
    };
    let mut rng = OsRng.unwrap_err();
    let tx = transfer::send(
        &state,
        &caller,
        &body.intent,
        body.account_id.as_deref(),
        body.pin,
        key,
        now_secs(),
        &mut rng,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(tx.into())))
}

#[utoipa::path(get, path = "/v1/tx/{id}", description = AUTH_PARAMS,
    params(("id" = String, Path, description = "The transaction id")),
    responses((status = 200, body = TxResponse), (status = 404, body = keystead_types::ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<TxResponse>> {
    let tx = transfer::get(&state, &caller, &id, now_secs()).await?;
    Ok(Json(tx.into()))
}
