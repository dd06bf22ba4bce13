//! Calls to OpenAI-compatible upstreams, with retries on errors that are worth retrying.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use crate::engine::ProviderSpec;
use crate::error::GatewayError;

/// Upstream statuses that a retry may cure.
fn retryable(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(attempt.min(6)))
}

/// POSTs `body` to `path` under the provider's base URL. Connection failures and retryable
/// statuses are retried up to the provider's `max_retries`; the last answer is returned as is.
/// A stream has no overall timeout (only the connection must open in time).
pub async fn post(
    http: &reqwest::Client,
    spec: &ProviderSpec,
    path: &str,
    body: &Value,
    stream: bool,
) -> Result<reqwest::Response, GatewayError> {
    let url = format!("{}{path}", spec.base_url.trim_end_matches('/'));
    let mut attempt = 0;
    loop {
        let mut request = http.post(&url).json(body);
        if !stream {
            request = request.timeout(spec.timeout);
        }
        if let Some(key) = &spec.api_key {
            request = request.bearer_auth(key.expose());
        }
        let last = attempt >= spec.max_retries;
        match request.send().await {
            Ok(response) if retryable(response.status()) && !last => {}
            Ok(response) => return Ok(response),
            Err(e) if !last && (e.is_connect() || e.is_timeout()) => {}
            Err(e) => {
                tracing::warn!(provider = %spec.name, error = %e, "upstream unreachable");
                let (status, kind) = if e.is_timeout() {
                    (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
                } else {
                    (StatusCode::BAD_GATEWAY, "upstream_unavailable")
                };
                return Err(GatewayError::new(status, kind, format!("provider '{}' could not be reached", spec.name)));
            }
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}
