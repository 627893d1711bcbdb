//! Extractors that turn a request into what handlers need, refusing with API errors:
//! the logged-in caller, and a JSON body.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::app_check::CurrentApp;
use super::{ApiError, SharedState};
use crate::auth::{Caller, now};
use keystead_types::ErrorCode;

/// The user a request is made for, from its `Authorization: Bearer` access token, checked
/// against the app the app key named and the session's liveness.
pub struct Authed(pub Caller);

impl FromRequestParts<SharedState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let app = parts
            .extensions
            .get::<CurrentApp>()
            .ok_or_else(|| ApiError::internal("user route outside the app check"))?
            .0
            .clone();
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        state
            .auth
            .authenticate(&state.store, &app, authorization, now())
            .await
            .map(Authed)
    }
}

/// A JSON body; malformed JSON, a missing field, an unknown field or a wrong type is
/// `invalid_request`, a body over the limit `payload_too_large`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // axum's `Json` parses through serde_path_to_error (a String per field name, to
        // say where a body went wrong): only a body plain serde_json refuses goes that way,
        // for the message. Anything but a bare `application/json` is left to axum whole.
        let plain_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json"));
        if !plain_json {
            return match axum::Json::<T>::from_request(req, state).await {
                Ok(axum::Json(value)) => Ok(JsonBody(value)),
                Err(rejection) => Err(json_rejection(rejection)),
            };
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(e.into()))?;
        if let Ok(value) = serde_json::from_slice(&bytes) {
            return Ok(JsonBody(value));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

pub fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large");
    }
    ApiError::new(
        ErrorCode::InvalidRequest,
        without_quoted(&rejection.body_text()),
    )
}

/// The parser's message with every quoted value blanked: serde quotes the input it
/// refuses (`invalid type: string "482913"`), and a PIN sent in the wrong place must not
/// come back in an error.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_values_are_blanked() {
        assert_eq!(
            super::without_quoted(r#"pin: invalid type: string "482913", expected struct Sealed"#),
            r#"pin: invalid type: string "…", expected struct Sealed"#
        );
        assert_eq!(
            super::without_quoted("missing field `pin`"),
            "missing field `pin`"
        );
    }
}
