//! `POST /api/governance/explain`: what governance would decide for a user or a key asking for a
//! model, and why — every check in order with its numbers, nothing charged (the running
//! governance answers through core's `Explainer` port).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use tollgate_core::error::CoreError;
use tollgate_core::explain::{ExplainRequest, Explanation};

use crate::AdminState;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller};

pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/governance/explain", post(explain))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(explain))]
pub(crate) struct ExplainDoc;

/// Explains the decision a request would get, reading the usage counters without charging them.
#[utoipa::path(post, path = "/api/governance/explain", tag = "Governance", operation_id = "explainDecision",
    request_body = ExplainRequest,
    responses((status = 200, body = Explanation), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn explain(State(s): State<AdminState>, caller: Caller, Body(request): Body<ExplainRequest>) -> Result<Json<Explanation>, ApiError> {
    caller.require("Observability", "View")?;
    let explainer = s.explainer.as_ref().ok_or_else(|| CoreError::Unavailable("no governance to explain with".to_owned()))?;
    if let Some(user) = request.user_id.as_deref().filter(|_| request.virtual_key_id.is_none()) {
        // A user with no copies is unknown to governance yet exists: it is refused, not missing.
        s.directory.get_user(user).await?;
    }
    Ok(Json(explainer.explain(&request).await?))
}
