//! Deny-by-default authentication of every `/api/…` request: HTTP Basic admin or a `bfst-` key.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tollgate_core::auth::Principal;

use crate::AdminState;
use crate::error::ApiError;

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Middleware: authenticates the caller or answers 401; the principal goes into the request.
pub async fn require_caller(State(state): State<AdminState>, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let principal = authenticate(&state, request.headers(), client).await?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

pub(crate) async fn authenticate(state: &AdminState, headers: &HeaderMap, client: Option<IpAddr>) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized("authentication required: HTTP Basic admin credentials or a management API key as Bearer token"));
    };
    let value = value.to_str().map_err(|_| unauthorized("malformed Authorization header"))?;
    let (scheme, credential) = value.trim().split_once(' ').ok_or_else(|| unauthorized("malformed Authorization header"))?;
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(credential).map_err(|_| unauthorized("malformed Basic credentials"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| unauthorized("malformed Basic credentials"))?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| unauthorized("malformed Basic credentials"))?;
        return Ok(state.auth.basic(username, password, client).await?);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        if credential.starts_with("sk-bf-") {
            return Err(unauthorized("virtual keys are not accepted on management APIs; use a management API key"));
        }
        return Ok(state.auth.bearer(credential).await?);
    }
    Err(unauthorized("unsupported Authorization scheme; use Basic or Bearer"))
}
