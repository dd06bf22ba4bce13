//! The one span every request runs in, made by the stack's `Trace` layer: the method at once, the
//! matched route once routing found it, the status and request id when the answer leaves. With
//! traces exported it is the trace's root (OpenTelemetry's server span), continuing a caller's W3C
//! `traceparent`; otherwise it is the debug-level span the log has always had, and disabled it
//! costs nothing. It never holds the raw path or query, which may carry ids or keys.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Response};
use axum::middleware::Next;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use tower_http::trace::{DefaultOnResponse, MakeSpan, OnResponse};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes the request's span.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> Span {
        let method = request.method();
        let span = tracing::debug_span!(
            "request",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            http.route = Empty,
            http.response.status_code = Empty,
            tollgate.request_id = Empty,
        );
        if !span.is_disabled() {
            // A caller's `traceparent` makes this span a child of the caller's; without one (or
            // with traces off, where the propagator reads nothing) it starts a trace.
            let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
            let _ = span.set_parent(parent);
        }
        span
    }
}

/// Notes the answer on the request's span, then logs it as tower-http always did.
#[derive(Debug, Clone, Default)]
pub struct RequestDone {
    log: DefaultOnResponse,
}

impl<B> OnResponse<B> for RequestDone {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        if !span.is_disabled() {
            let status = response.status();
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "error");
            }
            // The frame copied the request's id onto every answer.
            if let Some(id) = response.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()) {
                span.record("tollgate.request_id", id);
            }
        }
        self.log.on_response(response, latency, span);
    }
}

/// Names the request's span after the route that matched (`/api/governance/virtual-keys/{vk_id}`,
/// never the path it was asked with). A route layer, so it runs after routing: added only when
/// spans are exported (a `Router::route_layer` is boxed around every route).
pub async fn record_route(request: Request, next: Next) -> axum::response::Response {
    if let Some(route) = request.extensions().get::<MatchedPath>() {
        let span = Span::current();
        span.record("http.route", route.as_str());
        // The span was started when entered: its name is changed on the exported span itself
        // (an `otel.name` recorded now would be ignored).
        span.context().span().update_name(format!("{} {}", request.method(), route.as_str()));
    }
    next.run(request).await
}
