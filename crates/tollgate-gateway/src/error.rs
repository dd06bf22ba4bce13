//! The inference surface's one error table: every refusal governance gives (`Denial`) and every
//! failure of the surface's own (`Failure`) maps here, once, to its status and `type`; an error is
//! rendered in the Bifrost envelope, with the `type` at the top level (clients branch on it), or in
//! Anthropic's native error shape on the Anthropic-format routes; `Retry-After` on rate limits.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tollgate_governance::{Denial, DenialKind};

/// The kind of call an error belongs to, as `extra_fields.request_type` names it (a byte, so the
/// error stays small on the hot path's `Result`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    ChatCompletion,
    Embedding,
    ListModels,
    Quota,
}

impl RequestType {
    fn as_str(self) -> &'static str {
        match self {
            RequestType::ChatCompletion => "chat_completion",
            RequestType::Embedding => "embedding",
            RequestType::ListModels => "list_models",
            RequestType::Quota => "quota",
        }
    }
}

/// The inference surface's own failures (governance's refusals are `DenialKind`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A malformed or unacceptable request.
    InvalidRequest,
    /// A body over the size limit.
    RequestTooLarge,
    /// The provider has no enabled key serving the model.
    NoProviderKey,
    /// A resource of the gateway's own (the tokenizer's workers) is not available.
    Unavailable,
    /// The provider answered badly or broke off.
    UpstreamError,
    /// The provider cannot be reached or called.
    UpstreamUnavailable,
    /// The provider did not answer in time.
    UpstreamTimeout,
    /// The provider answered with a redirect, which is never followed.
    UpstreamRedirect,
    /// A bug; the message says nothing more.
    Internal,
}

/// What an error is: a governance refusal or a failure of the surface's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Denied(DenialKind),
    Failed(Failure),
}

impl ErrorKind {
    /// The table: each kind's status and `type`.
    pub fn status_and_type(self) -> (StatusCode, &'static str) {
        match self {
            ErrorKind::Denied(kind) => match kind {
                DenialKind::KeyRequired => (StatusCode::UNAUTHORIZED, "virtual_key_required"),
                DenialKind::KeyNotFound => (StatusCode::UNAUTHORIZED, "virtual_key_not_found"),
                DenialKind::KeyInactive | DenialKind::KeyExpired => (StatusCode::FORBIDDEN, "virtual_key_blocked"),
                DenialKind::AccessBlocked => (StatusCode::FORBIDDEN, "access_blocked"),
                DenialKind::ProviderBlocked => (StatusCode::FORBIDDEN, "provider_blocked"),
                DenialKind::ModelBlocked => (StatusCode::FORBIDDEN, "model_blocked"),
                DenialKind::ModelUnpriced => (StatusCode::FORBIDDEN, "model_unpriced"),
                DenialKind::BudgetExceeded => (StatusCode::PAYMENT_REQUIRED, "budget_exceeded"),
                DenialKind::TokenLimited => (StatusCode::TOO_MANY_REQUESTS, "token_limited"),
                DenialKind::RequestLimited => (StatusCode::TOO_MANY_REQUESTS, "request_limited"),
                DenialKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
                DenialKind::CountersUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "counters_unavailable"),
            },
            ErrorKind::Failed(failure) => match failure {
                Failure::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
                Failure::RequestTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
                Failure::NoProviderKey => (StatusCode::SERVICE_UNAVAILABLE, "no_provider_key"),
                Failure::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                Failure::UpstreamError => (StatusCode::BAD_GATEWAY, "upstream_error"),
                Failure::UpstreamUnavailable => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
                Failure::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                Failure::UpstreamRedirect => (StatusCode::BAD_GATEWAY, "upstream_redirect"),
                Failure::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            },
        }
    }
}

/// An inference request refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Seconds until a refused rate-limit window resets.
    pub retry_after: Option<i64>,
    /// The kind of call, for `extra_fields.request_type`: a chat completion unless the route
    /// says otherwise (`for_request`).
    pub request_type: RequestType,
    /// Governance's refusal, whose rule, copy and lines `extra_fields.denial` names.
    pub denial: Option<Denial>,
}

impl GatewayError {
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Failed(failure),
            message: message.into(),
            provider: None,
            model: None,
            retry_after: None,
            request_type: RequestType::ChatCompletion,
            denial: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Failure::InvalidRequest, message)
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status_and_type().0
    }

    /// The `type` clients branch on.
    pub fn type_name(&self) -> &'static str {
        self.kind.status_and_type().1
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

/// A governance refusal, worded by governance, for the model it was asked about.
impl From<Denial> for GatewayError {
    fn from(denial: Denial) -> Self {
        let mut error = GatewayError {
            kind: ErrorKind::Denied(denial.kind),
            message: denial.to_string(),
            provider: None,
            model: None,
            retry_after: denial.retry_after(),
            request_type: RequestType::ChatCompletion,
            denial: None,
        };
        if !denial.provider.is_empty() {
            error = error.for_model(&denial.provider, &denial.model);
        }
        error.denial = Some(denial);
        error
    }
}

impl GatewayError {
    /// The error in Anthropic's shape, `{"type":"error","error":{"type","message"}}`, with the
    /// same status; `error.type` is the governance type (`budget_exceeded`, …), a malformed
    /// request is Anthropic's own `invalid_request_error`.
    pub fn into_anthropic_response(self) -> Response {
        let kind = match self.kind {
            ErrorKind::Failed(Failure::InvalidRequest) => "invalid_request_error",
            _ => self.type_name(),
        };
        let mut body = json!({"type": "error", "error": {"type": kind, "message": self.message}});
        if let Some(denial) = &self.denial {
            body["error"]["denial"] = denial.fields();
        }
        self.respond(body)
    }

    fn respond(self, body: Value) -> Response {
        let (status, kind) = self.kind.status_and_type();
        if status.is_server_error() {
            tracing::warn!(kind, status = status.as_u16(), message = %self.message, "inference request failed");
        }
        let mut response = (status, Json(body)).into_response();
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
        if let Some(denial) = &self.denial {
            extra["denial"] = denial.fields();
        }
        let (status, kind) = self.kind.status_and_type();
        let body = json!({
            "type": kind,
            "is_bifrost_error": false,
            "status_code": status.as_u16(),
            "error": {"type": kind, "message": self.message},
            "extra_fields": extra,
        });
        self.respond(body)
    }
}
