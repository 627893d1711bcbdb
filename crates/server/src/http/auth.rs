//! `/v1/auth/*` and `/v1/me`: thin handlers over [`crate::auth`].

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::app_check::CurrentApp;
use super::{ApiResult, SharedState};
use crate::auth::{Issued, now};

/// `POST /v1/auth/id-token` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdTokenLogin {
    /// The app's name for the OpenID provider (see `GET /v1/app`).
    pub provider: String,
    /// The ID token the provider issued to the app's client.
    pub id_token: String,
}

/// `POST /v1/auth/refresh` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A user as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub id: String,
    pub email: Option<String>,
}

/// A logged-in session's tokens.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// Send as `Authorization: Bearer ...`; valid for this app only.
    pub access_token: String,
    /// Single use: `POST /v1/auth/refresh` returns a new one.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: UserInfo,
    /// `pin_required`, `register_required` or `complete`.
    pub status: String,
}

/// `GET /v1/me`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub user: UserInfo,
    /// `pin_required`, `register_required` or `complete`.
    pub status: String,
    pub wallet_id: Option<String>,
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    body.map(|Json(b)| b)
        .map_err(super::extract::json_rejection)
}

fn session_response(issued: Issued) -> Json<SessionResponse> {
    Json(SessionResponse {
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        expires_in: issued.expires_in,
        user: UserInfo {
            id: issued.user.id,
            email: issued.user.email,
        },
        status: issued.status.as_str().to_string(),
    })
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

#[utoipa::path(
    post,
    path = "/v1/auth/id-token",
    params(("X-App-Key" = String, Header, description = "The app's key")),
    request_body = IdTokenLogin,
    responses(
        (status = 200, body = SessionResponse),
        (status = 400, body = keystead_types::ErrorBody),
        (status = 401, body = keystead_types::ErrorBody)
    )
)]
pub async fn id_token(
    State(state): State<SharedState>,
    Extension(CurrentApp(app)): Extension<CurrentApp>,
    req: Result<Json<IdTokenLogin>, JsonRejection>,
) -> ApiResult<Json<SessionResponse>> {
    let req = body(req)?;
    let mut rng = OsRng.unwrap_err();
    let issued = state
        .auth
        .login(
            &state.store,
            &app,
            &req.provider,
            &req.id_token,
            now(),
            &mut rng,
        )
        .await?;
    Ok(session_response(issued))
}

#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    params(("X-App-Key" = String, Header, description = "The app's key")),
    request_body = RefreshRequest,
    responses(
        (status = 200, body = SessionResponse),
        (status = 401, body = keystead_types::ErrorBody)
    )
)]
pub async fn refresh(
    State(state): State<SharedState>,
    Extension(CurrentApp(app)): Extension<CurrentApp>,
    req: Result<Json<RefreshRequest>, JsonRejection>,
) -> ApiResult<Json<SessionResponse>> {
    let req = body(req)?;
    let mut rng = OsRng.unwrap_err();
    let issued = state
        .auth
        .refresh(&state.store, &app, &req.refresh_token, now(), &mut rng)
        .await?;
    Ok(session_response(issued))
}

#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    params(
        ("X-App-Key" = String, Header, description = "The app's key"),
        ("Authorization" = String, Header, description = "Bearer access token")
    ),
    responses(
        (status = 204, description = "The session is revoked"),
        (status = 401, body = keystead_types::ErrorBody)
    )
)]
pub async fn logout(
    State(state): State<SharedState>,
    Extension(CurrentApp(app)): Extension<CurrentApp>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let now = now();
    let caller = state
        .auth
        .authenticate(&state.store, &app, authorization(&headers), now)
        .await?;
    state
        .store
        .revoke_session(
            &app.id,
            &caller.claims.session_id,
            i64::try_from(now).unwrap_or(i64::MAX),
        )
        .await?;
    state.auth.session_ended();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/me",
    params(
        ("X-App-Key" = String, Header, description = "The app's key"),
        ("Authorization" = String, Header, description = "Bearer access token")
    ),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, body = keystead_types::ErrorBody)
    )
)]
pub async fn me(
    State(state): State<SharedState>,
    Extension(CurrentApp(app)): Extension<CurrentApp>,
    headers: HeaderMap,
) -> ApiResult<Json<MeResponse>> {
    let caller = state
        .auth
        .authenticate(&state.store, &app, authorization(&headers), now())
        .await?;
    let user = state
        .store
        .get_user(&app.id, &caller.claims.user_id)
        .await?;
    let wallet = state.store.wallet_for_user(&app.id, &user.id).await?;
    let status = keystead_identity::user_status(wallet.is_some(), false);
    Ok(Json(MeResponse {
        user: UserInfo {
            id: user.id,
            email: user.email,
        },
        status: status.as_str().to_string(),
        wallet_id: wallet.map(|w| w.id),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/auth/jwks.json",
    params(("X-App-Key" = String, Header, description = "The app's key")),
    responses((status = 200, description = "The public keys access tokens are signed with"))
)]
pub async fn jwks(State(state): State<SharedState>) -> Json<Value> {
    Json(state.auth.signer.jwks())
}
