//! The data plane's error type and its mappings: to the envelope, with the governance `type`
//! strings at the top level (clients branch on them), or to Anthropic's native error shape on the
//! Anthropic-format routes; `Retry-After` on rate limits either way.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The kind of call an error belongs to, as `extra_fields.request_type` names it (a byte, so the
/// error stays small on the hot path's `Result`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    ChatCompletion,
    Embedding,
    ListModels,
}

impl RequestType {
    fn as_str(self) -> &'static str {
        match self {
            RequestType::ChatCompletion => "chat_completion",
            RequestType::Embedding => "embedding",
            RequestType::ListModels => "list_models",
        }
    }
}

/// An inference request refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: StatusCode,
    /// `virtual_key_required`, `budget_exceeded`, `upstream_error`, …
    pub kind: &'static str,
    pub message: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Seconds until a refused rate-limit window resets.
    pub retry_after: Option<i64>,
    /// The kind of call, for `extra_fields.request_type`: a chat completion unless the route
    /// says otherwise (`for_request`).
    pub request_type: RequestType,
}

impl GatewayError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            provider: None,
            model: None,
            retry_after: None,
            request_type: RequestType::ChatCompletion,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// The error of a call of another kind than a chat completion.
    pub fn for_request(mut self, request_type: RequestType) -> Self {
        self.request_type = request_type;
        self
    }

    pub fn for_model(mut self, provider: &str, model: &str) -> Self {
        self.provider = Some(provider.to_owned());
        self.model = Some(model.to_owned());
        self
    }
}

impl GatewayError {
    /// The error in Anthropic's shape, `{"type":"error","error":{"type","message"}}`, with the
    /// same status; `error.type` is the governance type (`budget_exceeded`, …), a malformed
    /// request is Anthropic's own `invalid_request_error`.
    pub fn into_anthropic_response(self) -> Response {
        let kind = if self.kind == "invalid_request" { "invalid_request_error" } else { self.kind };
        let body = json!({"type": "error", "error": {"type": kind, "message": self.message}});
        self.respond(body)
    }

    fn respond(self, body: Value) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(kind = self.kind, status = self.status.as_u16(), message = %self.message, "inference request failed");
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut extra = json!({"request_type": self.request_type.as_str()});
        if let (Some(provider), Some(model)) = (&self.provider, &self.model) {
            extra["provider"] = json!(provider);
            extra["model_requested"] = json!(model);
        }
        let body = json!({
            "type": self.kind,
            "is_bifrost_error": false,
            "status_code": self.status.as_u16(),
            "error": {"type": self.kind, "message": self.message},
            "extra_fields": extra,
        });
        self.respond(body)
    }
}
