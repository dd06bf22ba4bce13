//! Handlers of `/api/governance/virtual-keys/{vk_id}`: read a key; rename it, deactivate,
//! reactivate or expire it; edits of what it may do, and direct deletion, are refused for
//! profile-managed keys.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tollgate_core::services::keys::ManagedVirtualKey;
use utoipa::ToSchema;

use crate::dto::MessageResponse;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, Path};
use crate::{AdminState, changed_users};
use axum::Extension;
use tollgate_core::usage::ChangeScope;

pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/governance/virtual-keys/{vk_id}", get(read).put(update).delete(remove))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(read, update, remove))]
pub(crate) struct VirtualKeyDoc;

/// What a managed key's update may hold; every member is optional.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[expect(dead_code, reason = "documents the body for the OpenAPI document; the handler reads it as JSON to refuse locked members")]
pub struct UpdateVirtualKeyRequest {
    name: Option<String>,
    description: Option<String>,
    is_active: Option<bool>,
    /// RFC 3339, in the future; `""` or `null` removes the expiry.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ManagedVirtualKeyResponse {
    pub virtual_key: ManagedVirtualKey,
}

#[utoipa::path(get, path = "/api/governance/virtual-keys/{vk_id}", tag = "Virtual Keys", operation_id = "getVirtualKey", params(("vk_id" = String, Path)),
    responses((status = 200, body = ManagedVirtualKeyResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn read(State(s): State<AdminState>, caller: Caller, Path(id): Path<String>) -> Result<Json<ManagedVirtualKeyResponse>, ApiError> {
    caller.require("VirtualKeys", "View")?;
    Ok(Json(ManagedVirtualKeyResponse { virtual_key: s.keys.get(&id).await? }))
}

/// Renames or re-describes a key, and sets `is_active` and `expires_at` (an RFC 3339 time in the
/// future; `""` or `null` removes it). An inactive or expired key refuses inference at once with
/// 403 `virtual_key_blocked`. Any other member is refused with 409 (it belongs to the profile).
#[utoipa::path(put, path = "/api/governance/virtual-keys/{vk_id}", tag = "Virtual Keys", operation_id = "updateVirtualKey", params(("vk_id" = String, Path)),
    request_body = UpdateVirtualKeyRequest,
    responses((status = 200, body = ManagedVirtualKeyResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn update(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Result<(Extension<ChangeScope>, Json<ManagedVirtualKeyResponse>), ApiError> {
    caller.require("VirtualKeys", "Update")?;
    let virtual_key = s.keys.edit(&caller.0, &id, &body).await?;
    Ok((changed_users([virtual_key.user_id.clone()]), Json(ManagedVirtualKeyResponse { virtual_key })))
}

/// Refused with 409 for a profile-managed key (delete it through its user, or detach the profile).
#[utoipa::path(delete, path = "/api/governance/virtual-keys/{vk_id}", tag = "Virtual Keys", operation_id = "deleteVirtualKey", params(("vk_id" = String, Path)),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove(State(s): State<AdminState>, caller: Caller, Path(id): Path<String>) -> Result<Json<MessageResponse>, ApiError> {
    caller.require("VirtualKeys", "Delete")?;
    s.keys.delete_direct(&id).await?;
    Ok(Json(MessageResponse { message: format!("virtual key {id} deleted") }))
}
