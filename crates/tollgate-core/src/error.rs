//! The core error type: what a use case can refuse or fail with, independent of HTTP.

use serde::Serialize;

/// One validation problem, named by the JSON path of the offending member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub param: String,
    pub message: String,
}

impl FieldError {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { param: param.into(), message: message.into() }
    }
}

/// Errors of the core layer. The management API maps each variant once to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The request is well-formed JSON but breaks a rule; every problem is listed.
    #[error("{}", join(.0))]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts (failed logins); the caller may try again after `retry_after_secs`.
    #[error("{message}")]
    Throttled { message: String, retry_after_secs: u64 },
    /// The store is overloaded or unreachable; the caller may retry.
    #[error("the service is temporarily unavailable, retry shortly")]
    Unavailable(String),
    /// A fault of ours; the text is for the log only, never for the client.
    #[error("internal error")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Validation(vec![FieldError::new(param, message)])
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| if e.param.is_empty() { e.message.clone() } else { format!("{}: {}", e.param, e.message) })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects validation problems so that one answer names all of them.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<FieldError>);

impl Problems {
    pub(crate) fn add(&mut self, param: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(param, message));
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, CoreError> {
        if self.0.is_empty() { Ok(value) } else { Err(CoreError::Validation(self.0)) }
    }
}
