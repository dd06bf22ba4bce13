//! Calls to upstreams (OpenAI-compatible or Anthropic) with retries on errors worth retrying, and
//! the way an answer travels back: plain or streamed, in the client's format, its usage tapped so
//! the reservation settles exactly once — with the reported usage, or what a stream delivered.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{StreamExt, stream};
use serde_json::Value;
use tokio_util::task::TaskTracker;

use tollgate_core::providers::ProviderKind;
use tollgate_governance::Held;

use crate::adapters::{Adapted, Adapter, Reframe, Seen, Usage, bridge};
use crate::engine::Gateway;
use crate::error::{Failure, GatewayError};
use crate::prompt::{Prompt, count_tokens};
use crate::providers::Target;

/// Upstream statuses that a retry may cure.
fn retryable(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(attempt.min(6)))
}

/// POSTs the JSON `body` to `path` under the provider's base URL, authenticated as its kind wants,
/// with the provider's extra headers and the `forwarded` client headers. Connection failures and
/// retryable statuses are retried up to the provider's `max_retries`; the last answer is returned
/// as is. With a `meter` (a governed call) every retry first takes one more request on the
/// request limits, and none is made once they are full. A stream has no overall timeout (only
/// the connection must open in time).
pub async fn post(
    http: &reqwest::Client,
    target: &Target,
    path: &str,
    body: &Bytes,
    stream: bool,
    forwarded: &[(HeaderName, HeaderValue)],
    meter: Option<&Held>,
) -> Result<reqwest::Response, CallFailed> {
    let spec = &target.spec;
    let url = spec.url(path).ok_or_else(|| {
        GatewayError::new(Failure::UpstreamUnavailable, format!("provider '{}' has a base URL that does not parse", spec.name))
    })?;
    let adapter = spec.kind.adapter();
    // A picked key is made a header per request; the provider's own key once, and kept.
    let auth = match (&target.key, &spec.api_key) {
        (Some(key), _) => Some(adapter.auth_header(key)),
        (None, Some(key)) => Some(spec.auth_header.get_or_init(|| adapter.auth_header(key)).clone()),
        (None, None) => None,
    };
    let auth = match auth {
        Some(None) => {
            return Err(GatewayError::new(
                Failure::UpstreamUnavailable,
                format!("provider '{}' has an API key that cannot be sent in a header", spec.name),
            )
            .into());
        }
        Some(Some(header)) => Some(header),
        None => None,
    };
    let mut attempt = 0;
    loop {
        // Built in place rather than through the by-value builder, which moves the whole request
        // once per header.
        let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
        *request.body_mut() = Some(body.clone().into());
        if !stream {
            *request.timeout_mut() = Some(spec.timeout);
        }
        let headers = request.headers_mut();
        headers.append(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &spec.extra_headers {
            headers.append(name, value.clone());
        }
        if let Some((name, value)) = &auth {
            headers.append(name, value.clone());
        }
        for (name, value) in adapter.fixed_headers() {
            headers.append(name, value.clone());
        }
        for (name, value) in forwarded {
            headers.append(name, value.clone());
        }
        if let Some(held) = meter {
            held.mark_sent();
        }
        let span = attempt_span(&spec.name, meter, attempt);
        let result = http.execute(request).await;
        if let (Some(held), Ok(_)) = (meter, &result) {
            held.mark_answered();
        }
        if !span.is_disabled() {
            attempt_ended(&span, &result);
        }
        drop(span);
        if let Ok(response) = &result
            && response.status().is_redirection()
        {
            // Never followed: the redirect's host would get the key and the extra headers.
            tracing::warn!(provider = %spec.name, status = %response.status(), "upstream answered with a redirect; not followed");
            let message = format!("provider '{}' answered with a redirect, which is not followed", spec.name);
            return Err(GatewayError::new(Failure::UpstreamRedirect, message).into());
        }
        let worth_retrying = match &result {
            Ok(response) => retryable(response.status()),
            Err(e) => (e.is_connect() && !certificate_refused(e)) || e.is_timeout(),
        };
        let may_retry = worth_retrying && attempt < spec.max_retries;
        if !may_retry || !retry_counted(meter).await {
            return result.map_err(|e| {
                tracing::warn!(provider = %spec.name, error = %e, "upstream unreachable");
                let name = &spec.name;
                if e.is_timeout() {
                    let error = GatewayError::new(Failure::UpstreamTimeout, format!("provider '{name}' did not answer in time"));
                    CallFailed { error, reached: true }
                } else if certificate_refused(&e) {
                    let message = format!("provider '{name}' presented a TLS certificate that is not trusted");
                    GatewayError::new(Failure::UpstreamUnavailable, message).into()
                } else if e.is_connect() {
                    GatewayError::new(Failure::UpstreamUnavailable, format!("provider '{name}' could not be reached")).into()
                } else {
                    let error = GatewayError::new(Failure::UpstreamError, format!("provider '{name}' broke off the call"));
                    CallFailed { error, reached: true }
                }
            });
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

/// The call never left because the server's certificate was refused in the TLS handshake (no
/// trusted authority signed it, it names another host, or it has expired): trying again cannot
/// help. rustls's error sits inside I/O errors, whose `source` skips what they wrap, so those
/// are opened rather than followed.
fn certificate_refused(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return matches!(tls, rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented);
        }
        next = match error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(wrapped) => Some(wrapped),
            None => error.source(),
        };
    }
    false
}

/// The span of one try upstream (each retry has its own), a child of the request's: provider,
/// model (of a governed call), which try, and how it ended. Neither the key nor the body.
fn attempt_span(provider: &str, meter: Option<&Held>, attempt: u32) -> tracing::Span {
    let span = tracing::debug_span!(
        "upstream.call",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        tollgate.provider = provider,
        tollgate.model = tracing::field::Empty,
        tollgate.attempt = attempt,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if let Some(held) = meter
        && !span.is_disabled()
    {
        span.record("tollgate.model", held.model());
    }
    span
}

/// Notes an upstream try's status, or why it got none.
fn attempt_ended(span: &tracing::Span, result: &Result<reqwest::Response, reqwest::Error>) {
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            span.record("http.response.status_code", status);
            if status >= 400 {
                span.record("otel.status_code", "error");
                span.record("error.type", tracing::field::display(status));
            }
        }
        Err(e) => {
            span.record("otel.status_code", "error");
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            span.record("error.type", kind);
        }
    }
}

