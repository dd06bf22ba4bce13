//! Handler of `GET /api/models`: the models the configured providers offer and the keys serving them.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::AdminState;
use crate::dto::{ModelListParams, ModelListResponse};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Caller, Query};

pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/models", get(list))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list))]
pub(crate) struct ModelDoc;

/// Models of the configured providers and the keys serving them.
///
/// Models named by the enabled keys of API-managed providers and by providers declared in the
/// config file (with `unfiltered=true`, also the pricing catalog's models of those providers),
/// ordered by provider then name. Key secrets are never part of the answer.
#[utoipa::path(get, path = "/api/models", tag = "Models", operation_id = "listModelsManagement", params(ModelListParams),
    responses((status = 200, body = ModelListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(
    State(s): State<AdminState>,
    caller: Caller,
    Query(params): Query<ModelListParams>,
) -> Result<Json<ModelListResponse>, ApiError> {
    caller.require("ModelProvider", "View")?;
    let page = s.models.list(&params.checked()?).await?;
    Ok(Json(ModelListResponse { models: page.models, total: page.total }))
}
