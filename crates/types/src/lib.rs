//! Keystead's public API types: request and response bodies, and the stable error codes
//! of `API.md`. No I/O; the server maps errors to HTTP in one place.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The stable machine codes of the error body. Extend, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthenticated,
    ForbiddenOrigin,
    NotFound,
    WalletExists,
    WalletRequired,
    WrongPin,
    WalletLocked,
    EnvelopeRejected,
    InsufficientFunds,
    ChainUnavailable,
    RateLimited,
    EnclaveUnavailable,
    Internal,
    /// A recovery code that does not open the wallet.
    WrongRecoveryCode,
    /// A new PIN that breaks the PIN rules (`details.rule`).
    WeakPin,
    /// A request body over the size limit.
    PayloadTooLarge,
    /// A retried request whose `Idempotency-Key` was used with a different body.
    IdempotencyConflict,
    /// The node says the transaction's nonce is already used (sent from elsewhere).
    NonceTooLow,
    /// The node refuses the fees as too low for its mempool.
    FeeTooLow,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::ForbiddenOrigin => "forbidden_origin",
            ErrorCode::NotFound => "not_found",
            ErrorCode::WalletExists => "wallet_exists",
            ErrorCode::WalletRequired => "wallet_required",
            ErrorCode::WrongPin => "wrong_pin",
            ErrorCode::WalletLocked => "wallet_locked",
            ErrorCode::EnvelopeRejected => "envelope_rejected",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::ChainUnavailable => "chain_unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::EnclaveUnavailable => "enclave_unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::WrongRecoveryCode => "wrong_recovery_code",
            ErrorCode::WeakPin => "weak_pin",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::NonceTooLow => "nonce_too_low",
            ErrorCode::FeeTooLow => "fee_too_low",
        }
    }
}

/// `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// `GET /v1/enclave/attestation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponse {
    /// `dev` (proves nothing) or `nitro`.
    pub format: String,
    /// Base64 of the attestation document.
    pub document: String,
    /// Base64 of the X25519 key PIN envelopes are sealed to.
    pub public_key: String,
    pub suite: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_names() {
        for code in [
            ErrorCode::WrongPin,
            ErrorCode::EnclaveUnavailable,
            ErrorCode::WeakPin,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
    }

    #[test]
    fn error_body_has_the_contract_shape() {
        let mut details = serde_json::Map::new();
        details.insert("remainingTries".into(), 3.into());
        let body = ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::WrongPin,
                message: "wrong PIN".into(),
                details,
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "wrong_pin", "message": "wrong PIN", "details": {"remainingTries": 3}}})
        );
    }
}
