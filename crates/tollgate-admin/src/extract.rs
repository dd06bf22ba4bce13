//! Extractors that turn every malformed path, query or body into our error envelope.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use tollgate_core::auth::Principal;

use crate::error::ApiError;

/// JSON body; syntax, type and size problems become 400/413/415 in the envelope.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Query string; a wrong type becomes 400 in the envelope.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters; a non-integer id becomes 400 in the envelope.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The authenticated caller, put in place by the auth middleware.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "unauthorized", "authentication required"))
    }
}

impl Caller {
    /// Refuses with 403 unless the caller holds `Resource:Operation`.
    pub fn require(&self, resource: &str, operation: &str) -> Result<(), ApiError> {
        match tollgate_core::permissions::Permission::of(resource, operation) {
            Some(p) => self.0.require(p).map_err(ApiError::from),
            None => Err(tollgate_core::CoreError::Internal(format!("unknown permission {resource}:{operation}")).into()),
        }
    }
}