/// A retry of a governed call takes one more request first; an ungoverned one always may.
async fn retry_counted(meter: Option<&Held>) -> bool {
    match meter {
        Some(held) => held.count_retry().await,
        None => true,
    }
}

/// A call that ended without an answer to pass on, and whether it may have reached the provider
/// (a timeout, a broken answer), which decides what it is charged.
#[derive(Debug)]
pub(crate) struct CallFailed {
    pub error: GatewayError,
    pub reached: bool,
}

impl From<GatewayError> for CallFailed {
    /// A failure before the provider could have served anything: refused, unreachable, redirected.
    fn from(error: GatewayError) -> Self {
        CallFailed { error, reached: false }
    }
}

impl From<CallFailed> for GatewayError {
    fn from(failed: CallFailed) -> Self {
        failed.error
    }
}

impl CallFailed {
    /// Settles the governed call it ended: a request that may have reached the provider is
    /// charged its whole reservation, any other one request only. Returns the client's error.
    pub(crate) fn settle(self, held: Held) -> GatewayError {
        if self.reached {
            held.unread(self.error.status().as_u16());
        } else {
            held.upstream_failed(self.error.status().as_u16());
        }
        self.error
    }
}

/// One governed upstream call and the way its answer travels back to the client.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub target: Target,
    pub held: Held,
    /// The request, already in the upstream's format (JSON).
    pub body: Bytes,
    /// The format the client speaks.
    pub client: ProviderKind,
    pub stream: bool,
    /// An OpenAI client asked for the closing usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The prompt and the output tokens allowed: charged when a successful answer reports no usage.
    pub estimate: (Prompt, u64),
    /// Client headers passed on to the upstream.
    pub forwarded: Vec<(HeaderName, HeaderValue)>,
}

impl Exchange {
    /// Calls the upstream and answers the client; the reservation is settled on every path.
    /// A client that hangs up does not cancel a plain call: it goes on by itself, so the
    /// provider's answer is still read and billed as it reports (a stream instead ends with the
    /// client and is billed for what it delivered).
    /// The answer carries the rate-limit headers of the room its reservation left.
    pub async fn run(self, gw: &Gateway) -> Result<Response, GatewayError> {
        let room = self.held.room();
        let answer = if self.stream {
            self.call(&gw.0.http).await
        } else {
            let http = gw.0.http.clone();
            Detachable::new(Box::pin(async move { self.call(&http).await }), gw.0.inflight.clone()).await
        };
        answer.map(|response| crate::limits::with(response, room))
    }

