//! Extractors that turn every malformed path, query or body into our error envelope.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use tollgate_core::auth::Principal;

use crate::error::ApiError;

/// JSON body; syntax, type and size problems become 400/413/415 in the envelope, and text with
/// a NUL character (which Postgres cannot store) is refused with 400 before it reaches a store.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ));
        }
        let bytes = read_bytes(request, state).await?;
        parse(&bytes).map(Body)
    }
}

/// A JSON body the contract marks optional: a request without one (no bytes, whatever its
/// `Content-Type`) reads as `{}`; a body that is sent is held to the rules of [`Body`].
#[derive(Debug)]
pub struct OptionalBody<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let sized_empty = request.headers().get(axum::http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
        let chunked = request.headers().contains_key(axum::http::header::TRANSFER_ENCODING);
        if (!request.headers().contains_key(axum::http::header::CONTENT_LENGTH) && !chunked) || sized_empty {
            return parse(b"{}").map(OptionalBody);
        }
        Body::from_request(request, state).await.map(|Body(value)| OptionalBody(value))
    }
}

async fn read_bytes<S: Send + Sync>(request: axum::extract::Request, state: &S) -> Result<bytes::Bytes, ApiError> {
    bytes::Bytes::from_request(request, state)
        .await
        .map_err(|_| ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", crate::error::too_large_message()))
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    if let Some(at) = nul_at(&value, "") {
        let at = if at.is_empty() { "body".to_owned() } else { at };
        return Err(ApiError::bad_request(format!("{at}: text must not contain NUL characters")).with_param(at));
    }
    serde_path_to_error::deserialize(value).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// The path of the first string or key holding a NUL character.
fn nul_at(value: &serde_json::Value, at: &str) -> Option<String> {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(at.to_owned()),
        serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_at(v, &format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
            if k.contains('\0') { Some(here) } else { nul_at(v, &here) }
        }),
        _ => None,
    }
}

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

/// A profile id from the path; ids beyond the stored range simply do not exist (404).
pub fn profile_id(raw: u64) -> tollgate_core::ids::ProfileId {
    tollgate_core::ids::ProfileId(i64::try_from(raw).unwrap_or(i64::MAX))
}
