//! The one place where errors become HTTP answers. Internal causes are logged with the
//! request's id and never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keystead_enclave_client::ClientError;
use keystead_enclave_proto::{EnclaveError, EnvelopeRejection};
use keystead_types::{ErrorBody, ErrorCode, ErrorDetail};
use serde_json::{Map, Value};

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// An internal failure: the cause goes to the log, the caller gets `internal`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

/// Exhaustive: a new code does not compile until it has a status.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest | ErrorCode::WeakPin => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::WalletExists | ErrorCode::IdempotencyConflict | ErrorCode::NonceTooLow => {
            StatusCode::CONFLICT
        }
        ErrorCode::WalletRequired => StatusCode::PRECONDITION_REQUIRED,
        ErrorCode::WrongPin | ErrorCode::WrongRecoveryCode | ErrorCode::EnvelopeRejected => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::WalletLocked | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::InsufficientFunds | ErrorCode::FeeTooLow => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::ChainUnavailable => StatusCode::BAD_GATEWAY,
        ErrorCode::EnclaveUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
        let retry_after = self.details.get("retryAfter").and_then(Value::as_u64);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unavailable(cause) => {
                tracing::warn!(%cause, "enclave unavailable");
                ApiError::new(
                    ErrorCode::EnclaveUnavailable,
                    "the enclave is unavailable; try again shortly",
                )
            }
            ClientError::Protocol(cause) => {
                ApiError::internal(format!("enclave protocol: {cause}"))
            }
        }
    }
}

fn rejection_reason(r: EnvelopeRejection) -> &'static str {
    match r {
        EnvelopeRejection::Undecryptable => "undecryptable",
        EnvelopeRejection::Malformed => "malformed",
        EnvelopeRejection::WrongPurpose => "wrong_purpose",
        EnvelopeRejection::WrongDigest => "wrong_digest",
        EnvelopeRejection::Expired => "expired",
        EnvelopeRejection::ExpiryTooFar => "expiry_too_far",
        EnvelopeRejection::BadNonce => "bad_nonce",
        EnvelopeRejection::Replayed => "replayed",
    }
}

impl From<EnclaveError> for ApiError {
    fn from(e: EnclaveError) -> Self {
        match e {
            EnclaveError::WrongPin { remaining_tries } => {
                ApiError::new(ErrorCode::WrongPin, "wrong PIN")
                    .with_detail("remainingTries", remaining_tries)
            }
            EnclaveError::WalletLocked { retry_after } => ApiError::new(
                ErrorCode::WalletLocked,
                "too many wrong PINs; the wallet is locked",
            )
            .with_detail("retryAfter", retry_after),
            EnclaveError::WrongRecoveryCode => {
                ApiError::new(ErrorCode::WrongRecoveryCode, "wrong recovery code")
            }
            EnclaveError::EnvelopeRejected(r) => ApiError::new(
                ErrorCode::EnvelopeRejected,
                format!("PIN envelope rejected: {r}"),
            )
            .with_detail("reason", rejection_reason(r)),
            EnclaveError::WeakPin(rule) => {
                ApiError::new(ErrorCode::WeakPin, "the new PIN is too easy to guess")
                    .with_detail("rule", rule)
            }
            EnclaveError::IntentMismatch(m) | EnclaveError::InvalidRequest(m) => {
                ApiError::new(ErrorCode::InvalidRequest, m)
            }
            EnclaveError::Busy => ApiError::new(
                ErrorCode::EnclaveUnavailable,
                "the enclave is busy; try again shortly",
            ),
            EnclaveError::TamperedRecord
            | EnclaveError::Kms(_)
            | EnclaveError::Protocol(_)
            | EnclaveError::Internal => ApiError::internal(format!("enclave: {e}")),
        }
    }
}

impl From<keystead_store::StoreError> for ApiError {
    fn from(e: keystead_store::StoreError) -> Self {
        match e {
            keystead_store::StoreError::NotFound => ApiError::new(ErrorCode::NotFound, "not found"),
            e => ApiError::internal(format!("store: {e}")),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<keystead_chains::ChainError> for ApiError {
    fn from(e: keystead_chains::ChainError) -> Self {
        use keystead_chains::ChainError;
        match e {
            ChainError::InsufficientFunds => ApiError::new(
                ErrorCode::InsufficientFunds,
                "the account cannot pay the value and the fee",
            ),
            ChainError::NonceTooLow => ApiError::new(
                ErrorCode::NonceTooLow,
                "the node has already seen this nonce; prepare and send again",
            ),
            ChainError::Underpriced => ApiError::new(
                ErrorCode::FeeTooLow,
                "the fee is too low for the node; prepare again for a current fee",
            ),
            ChainError::Unavailable(cause) => {
                tracing::warn!(%cause, "chain unavailable");
                ApiError::new(
                    ErrorCode::ChainUnavailable,
                    "the network's node could not be reached; try again shortly",
                )
            }
            ChainError::WrongChain { expected, got } => {
                tracing::error!(expected, got, "a node serves another chain than configured");
                ApiError::new(
                    ErrorCode::ChainUnavailable,
                    "the network's node serves another chain; nothing was sent",
                )
            }
            // Reverts and other refusals: the node's (already shortened) words.
            ChainError::Rpc(message) => ApiError::new(ErrorCode::InvalidRequest, message),
        }
    }
}