    async fn call(self, http: &reqwest::Client) -> Result<Response, GatewayError> {
        let Exchange { target, mut held, body, client, stream, include_usage, estimate, forwarded } = self;
        let spec = &target.spec;
        let adapter = spec.kind.adapter();
        let response = match post(http, &target, adapter.chat_path(), &body, stream, &forwarded, Some(&held)).await {
            Ok(response) => response,
            Err(failed) => return Err(failed.settle(held)),
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes = response.bytes().await.unwrap_or_default();
            let bytes = if spec.kind == client { bytes } else { Bytes::from(bridge::error_body(client, status, &bytes).to_string()) };
            held.keep_answer(&bytes);
            held.upstream_failed(status);
            return Ok(json_response(status, bytes));
        }
        if stream {
            let reframe = bridge::reframe(spec.kind, client, include_usage);
            return Ok(relay(response, Tap::new(held, adapter, estimate.0), reframe));
        }
        let Ok(bytes) = response.bytes().await else {
            held.unread(502);
            return Err(GatewayError::new(Failure::UpstreamError, "the provider's answer broke off"));
        };
        // A successful answer without usage data is charged at the estimate: never less than billed.
        let usage = adapter.usage_in(&bytes).unwrap_or_else(|| Usage::plain(estimate.0.tokens(), estimate.1));
        // The client's dialect: the answer as is, else translated (`None`: not JSON to translate).
        let translated = (spec.kind != client).then(|| {
            let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            parsed.is_object().then(|| Bytes::from(bridge::answer(spec.kind, client, &parsed).to_string()))
        });
        held.keep_answer(translated.as_ref().and_then(Option::as_deref).unwrap_or(&bytes));
        held.answered(usage, status);
        match translated {
            None => Ok(json_response(status, bytes)),
            Some(Some(answer)) => Ok(json_response(status, answer)),
            Some(None) => Err(GatewayError::new(Failure::UpstreamError, "the provider's answer is not JSON")),
        }
    }
}

/// A plain call's future.
type Call = Pin<Box<dyn Future<Output = Result<Response, GatewayError>> + Send>>;

/// A plain call polled where the request is served, and moved to a task of its own only if the
/// request is dropped first (its client hung up), so it still finishes and bills. Spawning every
/// call instead cost about 2% more instructions per request.
struct Detachable {
    call: Option<Call>,
    inflight: TaskTracker,
}

impl Detachable {
    fn new(call: Call, inflight: TaskTracker) -> Detachable {
        Detachable { call: Some(call), inflight }
    }
}

impl Future for Detachable {
    type Output = Result<Response, GatewayError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(call) = self.call.as_mut() else {
            return Poll::Ready(Err(GatewayError::new(Failure::Internal, "internal error")));
        };
        let answer = ready!(call.as_mut().poll(cx));
        self.call = None;
        Poll::Ready(answer)
    }
}

impl Drop for Detachable {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else { return };
        // Outside a runtime (the process is ending) the call is dropped, and its guard charges
        // the reservation.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.inflight.spawn(async move {
                let _ = call.await;
            });
        }
    }
}

pub(crate) fn json_response(status: u16, bytes: Bytes) -> Response {
    let mut response = Response::new(Body::from(bytes));
    // Sized for the rate-limit headers and the middleware's from the start: a map grown later
    // rehashes what it holds (this runs per request).
    *response.headers_mut() = HeaderMap::with_capacity(12);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Watches a stream go by in the upstream's format (its adapter reads each event): the usage it
/// reports, else the text delivered. Dropped when the stream ends or the client leaves, it
/// settles the reservation.
#[derive(Debug)]
struct Tap {
    held: Held,
    upstream: &'static dyn Adapter,
    seen: Seen,
    prompt: Prompt,
}

/// Streams being relayed now, in this process (a metric, read when scraped).
static STREAMS_OPEN: AtomicUsize = AtomicUsize::new(0);

/// How many streamed answers are being relayed now.
pub fn streams_open() -> usize {
    STREAMS_OPEN.load(Ordering::Relaxed)
}

impl Tap {
    fn new(held: Held, upstream: &'static dyn Adapter, prompt: Prompt) -> Tap {
        STREAMS_OPEN.fetch_add(1, Ordering::Relaxed);
        Tap { held, upstream, seen: Seen::default(), prompt }
    }

    fn observe(&mut self, data: &str) {
        self.upstream.observe(data, &mut self.seen);
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        STREAMS_OPEN.fetch_sub(1, Ordering::Relaxed);
        // A stream's answer is kept as the text it delivered (tool-call arguments included).
        self.held.keep_answer(self.seen.text.as_bytes());
        let seen = &self.seen;
        let usage = Usage {
            input: seen.input.unwrap_or_else(|| self.prompt.tokens()),
            output: seen.output.unwrap_or_else(|| count_tokens(&seen.text)),
            ..seen.cache
        };
        self.held.settle_stream(usage, if seen.finished { 200 } else { 499 });
    }
}

/// Relays an upstream stream to the client, event by event, through the tap and the reframer.
fn relay(response: reqwest::Response, mut tap: Tap, mut reframe: Box<dyn Reframe>) -> Response {
    let events = response.bytes_stream().eventsource().flat_map(move |event| {
        let out: Vec<Result<Event, std::io::Error>> = match event {
            Ok(event) => {
                tap.observe(&event.data);
                reframe
                    .reframe(&event.event, &event.data)
                    .into_iter()
                    .map(|sse| {
                        let built = Event::default().data(sse.data);
                        Ok(match sse.event {
                            Some(name) => built.event(name),
                            None => built,
                        })
                    })
                    .collect()
            }
            Err(e) => vec![Err(std::io::Error::other(e.to_string()))],
        };
        stream::iter(out)
    });
    Sse::new(events).into_response()
}
