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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

pub fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large");
    }
    ApiError::new(ErrorCode::InvalidRequest, rejection.body_text())
}
