//! The app check on `/v1/*` (except `/v1/openapi.json`): `X-App-Key` names the app,
//! `Origin` (when present) must be one of its registered origins, and CORS headers are
//! added only for such an origin (never `*`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keystead_identity::hash_token;
use keystead_store::{App, StoreError};
use keystead_types::ErrorCode;
use tower::{Layer, Service};

use super::{ApiError, SharedState};
use crate::admin::normalize_origin;

pub static APP_KEY: HeaderName = HeaderName::from_static("x-app-key");

/// The app a request was made for, put in the request's extensions by [`check`]: the
/// cached app itself, shared.
#[derive(Clone, Debug)]
pub struct CurrentApp(pub Arc<App>);

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "content-type, authorization, x-app-key, idempotency-key";
const EXPOSE_HEADERS: &str = "x-request-id, retry-after";
const MAX_AGE_SECS: &str = "600";

/// Puts [`check`] in front of each route it wraps.
#[derive(Clone)]
pub struct AppCheckLayer {
    state: SharedState,
}

impl AppCheckLayer {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for AppCheckLayer {
    type Service = AppCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AppCheck {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AppCheck<S> {
    inner: S,
    state: SharedState,
}

type BoxResponseFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

impl<S> Service<Request> for AppCheck<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AppCheckFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The usual request (no `Origin`, an app key seen in the last few seconds) is
        // checked here and goes straight on; any other waits for the store in `check`.
        if req.method() != Method::OPTIONS
            && !req.headers().contains_key(header::ORIGIN)
            && let Ok(hash) = key_hash(req.headers())
            && let Some(app) = self.state.app_keys.get(&hash, std::time::Instant::now())
        {
            req.extensions_mut().insert(CurrentApp(app));
            return AppCheckFuture::Checked {
                inner: self.inner.call(req),
            };
        }
        // `self.inner` is the clone that was made ready; keep a fresh one for next time.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let state = self.state.clone();
        AppCheckFuture::Checking {
            future: Box::pin(check(state, req, move |req| inner.call(req))),
        }
    }
}

pin_project_lite::pin_project! {
    #[project = AppCheckProjection]
    pub enum AppCheckFuture<F> {
        Checked { #[pin] inner: F },
        Checking { future: BoxResponseFuture },
    }
}

impl<F> Future for AppCheckFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AppCheckProjection::Checked { inner } => inner.poll(cx),
            AppCheckProjection::Checking { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

async fn check<F>(state: SharedState, mut req: Request, next: impl FnOnce(Request) -> F) -> Response
where
    F: Future<Output = Result<Response, Infallible>>,
{
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
    let Ok(mut response) = next(req).await;
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

async fn app_for_request(state: &SharedState, headers: &HeaderMap) -> Result<Arc<App>, ApiError> {
    let unauthenticated = || {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "a valid X-App-Key header is required",
        )
    };
    let hash = key_hash(headers).map_err(|()| unauthenticated())?;
    let now = std::time::Instant::now();
    if let Some(app) = state.app_keys.get(&hash, now) {
        return Ok(app);
    }
    // Only found keys are kept, so unknown keys cannot fill the cache.
    match state.store.app_for_key(&hash).await {
        Ok(app) => {
            let app = Arc::new(app);
            state.app_keys.put(hash, app.clone(), now);
            Ok(app)
        }
        Err(StoreError::NotFound) => Err(unauthenticated()),
        Err(e) => Err(e.into()),
    }
}

/// The hash of the request's `X-App-Key`, as apps' keys are stored.
fn key_hash(headers: &HeaderMap) -> Result<String, ()> {
    headers
        .get(&APP_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(hash_token)
        .ok_or(())
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
