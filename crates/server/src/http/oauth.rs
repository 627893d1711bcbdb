//! Login in a popup through the server: the OAuth 2 authorization-code flow with PKCE.
//!
//! `GET /v1/auth/oauth/start?appKey&provider&origin` sends the browser to the provider;
//! the provider sends it back to `GET /v1/auth/oauth/callback?code&state`, where the
//! server exchanges the code, checks the ID token (signature, issuer, audience, expiry,
//! nonce), logs the user in and answers a page that hands the session to the window that
//! opened the popup, at `origin` only (the app's registered origin, or this server's own
//! for its widget). The PKCE verifier never leaves the server; the code is single use.

use std::sync::LazyLock;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use keystead_identity::{CodeFlowError, PendingLogin, hash_token};
use keystead_store::{OAuthLogin, StoreError};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::{ApiError, ApiResult, SharedState};
use crate::admin::normalize_origin;
use crate::auth::{id_token_error, now, provider_config};
use keystead_types::ErrorCode;

/// How long a started login may take.
const LOGIN_TTL_SECS: i64 = 600;
pub const CALLBACK_PATH: &str = "/v1/auth/oauth/callback";

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct StartQuery {
    /// The app's key (a popup cannot send headers).
    pub app_key: String,
    /// The app's name for the OpenID provider.
    pub provider: String,
    /// The origin of the window that opened the popup; it receives the session.
    pub origin: String,
}

#[derive(Deserialize, IntoParams)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
}

fn redirect_uri(state: &SharedState) -> String {
    format!("{}{CALLBACK_PATH}", state.public_url)
}

#[utoipa::path(get, path = "/v1/auth/oauth/start", params(StartQuery),
    responses((status = 302, description = "To the provider's authorization endpoint"),
        (status = 401, body = keystead_types::ErrorBody), (status = 403, body = keystead_types::ErrorBody)))]
pub async fn start(
    State(state): State<SharedState>,
    Query(query): Query<StartQuery>,
) -> ApiResult<Response> {
    let app = match state.store.app_for_key(&hash_token(&query.app_key)).await {
        Ok(app) => app,
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(ErrorCode::Unauthenticated, "unknown app key"));
        }
        Err(e) => return Err(e.into()),
    };
    let origin =
        normalize_origin(&query.origin).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?;
    if origin != state.public_origin && !state.store.app_allows_origin(&app.id, &origin).await? {
        return Err(ApiError::new(
            ErrorCode::ForbiddenOrigin,
            "this origin is not registered for the app",
        ));
    }
    let provider = match state.store.get_app_provider(&app.id, &query.provider).await {
        Ok(p) => p,
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "the app has no login provider of that name",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let pending = PendingLogin::new(&mut OsRng.unwrap_err());
    let config = provider_config(&provider);
    let url = state
        .auth
        .verifier
        .authorization_url(&config, &redirect_uri(&state), &pending, now())
        .await
        .map_err(code_flow_error)?;
    let now = crate::auth::now_secs();
    state
        .store
        .put_oauth_login(
            &OAuthLogin {
                state: pending.state.clone(),
                app_id: app.id,
                provider: provider.name,
                code_verifier: pending.code_verifier.to_string(),
                nonce: pending.nonce.clone(),
                return_origin: origin,
                expires_at: now + LOGIN_TTL_SECS,
            },
            now,
        )
        .await?;
    let mut response = Redirect::to(&url).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn code_flow_error(e: CodeFlowError) -> ApiError {
    match e {
        CodeFlowError::IdToken(e) => id_token_error(e),
        CodeFlowError::NonceMismatch => ApiError::new(ErrorCode::Unauthenticated, e.to_string())
            .with_detail("reason", "nonce_mismatch"),
        CodeFlowError::Metadata(_) | CodeFlowError::Exchange(_) => {
            tracing::warn!(error = %e, "authorization-code login failed at the provider");
            ApiError::new(ErrorCode::Unauthenticated, e.to_string())
                .with_detail("reason", "provider_refused")
        }
    }
}

#[utoipa::path(get, path = "/v1/auth/oauth/callback", params(CallbackQuery),
    responses((status = 200, description = "A page that posts the session (or the error) to the opener, then closes")))]
