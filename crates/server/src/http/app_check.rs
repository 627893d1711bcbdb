//! The app check on `/v1/*` (except `/v1/openapi.json`): `X-App-Key` names the app,
//! `Origin` (when present) must be one of its registered origins, and CORS headers are
//! added only for such an origin (never `*`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keystead_identity::hash_token;
use keystead_store::{App, StoreError};
use keystead_types::ErrorCode;

use super::{ApiError, SharedState};
use crate::admin::normalize_origin;

pub static APP_KEY: HeaderName = HeaderName::from_static("x-app-key");

/// The app a request was made for, put in the request's extensions by [`check`].
#[derive(Clone, Debug)]
pub struct CurrentApp(pub App);

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "content-type, authorization, x-app-key, idempotency-key";
const EXPOSE_HEADERS: &str = "x-request-id, retry-after";
const MAX_AGE_SECS: &str = "600";

pub async fn check(State(state): State<SharedState>, mut req: Request, next: Next) -> Response {
    let origin = match request_origin(req.headers()) {
        Ok(origin) => origin,
        Err(e) => return e.into_response(),
    };

    // A preflight carries no app key, so it cannot name the app. It is answered when the
    // origin is registered for *some* app; the actual request that follows is then held to
    // its own app's origins below. This reveals only that an origin is registered
    // somewhere, and a preflight for an unregistered origin gets no CORS headers.
    if req.method() == Method::OPTIONS {
        let Some(origin) = origin else {
            return StatusCode::NO_CONTENT.into_response();
        };
        if origin == state.public_origin {
            return preflight(&origin);
        }
        return match state.store.origin_registered_anywhere(&origin).await {
            Ok(true) => preflight(&origin),
            Ok(false) => forbidden_origin(),
            Err(e) => ApiError::from(e).into_response(),
        };
    }

    let app = match app_for_request(&state, req.headers()).await {
        Ok(app) => app,
        Err(e) => return e.into_response(),
    };
    // The widget is served by this server: its origin is every app's.
    if let Some(origin) = origin.as_ref().filter(|o| **o != state.public_origin) {
        match state.store.app_allows_origin(&app.id, origin).await {
            Ok(true) => {}
            Ok(false) => return forbidden_origin(),
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    req.extensions_mut().insert(CurrentApp(app));
    let mut response = next.run(req).await;
    if let Some(origin) = &origin {
        allow_origin(response.headers_mut(), origin);
        response.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    response
}

/// The request's `Origin`, normalised; an `Origin` that is not an http(s) origin (e.g.
/// `null`) can never be registered, so it is refused.
fn request_origin(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| normalize_origin(v).ok())
        .map(Some)
        .ok_or_else(forbidden_origin_error)
}

async fn app_for_request(state: &SharedState, headers: &HeaderMap) -> Result<App, ApiError> {
    let unauthenticated = || {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "a valid X-App-Key header is required",
        )
    };
    let key = headers
        .get(&APP_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(unauthenticated)?;
    let hash = hash_token(key);
    let now = std::time::Instant::now();
    if let Some(app) = state.app_keys.get(&hash, now) {
        return Ok(app);
    }
    // Only found keys are kept, so unknown keys cannot fill the cache.
    match state.store.app_for_key(&hash).await {
        Ok(app) => {
            state.app_keys.put(hash, app.clone(), now);
            Ok(app)
        }
        Err(StoreError::NotFound) => Err(unauthenticated()),
        Err(e) => Err(e.into()),
    }
}

/// The answer to a preflight from an allowed origin (browsers cache it for `Max-Age`).
fn preflight(origin: &str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    allow_origin(headers, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECS),
    );
    response
}

fn allow_origin(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn forbidden_origin_error() -> ApiError {
    ApiError::new(
        ErrorCode::ForbiddenOrigin,
        "this origin is not registered for the app",
    )
}

fn forbidden_origin() -> Response {
    forbidden_origin_error().into_response()
}
