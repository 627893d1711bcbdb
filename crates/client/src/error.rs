//! The client's errors. None of them ever carries a PIN, recovery code, mnemonic or token.

use keystead_attestation::AttestationError;
use keystead_envelope::{EnvelopeError, PinRuleError};
use serde_json::{Value, json};

/// Everything that can go wrong talking to a Keystead server or preparing a request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status and its `{"error": {...}}` object, kept
    /// verbatim so that the command line can print exactly what the server said.
    #[error("server error {status}: {}", api_error_summary(body))]
    Api { status: u16, body: Value },
    /// The server answered an error status without a contract error object.
    #[error("server answered HTTP {status} without an error object")]
    UnexpectedStatus { status: u16 },
    /// The request did not get an answer (connection refused, timeout, TLS...).
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    /// The server's answer is not what API.md describes.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// The enclave's attestation did not verify: nothing is sealed to it.
    #[error("attestation check failed: {0}")]
    Attestation(#[from] AttestationError),
    /// The attestation verified but does not vouch for the key the server offered.
    #[error("attestation check failed: {0}")]
    AttestationMismatch(&'static str),
    #[error("envelope error: {0}")]
    Envelope(#[from] EnvelopeError),
    /// A new PIN that breaks the PIN rules, caught before anything is sealed.
    #[error("the new PIN is not allowed: {0}")]
    WeakPin(PinRuleError),
    /// The prepared transaction is not the one the user asked for: nothing is signed.
    #[error("the server prepared a different transaction: its {0} differs from the request")]
    IntentMismatch(&'static str),
    /// A bad argument or input file (the message never quotes a secret).
    #[error("{0}")]
    InvalidInput(String),
    /// No usable session: log in first.
    #[error("{0}")]
    Session(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn api_error_summary(body: &Value) -> String {
    let code = body["error"]["code"].as_str().unwrap_or("unknown");
    match body["error"]["message"].as_str() {
        Some(message) => format!("{code}: {message}"),
        None => code.to_string(),
    }
}

impl ClientError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }

    /// The contract error code: the server's, or the closest one for a local failure.
    pub fn code(&self) -> String {
        match self {
            ClientError::Api { body, .. } => body["error"]["code"]
                .as_str()
                .unwrap_or("internal")
                .to_string(),
            ClientError::UnexpectedStatus { .. } | ClientError::Decode(_) => "internal".into(),
            ClientError::Http(_) => "server_unreachable".into(),
            ClientError::Attestation(_) | ClientError::AttestationMismatch(_) => {
                "attestation_failed".into()
            }
            ClientError::Envelope(_) => "envelope_rejected".into(),
            ClientError::WeakPin(_) => "weak_pin".into(),
            ClientError::IntentMismatch(_) => "intent_mismatch".into(),
            ClientError::InvalidInput(_) => "invalid_request".into(),
            ClientError::Session(_) => "unauthenticated".into(),
            ClientError::Io { .. } => "io_error".into(),
        }
    }

    /// The `{"error": {"code", "message", "details"?}}` object to print: the server's own,
    /// verbatim, or one in the same shape for a failure on this side.
    pub fn error_object(&self) -> Value {
        match self {
            ClientError::Api { body, .. } => body.clone(),
            ClientError::WeakPin(rule) => json!({"error": {
                "code": "weak_pin",
                "message": self.to_string(),
                "details": {"rule": rule.code()},
            }}),
            _ => json!({"error": {"code": self.code(), "message": self.to_string()}}),
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_object_is_kept_verbatim() {
        let body = json!({"error": {"code": "wrong_pin", "message": "wrong PIN", "details": {"remainingTries": 4, "extra": [1, 2]}}});
        let err = ClientError::Api {
            status: 403,
            body: body.clone(),
        };
        assert_eq!(err.error_object(), body);
        assert_eq!(err.code(), "wrong_pin");
        assert_eq!(err.to_string(), "server error 403: wrong_pin: wrong PIN");
    }

    #[test]
    fn local_errors_have_the_same_shape() {
        let err = ClientError::WeakPin(PinRuleError::Sequential);
        let obj = err.error_object();
        assert_eq!(obj["error"]["code"], "weak_pin");
        assert_eq!(obj["error"]["details"]["rule"], "sequential");
        let err = ClientError::InvalidInput("bad --to".into());
        assert_eq!(err.error_object()["error"]["code"], "invalid_request");
    }
}
