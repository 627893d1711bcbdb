//! Health, readiness, metrics, the OpenAPI document and the enclave's attestation.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use keystead_enclave_proto::{Request, Response};
use keystead_types::{AttestationResponse, ErrorCode, Health};
use utoipa::OpenApi;

use super::{ApiDoc, ApiError, ApiResult, SharedState};

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Ready when the database and an enclave answer.
#[utoipa::path(get, path = "/readyz", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    let unavailable = |what: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: format!("{what} unavailable"),
            }),
        )
    };
    let database = tokio::time::timeout(state.readiness_timeout, state.store.ping()).await;
    if !matches!(database, Ok(Ok(()))) {
        return unavailable("database");
    }
    let enclave =
        tokio::time::timeout(state.readiness_timeout, state.enclave.call(Request::Ping)).await;
    match enclave {
        Ok(Ok(reply)) if matches!(reply.result, Ok(Response::Pong(_))) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
            }),
        ),
        _ => unavailable("enclave"),
    }
}

pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

#[utoipa::path(
    get,
    path = "/v1/enclave/attestation",
    responses((status = 200, body = AttestationResponse), (status = 503, body = keystead_types::ErrorBody))
)]
pub async fn attestation(State(state): State<SharedState>) -> ApiResult<Json<AttestationResponse>> {
    let reply = state
        .enclave
        .call(Request::Attestation { nonce: None })
        .await?;
    match reply.result? {
        Response::Attestation(a) => {
            let b64 = base64::engine::general_purpose::STANDARD;
            Ok(Json(AttestationResponse {
                format: a.format,
                document: b64.encode(&a.document),
                public_key: b64.encode(a.public_key),
                suite: keystead_envelope::SUITE.into(),
            }))
        }
        _ => Err(ApiError::new(
            ErrorCode::Internal,
            "unexpected enclave reply",
        )),
    }
}