pub async fn callback(
    State(state): State<SharedState>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let now = now();
    let Some(login_state) = query.state.as_deref() else {
        return result_page(None, &error_result("invalid_request", "no state"));
    };
    let login = match state.store.take_oauth_login(login_state, now as i64).await {
        Ok(login) => login,
        Err(StoreError::NotFound) => {
            return result_page(
                None,
                &error_result(
                    "unauthenticated",
                    "this login expired or was already used; start again",
                ),
            );
        }
        Err(e) => {
            let e = ApiError::from(e);
            return result_page(None, &error_result(e.code.as_str(), &e.message));
        }
    };
    let outcome = finish(&state, &login, &query, now).await;
    let result = match outcome {
        Ok(session) => json!({"ok": true, "session": session}),
        Err(e) => error_result(e.code.as_str(), &e.message),
    };
    result_page(Some(&login.return_origin), &result)
}

async fn finish(
    state: &SharedState,
    login: &OAuthLogin,
    query: &CallbackQuery,
    now: u64,
) -> Result<Value, ApiError> {
    if let Some(error) = &query.error {
        let shown: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            format!("the provider refused the login: {shown}"),
        ));
    }
    let code = query
        .code
        .as_deref()
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest, "no code"))?;
    let app = state.store.get_app(&login.app_id).await?;
    let provider = state
        .store
        .get_app_provider(&app.id, &login.provider)
        .await?;
    let config = provider_config(&provider);
    let pending = PendingLogin {
        state: login.state.clone(),
        code_verifier: login.code_verifier.clone().into(),
        nonce: login.nonce.clone(),
    };
    let claims = state
        .auth
        .verifier
        .exchange_code(&config, &redirect_uri(state), &pending, code, now)
        .await
        .map_err(code_flow_error)?;
    let mut rng = OsRng.unwrap_err();
    let issued = state
        .auth
        .login_with_claims(&state.store, &app, &provider.name, &claims, now, &mut rng)
        .await?;
    Ok(json!({
        "accessToken": issued.access_token,
        "refreshToken": issued.refresh_token,
        "expiresIn": issued.expires_in,
        "user": {"id": issued.user.id, "email": issued.user.email},
        "status": issued.status.as_str(),
        "appId": app.id,
        "provider": provider.name,
    }))
}

fn error_result(code: &str, message: &str) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message}})
}

/// The one script of the result page; allowed by its hash in the page's CSP.
const SCRIPT: &str = r#"
const data = JSON.parse(document.getElementById("result").textContent);
const message = Object.assign({ protocol: "keystead-oauth", version: 1 }, data.result);
if (data.origin && window.opener) {
  window.opener.postMessage(message, data.origin);
  // Closed a moment later, so the opener has the message before it sees the window go.
  setTimeout(() => window.close(), 200);
}
document.getElementById("status").textContent = data.result.ok
  ? "Signed in. You can close this window."
  : "Sign-in failed: " + data.result.error.message;
"#;

static SCRIPT_CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
});

/// The page the popup ends on. The result travels as JSON inside a non-executed script
/// element (`<` escaped, so it cannot close the element); only the hashed script runs,
/// and it posts to the stored origin alone.
fn result_page(origin: Option<&str>, result: &Value) -> Response {
    let data = json!({"origin": origin, "result": result})
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Keystead sign-in</title></head>\
         <body><p id=\"status\">Finishing sign-in…</p>\
         <script type=\"application/json\" id=\"result\">{data}</script>\
         <script>{SCRIPT}</script></body></html>"
    );
    let mut response = (StatusCode::OK, Html(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&SCRIPT_CSP) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
