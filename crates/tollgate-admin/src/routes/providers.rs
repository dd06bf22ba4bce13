//! Handlers of `/api/providers…` and `/api/keys`: providers and their keys, secrets redacted.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tollgate_core::providers::{AddProviderRequest, KeyRequest, Provider, ProviderKey, UpdateProviderRequest};
use utoipa::ToSchema;

use crate::AdminState;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, Path};

const RESOURCE: &str = "ModelProvider";

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/providers", get(list).post(create))
        .route("/providers/{provider}", get(read).put(replace).delete(remove))
        .route("/providers/{provider}/keys", get(list_keys).post(add_key))
        .route("/providers/{provider}/keys/{key_id}", get(read_key).put(replace_key).delete(remove_key))
        .route("/keys", get(all_keys))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, read, replace, remove, list_keys, add_key, read_key, replace_key, remove_key, all_keys))]
pub(crate) struct ProviderDoc;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderListResponse {
    pub providers: Vec<Provider>,
    pub total: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyListResponse {
    pub keys: Vec<ProviderKey>,
    pub total: usize,
}

#[utoipa::path(get, path = "/api/providers", tag = "Providers", operation_id = "listProviders",
    responses((status = 200, body = ProviderListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(State(s): State<AdminState>, caller: Caller) -> Result<Json<ProviderListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    let providers = s.providers.list().await?;
    Ok(Json(ProviderListResponse { total: providers.len(), providers }))
}

/// Adds a provider (keys may come inline); served to the gateway on the next request.
#[utoipa::path(post, path = "/api/providers", tag = "Providers", operation_id = "addProvider", request_body = AddProviderRequest,
    responses((status = 200, body = Provider), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn create(State(s): State<AdminState>, caller: Caller, Body(req): Body<AddProviderRequest>) -> Result<Json<Provider>, ApiError> {
    caller.require(RESOURCE, "Create")?;
    Ok(Json(s.providers.create(req).await?))
}

#[utoipa::path(get, path = "/api/providers/{provider}", tag = "Providers", operation_id = "getProvider", params(("provider" = String, Path)),
    responses((status = 200, body = Provider), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn read(State(s): State<AdminState>, caller: Caller, Path(name): Path<String>) -> Result<Json<Provider>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(s.providers.get(&name).await?))
}

/// Full replacement of the provider's settings.
#[utoipa::path(put, path = "/api/providers/{provider}", tag = "Providers", operation_id = "updateProvider", params(("provider" = String, Path)),
    request_body = UpdateProviderRequest,
    responses((status = 200, body = Provider), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn replace(
    State(s): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(req): Body<UpdateProviderRequest>,
) -> Result<Json<Provider>, ApiError> {
    caller.require(RESOURCE, "Update")?;
    Ok(Json(s.providers.replace(&name, req).await?))
}

/// Deletes a provider and its keys; answers with what was removed.
#[utoipa::path(delete, path = "/api/providers/{provider}", tag = "Providers", operation_id = "deleteProvider", params(("provider" = String, Path)),
    responses((status = 200, body = Provider), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove(State(s): State<AdminState>, caller: Caller, Path(name): Path<String>) -> Result<Json<Provider>, ApiError> {
    caller.require(RESOURCE, "Delete")?;
    Ok(Json(s.providers.delete(&name).await?))
}

#[utoipa::path(get, path = "/api/providers/{provider}/keys", tag = "Providers", operation_id = "listProviderKeys", params(("provider" = String, Path)),
    responses((status = 200, body = KeyListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list_keys(State(s): State<AdminState>, caller: Caller, Path(name): Path<String>) -> Result<Json<KeyListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    let keys = s.providers.keys(&name).await?;
    Ok(Json(KeyListResponse { total: keys.len(), keys }))
}

/// Adds a key; `value` is the secret or `env.NAME`. The answer shows it redacted.
#[utoipa::path(post, path = "/api/providers/{provider}/keys", tag = "Providers", operation_id = "createProviderKey", params(("provider" = String, Path)),
    request_body = KeyRequest,
    responses((status = 200, body = ProviderKey), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn add_key(
    State(s): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(req): Body<KeyRequest>,
) -> Result<Json<ProviderKey>, ApiError> {
    caller.require(RESOURCE, "Create")?;
    Ok(Json(s.providers.add_key(&name, req).await?))
}

#[utoipa::path(get, path = "/api/providers/{provider}/keys/{key_id}", tag = "Providers", operation_id = "getProviderKey",
    params(("provider" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = ProviderKey), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn read_key(
    State(s): State<AdminState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<ProviderKey>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(s.providers.key(&name, &id).await?))
}

/// Full replacement of a key; echoing the redacted value back keeps the stored secret.
#[utoipa::path(put, path = "/api/providers/{provider}/keys/{key_id}", tag = "Providers", operation_id = "updateProviderKey",
    params(("provider" = String, Path), ("key_id" = String, Path)), request_body = KeyRequest,
    responses((status = 200, body = ProviderKey), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn replace_key(
    State(s): State<AdminState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    Body(req): Body<KeyRequest>,
) -> Result<Json<ProviderKey>, ApiError> {
    caller.require(RESOURCE, "Update")?;
    Ok(Json(s.providers.replace_key(&name, &id, req).await?))
}

#[utoipa::path(delete, path = "/api/providers/{provider}/keys/{key_id}", tag = "Providers", operation_id = "deleteProviderKey",
    params(("provider" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = ProviderKey), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove_key(
    State(s): State<AdminState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<ProviderKey>, ApiError> {
    caller.require(RESOURCE, "Delete")?;
    Ok(Json(s.providers.delete_key(&name, &id).await?))
}

/// Every provider key, redacted (a bare array, as published).
#[utoipa::path(get, path = "/api/keys", tag = "Providers", operation_id = "listKeys",
    responses((status = 200, body = Vec<ProviderKey>), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn all_keys(State(s): State<AdminState>, caller: Caller) -> Result<Json<Vec<ProviderKey>>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(s.providers.all_keys().await?))
}
