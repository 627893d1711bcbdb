//! The widget (`widget/dist`, built by the scripts) served under `/widget/`.
//!
//! Static files only, with strict headers: a CSP without `unsafe-inline`, and
//! `frame-ancestors` naming this server's origin plus, when the URL carries `appKey`, the
//! app's registered origins (the SDK mounts `/widget/?appKey=...&parentOrigin=...`). An
//! unknown or absent key leaves the server's own origin only: never `*`.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use keystead_identity::hash_token;
use tower_http::services::ServeDir;

use super::SharedState;

/// `widget_dir` when configured; else `widget/dist` under the current directory when it
/// exists; else `widget` beside the `keystead` binary.
pub fn resolve_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    let local = PathBuf::from("widget/dist");
    if local.is_dir() {
        return local;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("widget")))
        .unwrap_or(local)
}

/// `/widget/*` from `dir`, with the headers above.
pub fn routes(state: SharedState, dir: PathBuf) -> Router {
    if !dir.join("index.html").is_file() {
        tracing::warn!(dir = %dir.display(), "no widget build found; /widget/ answers 404 (scripts/run builds it)");
    }
    Router::new()
        .nest_service(
            "/widget",
            ServeDir::new(dir).append_index_html_on_directories(true),
        )
        .layer(axum::middleware::from_fn_with_state(state, headers))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Only characters an origin can hold, so a stored value can never add a directive.
fn safe_source(origin: &str) -> bool {
    !origin.is_empty()
        && origin
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.' | '-' | '[' | ']'))
}

async fn frame_ancestors(state: &SharedState, query: Option<&str>) -> String {
    let mut sources = vec![state.public_origin.clone()];
    if let Some(key) = query.and_then(|q| query_param(q, "appKey")) {
        let key = percent_decode(key);
        if let Ok(app) = state.store.app_for_key(&hash_token(&key)).await
            && let Ok(origins) = state.store.list_app_origins(&app.id).await
        {
            sources.extend(origins.into_iter().filter(|o| safe_source(o)));
        }
    }
    sources.dedup();
    sources.join(" ")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                    Some(Ok(b)) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn headers(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/widget" {
        let to = match req.uri().query() {
            Some(q) => format!("/widget/?{q}"),
            None => "/widget/".to_string(),
        };
        return Redirect::permanent(&to).into_response();
    }
    let ancestors = frame_ancestors(&state, req.uri().query()).await;
    let mut response = next.run(req).await;
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'; \
         frame-ancestors {ancestors}"
    );
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    } else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_decoding() {
        assert_eq!(query_param("a=1&appKey=k%2Bx", "appKey"), Some("k%2Bx"));
        assert_eq!(percent_decode("k%2Bx%"), "k+x%");
        assert!(safe_source("http://127.0.0.1:5173"));
        assert!(!safe_source("http://a; script-src *"));
    }

    #[test]
    fn configured_dir_wins() {
        assert_eq!(resolve_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
    }
}
