//! Handlers of the management API-key endpoints (`/api/api-keys`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tollgate_core::ids::ApiKeyId;
use tollgate_core::services::api_keys::ApiKeyRequest;

use crate::AdminState;
use crate::dto::{ApiKeyCreatedResponse, ApiKeyListResponse, ApiKeyResponse, MessageResponse, SearchListParams, count, paging};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, Path, Query};

const RESOURCE: &str = "APIKeys";

pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/api-keys", get(list).post(create)).route("/api-keys/{id}", get(read).put(update).delete(remove))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, read, update, remove))]
pub(crate) struct ApiKeyDoc;

fn key_id(raw: u64) -> ApiKeyId {
    ApiKeyId(i64::try_from(raw).unwrap_or(i64::MAX))
}

/// Lists management API keys (never their values).
#[utoipa::path(get, path = "/api/api-keys", tag = "API Keys", operation_id = "listAPIKeys", params(SearchListParams),
    responses((status = 200, body = ApiKeyListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(
    State(s): State<AdminState>,
    caller: Caller,
    Query(q): Query<SearchListParams>,
) -> Result<Json<ApiKeyListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    let paging = paging(q.limit, q.offset)?;
    let page = s.api_keys.list(q.search.as_deref().map(str::trim), paging).await?;
    Ok(Json(ApiKeyListResponse {
        count: count(page.items.len()),
        api_keys: page.items,
        total_count: page.total,
        limit: paging.limit.unwrap_or(0),
        offset: paging.offset,
    }))
}

/// Mints a key; its value is in this response only. Scopes beyond the caller's own give 403.
#[utoipa::path(post, path = "/api/api-keys", tag = "API Keys", operation_id = "createAPIKey", request_body = ApiKeyRequest,
    responses((status = 200, body = ApiKeyCreatedResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn create(
    State(s): State<AdminState>,
    caller: Caller,
    Body(req): Body<ApiKeyRequest>,
) -> Result<Json<ApiKeyCreatedResponse>, ApiError> {
    caller.require(RESOURCE, "Create")?;
    let created = s.api_keys.create(&caller.0, req).await?;
    Ok(Json(ApiKeyCreatedResponse { api_key: created.api_key, key: created.key.expose().to_owned() }))
}

/// One key (prefix only).
#[utoipa::path(get, path = "/api/api-keys/{id}", tag = "API Keys", operation_id = "getAPIKey", params(("id" = u64, Path)),
    responses((status = 200, body = ApiKeyResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn read(State(s): State<AdminState>, caller: Caller, Path(id): Path<u64>) -> Result<Json<ApiKeyResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(ApiKeyResponse { api_key: s.api_keys.get(key_id(id)).await? }))
}

/// Renames, re-describes, re-scopes or changes the expiry of a key; the value never changes.
///
/// The caller must hold every scope the key has; an expired key cannot be revived (409).
#[utoipa::path(put, path = "/api/api-keys/{id}", tag = "API Keys", operation_id = "updateAPIKey", params(("id" = u64, Path)), request_body = ApiKeyRequest,
    responses((status = 200, body = ApiKeyResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn update(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<u64>,
    Body(req): Body<ApiKeyRequest>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    caller.require(RESOURCE, "Update")?;
    Ok(Json(ApiKeyResponse { api_key: s.api_keys.update(&caller.0, key_id(id), req).await? }))
}

/// Revokes a key at once and for good.
///
/// The caller must hold every scope the key has.
#[utoipa::path(delete, path = "/api/api-keys/{id}", tag = "API Keys", operation_id = "deleteAPIKey", params(("id" = u64, Path)),
    responses((status = 200, body = MessageResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove(State(s): State<AdminState>, caller: Caller, Path(id): Path<u64>) -> Result<Json<MessageResponse>, ApiError> {
    caller.require(RESOURCE, "Delete")?;
    s.api_keys.delete(&caller.0, key_id(id)).await?;
    Ok(Json(MessageResponse { message: "API key deleted successfully".into() }))
}
