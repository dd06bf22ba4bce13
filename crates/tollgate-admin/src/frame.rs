//! The frame every request of every surface runs in, written as one tower service around the
//! whole router: its request id (set or echoed), that id in scope, NUL paths refused, errors from
//! lower layers put in the envelope, and a panic turned into a bare 500.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::task::futures::TaskLocalFuture;
use tollgate_core::CoreError;

use crate::error::{self, ApiError, REQUEST_ID};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps a service (the finished router) in the request frame. A plain service around the whole
/// router, not a `Router::layer`: it is not boxed around every route, so a request pays no clone
/// and drop of a boxed service for it, and its future is a named type, not a box (decision 126).
#[derive(Debug, Clone)]
pub struct Frame<S> {
    inner: S,
}

impl<S> Frame<S> {
    pub fn new(inner: S) -> Frame<S> {
        Frame { inner }
    }
}

impl<S, B> tower::Service<Request<B>> for Frame<S>
where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TaskLocalFuture<String, FrameFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    /// Sets the request id (the caller's `x-request-id`, or a new UUID) and hands the request on,
    /// unless its path or query holds an encoded NUL character (no store can hold one: Postgres
    /// refuses it). Whatever runs below runs with the id in `REQUEST_ID`.
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = if let Some(given) = request.headers().get(&X_REQUEST_ID) {
            given.clone()
        } else {
            let made = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or(HeaderValue::from_static("-"));
            request.headers_mut().insert(X_REQUEST_ID, made.clone());
            made
        };
        let scoped = id.to_str().unwrap_or("-").to_owned();
        let uri = request.uri();
        let has_nul = |part: &str| part.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"));
        let (future, early) = if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
            (None, Early::Refused)
        } else {
            // A service may panic while it makes its future, not only while that runs.
            match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
                Ok(future) => (Some(future), Early::Panicked),
                Err(_) => (None, Early::Panicked),
            }
        };
        REQUEST_ID.scope(scoped, FrameFuture { future, early, id: Some(id) })
    }
}

/// What answers a request that has no inner future to wait for.
#[derive(Debug, Clone, Copy)]
enum Early {
    Refused,
    Panicked,
}

pin_project_lite::pin_project! {
    /// The answer of a framed request, produced with its id in scope and carrying the id back.
    pub struct FrameFuture<F> {
        #[pin]
        future: Option<F>,
        // Answers when `future` is absent, or when it panics (always `Panicked` then).
        early: Early,
        id: Option<HeaderValue>,
    }
}

impl<F> std::fmt::Debug for FrameFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameFuture").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<F> Future for FrameFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let early = match this.future.as_mut().as_pin_mut() {
            None => *this.early,
            Some(future) => match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(Ok(response))) => {
                    this.future.set(None);
                    return Poll::Ready(Ok(echo(envelope_for_plain_errors(response), this.id.take())));
                }
                Err(_) => {
                    // Never polled again: a future that panicked may be in any state.
                    this.future.set(None);
                    Early::Panicked
                }
            },
        };
        let response = match early {
            Early::Refused => ApiError::bad_request("the path and query must not contain NUL characters").into_response(),
            Early::Panicked => ApiError::from(CoreError::Internal("handler panicked".into())).into_response(),
        };
        Poll::Ready(Ok(echo(response, this.id.take())))
    }
}

/// The answer with the request's id on it.
fn echo(mut response: Response, id: Option<HeaderValue>) -> Response {
    if let Some(id) = id {
        response.headers_mut().insert(X_REQUEST_ID, id);
    }
    response
}

/// Wraps error answers produced outside our handlers (wrong method, body over the limit, …)
/// in the envelope, so every error a client sees has the same shape.
fn envelope_for_plain_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == HeaderValue::from_static("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(status, "method_not_allowed", "method not allowed on this route"),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "payload_too_large", error::too_large_message()),
        s if s.is_server_error() => ApiError::from(CoreError::Internal(format!("plain {s} from a lower layer"))),
        s => ApiError::new(s, "invalid_request", s.canonical_reason().unwrap_or("request refused")),
    };
    let mut fixed = error.into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        fixed.headers_mut().insert(header::ALLOW, allow.clone());
    }
    fixed
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn framed() -> Frame<Router> {
        async fn boom() -> &'static str {
            panic!("a handler's bug")
        }
        Frame::new(Router::new().route("/boom", get(boom)).route("/fine", get(|| async { "ok" })))
    }

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_bare_500_envelope_naming_the_request_id() {
        let request = Request::get("/boom").header("x-request-id", "panic-7").body(Body::empty()).unwrap_or_default();
        let response = framed().oneshot(request).await.unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()), Some("panic-7"));
        let body = body_json(response).await;
        assert_eq!(body["error"]["message"], "internal error");
        assert_eq!(body["event_id"], "panic-7");
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_one_and_a_nul_path_is_refused() {
        let response =
            framed().oneshot(Request::get("/fine").body(Body::empty()).unwrap_or_default()).await.unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(&X_REQUEST_ID).is_some_and(|v| v.len() == 36), "a new UUID");
        let response =
            framed().oneshot(Request::get("/fine%00").body(Body::empty()).unwrap_or_default()).await.unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(&X_REQUEST_ID).is_some());
    }
}
