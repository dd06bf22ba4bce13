//! The one error type of the HTTP layer and its single mapping to the response envelope.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_core::CoreError;
use utoipa::ToSchema;

tokio::task_local! {
    /// The id of the request being served, for error bodies and logs.
    pub static REQUEST_ID: String;
}

/// Error body of every non-2xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub is_bifrost_error: bool,
    pub status_code: u16,
    pub error: ErrorField,
    pub extra_fields: ExtraFields,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorField {
    /// Stable machine-readable class of the error.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub message: String,
    /// The offending request member, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// Always empty on management errors.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ExtraFields {}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<String>,
    /// Logged, never sent.
    detail: Option<String>,
    /// Seconds a throttled client should wait, sent as `Retry-After`.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), param: None, detail: None, retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::Validation(problems) => {
                let param = problems.first().map(|p| p.param.clone()).filter(|p| !p.is_empty());
                Self { param, ..Self::new(StatusCode::BAD_REQUEST, "validation_error", message) }
            }
            CoreError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            CoreError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            CoreError::Unauthorized(_) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
            CoreError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            CoreError::Throttled { retry_after_secs, .. } => {
                Self { retry_after: Some(retry_after_secs), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message) }
            }
            CoreError::Unavailable(detail) => {
                Self { detail: Some(detail), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message) }
            }
            CoreError::Internal(detail) => {
                Self { detail: Some(detail), ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message) }
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonSyntaxError(e) => Self::bad_request(format!("malformed JSON: {}", source_text(&e))),
            JsonRejection::JsonDataError(e) => Self::bad_request(format!("invalid request body: {}", source_text(&e))),
            JsonRejection::MissingJsonContentType(_) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "expected Content-Type: application/json")
            }
            JsonRejection::BytesRejection(_) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", too_large_message()),
            other => Self::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(format!("invalid query string: {}", r.body_text().trim_start_matches("Failed to deserialize query string: ")))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request(format!("invalid path parameter: {}", r.body_text().trim_start_matches("Invalid URL: ")))
    }
}

/// The innermost serde message, without axum's preamble.
fn source_text(e: &dyn std::error::Error) -> String {
    let mut current: &dyn std::error::Error = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

pub fn too_large_message() -> String {
    format!("request body exceeds the limit of {} bytes", crate::MAX_BODY_BYTES)
}

fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let event_id = current_request_id();
        if self.status.is_server_error() {
            tracing::error!(
                request_id = event_id.as_deref().unwrap_or("-"),
                status = self.status.as_u16(),
                detail = self.detail.as_deref().unwrap_or(""),
                "request failed"
            );
        }
        let body = ErrorResponse {
            event_id: event_id.clone(),
            is_bifrost_error: false,
            status_code: self.status.as_u16(),
            error: ErrorField { kind: Some(self.kind.to_owned()), message: self.message, param: self.param, event_id },
            extra_fields: ExtraFields::default(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}
