//! The MCP surface's one error table: refusals at admission (before any JSON-RPC is read) are
//! plain HTTP answers in the Bifrost envelope, mapped here once from governance's `DenialKind`
//! or the surface's own `Refusal`. On `/mcp` a refused tool call is a tool result instead
//! (`call::refusal`); the REST execution route answers it here too.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tollgate_governance::{Denial, DenialKind};

/// Why admission refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Governance refused: its rule, its message and its structured fields (`Denial::fields`).
    Denied(DenialKind, String, Box<serde_json::Value>),
    /// The slug names a Virtual MCP or client the caller is not granted.
    AccessDenied,
    /// No Virtual MCP or client has that slug.
    UnknownSlug,
    /// A malformed request (a body that is not a JSON-RPC message, a REST call without a tool).
    Invalid(String),
    /// The tool is not in the caller's grant (or does not exist).
    ToolNotGranted(String),
    /// The client is not connected or did not answer.
    Upstream(String),
    /// The request body is longer than the surface takes (`MAX_MCP_BODY_BYTES`).
    TooLarge,
}

impl From<Denial> for Refusal {
    fn from(denial: Denial) -> Refusal {
        Refusal::Denied(denial.kind, denial.to_string(), Box::new(denial.fields()))
    }
}

impl Refusal {
    /// The table: status and `type`.
    pub fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Refusal::Denied(kind, _, _) => match kind {
                DenialKind::KeyRequired => (StatusCode::UNAUTHORIZED, "virtual_key_required"),
                DenialKind::KeyNotFound => (StatusCode::UNAUTHORIZED, "virtual_key_not_found"),
                DenialKind::KeyInactive | DenialKind::KeyExpired => (StatusCode::FORBIDDEN, "virtual_key_blocked"),
                DenialKind::CountersUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "counters_unavailable"),
                DenialKind::BudgetExceeded => (StatusCode::PAYMENT_REQUIRED, "budget_exceeded"),
                DenialKind::TokenLimited | DenialKind::RequestLimited | DenialKind::RateLimited => {
                    (StatusCode::TOO_MANY_REQUESTS, "request_limited")
                }
                DenialKind::AccessBlocked | DenialKind::ProviderBlocked | DenialKind::ModelBlocked | DenialKind::ModelUnpriced => {
                    (StatusCode::FORBIDDEN, "access_blocked")
                }
            },
            Refusal::AccessDenied => (StatusCode::FORBIDDEN, "access_denied"),
            Refusal::UnknownSlug => (StatusCode::NOT_FOUND, "not_found"),
            Refusal::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Refusal::ToolNotGranted(_) => (StatusCode::FORBIDDEN, "tool_blocked"),
            Refusal::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failure"),
            Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Denied(_, message, _) | Refusal::Invalid(message) | Refusal::ToolNotGranted(message) | Refusal::Upstream(message) => {
                message.clone()
            }
            Refusal::AccessDenied => "access_denied".into(),
            Refusal::UnknownSlug => "no Virtual MCP or MCP client has this endpoint".into(),
            Refusal::TooLarge => format!("request body exceeds the limit of {} bytes", crate::MAX_MCP_BODY_BYTES),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_type();
        let mut body = json!({
            "type": kind,
            "is_bifrost_error": false,
            "status_code": status.as_u16(),
            "error": {"type": kind, "message": self.message()},
            "extra_fields": {"request_type": "mcp"},
        });
        if let Refusal::Denied(_, _, fields) = self {
            body["extra_fields"]["denial"] = *fields;
        }
        (status, Json(body)).into_response()
    }
}
