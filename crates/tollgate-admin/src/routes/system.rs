//! Public routes: liveness and readiness (the database and the shared usage counters answer).
//! The OpenAPI document's route is `openapi::serve`, beside the document it serves.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::AdminState;
use crate::dto::StatusResponse;
use crate::error::{ApiError, ErrorResponse};

pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready))]
pub(crate) struct SystemDoc;

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "System", operation_id = "health", security(()),
    responses((status = 200, body = StatusResponse)))]
async fn health() -> Json<StatusResponse> {
    Json(StatusResponse { status: "ok" })
}

/// Readiness: the database answers queries, and so does Redis when the usage counters live there.
#[utoipa::path(get, path = "/ready", tag = "System", operation_id = "ready", security(()),
    responses((status = 200, body = StatusResponse), (status = 503, body = ErrorResponse)))]
async fn ready(State(state): State<AdminState>) -> Result<Json<StatusResponse>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is not answering")
    })?;
    if let Some(check) = &state.readiness {
        check().await.map_err(|e| {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the usage counters are not answering")
        })?;
    }
    Ok(Json(StatusResponse { status: "ready" }))
}
