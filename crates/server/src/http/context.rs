//! Every request's context, in one layer: its id (the caller's `x-request-id` when it sent
//! one, else a fresh UUID v4), the `request` span its work is logged in, its count and
//! duration in the metrics, and the id on the answer. This was four layers (tower-http's
//! set and propagate request id and trace, and a metrics middleware), each wrapping the
//! request's future, one boxing it and cloning the routes behind it, on every call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Span;

use crate::metrics::Metrics;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct RequestContextLayer {
    metrics: Metrics,
}

impl RequestContextLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestContext<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B> Service<Request<B>> for RequestContext<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ContextFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = match req.headers().get(&REQUEST_ID).filter(|id| usable_id(id)) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
                id
            }
        };
        // The id (checked by `usable_id`, or ours) and the method are plain tokens, so
        // they are written as they are, not through `Debug`'s escaping a character at a
        // time; the path, the caller's, is escaped.
        let span = tracing::info_span!(
            "request",
            id = %id.to_str().unwrap_or("-"),
            method = %req.method().as_str(),
            path = req.uri().path(),
        );
        // The matched route, never the raw path: ids stay out of label values.
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string());
        let method = req.method().clone();
        let started = Instant::now();
        let inner = span.in_scope(|| self.inner.call(req));
        ContextFuture {
            inner,
            span,
            answer: Some(Answer {
                id,
                method,
                route,
                started,
                metrics: self.metrics.clone(),
            }),
        }
    }
}

/// The longest caller's id kept.
const MAX_CALLER_ID: usize = 128;

/// Whether a caller's id may stand for the request: it goes into every log line of the
/// request, so only a short token of letters, digits and `-_.:` is kept (anything else
/// is replaced by a fresh id, not logged).
fn usable_id(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_CALLER_ID
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A fresh id: a UUID v4, from `uuid`'s user-space CSPRNG (no system call per request).
fn new_request_id() -> HeaderValue {
    let mut text = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a header value")
}

/// What is recorded once the answer is ready.
struct Answer {
    id: HeaderValue,
    method: Method,
    route: Option<String>,
    started: Instant,
    metrics: Metrics,
}

pin_project_lite::pin_project! {
    pub struct ContextFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        answer: Option<Answer>,
    }
}

impl<F, E> Future for ContextFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(answer)) = (&mut result, this.answer.take()) {
            let elapsed = answer.started.elapsed();
            answer.metrics.record(
                &answer.method,
                answer.route.unwrap_or_else(|| "unmatched".into()),
                response.status().as_u16(),
                elapsed,
            );
            tracing::debug!(status = response.status().as_u16(), ?elapsed, "answered");
            response.headers_mut().insert(REQUEST_ID.clone(), answer.id);
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(metrics: Metrics) -> Router {
        Router::new()
            .route("/things/{id}", get(|| async { "ok" }))
            .layer(RequestContextLayer::new(metrics))
    }

    async fn answer_id(metrics: &Metrics, id: Option<&str>) -> String {
        let mut request = Request::get("/things/7");
        if let Some(id) = id {
            request = request.header(&REQUEST_ID, id);
        }
        let response = app(metrics.clone())
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
        response.headers()[&REQUEST_ID]
            .to_str()
            .expect("text")
            .to_string()
    }

    #[tokio::test]
    async fn keeps_the_callers_id_or_makes_a_fresh_one_and_counts_by_route() {
        let metrics = Metrics::default();
        assert_eq!(
            answer_id(&metrics, Some("trace-me-42")).await,
            "trace-me-42"
        );
        let (a, b) = (
            answer_id(&metrics, None).await,
            answer_id(&metrics, None).await,
        );
        assert_ne!(a, b);
        for id in [&a, &b] {
            let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(uuid.get_version_num(), 4);
        }
        // An id that would not be safe to log is replaced, never echoed.
        for unsafe_id in [
            "a b",
            "x".repeat(MAX_CALLER_ID + 1).as_str(),
            "idé",
            "{\"json\":1}",
        ] {
            let id = answer_id(&metrics, Some(unsafe_id)).await;
            assert_ne!(id, unsafe_id);
            assert_eq!(
                uuid::Uuid::parse_str(&id)
                    .expect("a UUID")
                    .get_version_num(),
                4
            );
        }
        let rendered = metrics.render();
        assert!(
            rendered.contains(
                "keystead_http_requests_total{method=\"GET\",route=\"/things/{id}\",status=\"200\"} 7"
            ),
            "{rendered}"
        );
    }
}
