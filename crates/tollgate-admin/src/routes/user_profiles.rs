//! Handlers of a user's access-profile copies: list, (de)activate and expire, detach, keys and
//! budget overrides.

use axum::extract::State;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tollgate_core::overrides::{BudgetOverrideResponse, OverrideRequest};
use tollgate_core::services::assignments::{DetachUserProfileResponse, UserAccessProfile};
use tollgate_core::services::keys::MintKeyRequest;
use tollgate_core::services::lifecycle::LifecycleRequest;
use utoipa::ToSchema;

use crate::dto::MessageResponse;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, OptionalBody, Path, profile_id};
use crate::routes::users::{USERS_ALIAS, USERS_CANONICAL, VirtualKeyResponse};
use crate::{AdminState, changed_users};
use axum::Extension;
use tollgate_core::usage::ChangeScope;

const RESOURCE: &str = "AccessProfiles";

pub(crate) fn routes() -> Router<AdminState> {
    let mut router = Router::new();
    for users in [USERS_CANONICAL, USERS_ALIAS] {
        let base = format!("{users}/{{user_id}}/access-profiles");
        router = router
            .route(&base, get(list))
            .route(&format!("{base}/{{profile_id}}"), put(update).delete(detach))
            .route(&format!("{base}/{{profile_id}}/virtual-keys"), post(mint_key))
            .route(&format!("{base}/virtual-keys/{{vk_id}}"), delete(delete_key))
            .route(&format!("{base}/{{profile_id}}/budgets/{{budget_id}}/override"), put(set_override).delete(remove_override));
    }
    router
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, update, detach, mint_key, delete_key, set_override, remove_override))]
pub(crate) struct UserProfileDoc;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserAccessProfileListResponse {
    pub access_profiles: Vec<UserAccessProfile>,
}

/// The user's copies, key values masked, budgets with their current usage.
#[utoipa::path(get, path = "/api/governance/users/{user_id}/access-profiles", tag = "Access Profiles", operation_id = "listUserAccessProfiles",
    params(("user_id" = String, Path)),
    responses((status = 200, body = UserAccessProfileListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(
    State(s): State<AdminState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Json<UserAccessProfileListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(UserAccessProfileListResponse { access_profiles: s.assignments.user_copies(&user).await? }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserAccessProfileResponse {
    pub message: String,
    pub access_profile: UserAccessProfile,
}

/// Deactivates, reactivates or sets the expiry of the user's copy of a template (`profile_id` is
/// the template's id). An inactive or expired copy refuses inference at once with 403
/// `access_blocked`. Only `is_active` and `expires_at` may be sent; the copy's policy comes from
/// its template (propagate) and budget overrides.
#[utoipa::path(put, path = "/api/governance/users/{user_id}/access-profiles/{profile_id}", tag = "Access Profiles",
    operation_id = "updateUserAccessProfile", params(("user_id" = String, Path), ("profile_id" = u64, Path)), request_body = LifecycleRequest,
    responses((status = 200, body = UserAccessProfileResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn update(
    State(s): State<AdminState>,
    caller: Caller,
    Path((user, id)): Path<(String, u64)>,
    Body(body): Body<Value>,
) -> Result<Json<UserAccessProfileResponse>, ApiError> {
    caller.require(RESOURCE, "Update")?;
    let copy = s.lifecycle.update_copy(&caller.0, &user, profile_id(id), &body).await?;
    Ok(Json(UserAccessProfileResponse { message: format!("access profile {id} of user {user} updated"), access_profile: copy }))
}

/// Removes the user's copy of a template and the keys only it produced, all or nothing.
#[utoipa::path(delete, path = "/api/governance/users/{user_id}/access-profiles/{profile_id}", tag = "Access Profiles",
    operation_id = "detachUserAccessProfile", params(("user_id" = String, Path), ("profile_id" = u64, Path)),
    responses((status = 200, body = DetachUserProfileResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn detach(
    State(s): State<AdminState>,
    caller: Caller,
    Path((user, id)): Path<(String, u64)>,
) -> Result<(Extension<ChangeScope>, Json<DetachUserProfileResponse>), ApiError> {
    caller.require(RESOURCE, "Delete")?;
    let detached = s.assignments.detach_user_profile(&caller.0, &user, profile_id(id)).await?;
    Ok((changed_users([user]), Json(detached)))
}

/// Deprecated form of minting a user key; `profile_id` is ignored (keys belong to the user).
///
/// Needs `VirtualKeys:Create`, as the canonical route does, besides the published `AccessProfiles:Create`.
#[utoipa::path(post, path = "/api/governance/users/{user_id}/access-profiles/{profile_id}/virtual-keys", tag = "Access Profiles",
    operation_id = "addUserAccessProfileVirtualKey", params(("user_id" = String, Path), ("profile_id" = u64, Path)), request_body = MintKeyRequest,
    responses((status = 200, body = VirtualKeyResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn mint_key(
    State(s): State<AdminState>,
    caller: Caller,
    Path((user, _)): Path<(String, u64)>,
    OptionalBody(req): OptionalBody<MintKeyRequest>,
) -> Result<(Extension<ChangeScope>, Json<VirtualKeyResponse>), ApiError> {
    caller.require(RESOURCE, "Create")?;
    caller.require("VirtualKeys", "Create")?;
    let virtual_key = s.keys.mint(&caller.0, &user, req).await?;
    Ok((changed_users([user]), Json(VirtualKeyResponse { virtual_key })))
}

/// Deletes one of the user's keys.
#[utoipa::path(delete, path = "/api/governance/users/{user_id}/access-profiles/virtual-keys/{vk_id}", tag = "Access Profiles",
    operation_id = "deleteUserAccessProfileVirtualKey", params(("user_id" = String, Path), ("vk_id" = String, Path)),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn delete_key(
    State(s): State<AdminState>,
    caller: Caller,
    Path((user, vk)): Path<(String, String)>,
) -> Result<(Extension<ChangeScope>, Json<MessageResponse>), ApiError> {
    caller.require(RESOURCE, "Delete")?;
    caller.require("VirtualKeys", "Delete")?;
    s.keys.delete(&caller.0, &user, &vk).await?;
    Ok((changed_users([user]), Json(MessageResponse { message: format!("virtual key {vk} deleted") })))
}

/// Sets (replaces) an override on a budget of the user's copy.
#[utoipa::path(put, path = "/api/governance/users/{user_id}/access-profiles/{profile_id}/budgets/{budget_id}/override", tag = "Access Profiles",
    operation_id = "updateUserAccessProfileBudgetOverride",
    params(("user_id" = String, Path), ("profile_id" = u64, Path), ("budget_id" = String, Path)), request_body = OverrideRequest,
    responses((status = 200, body = BudgetOverrideResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn set_override(
    State(s): State<AdminState>,
    caller: Caller,
    Path((user, id, budget)): Path<(String, u64, String)>,
    Body(req): Body<OverrideRequest>,
) -> Result<(Extension<ChangeScope>, Json<BudgetOverrideResponse>), ApiError> {
    caller.require(RESOURCE, "Update")?;
    let set = s.keys.set_override(&caller.0, &user, profile_id(id), &budget, &req).await?;
    Ok((changed_users([user]), Json(set)))
}

/// Removes an override (idempotent).
#[utoipa::path(delete, path = "/api/governance/users/{user_id}/access-profiles/{profile_id}/budgets/{budget_id}/override", tag = "Access Profiles",
    operation_id = "deleteUserAccessProfileBudgetOverride",
    params(("user_id" = String, Path), ("profile_id" = u64, Path), ("budget_id" = String, Path)),
    responses((status = 200, body = BudgetOverrideResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove_override(
    State(s): State<AdminState>,
    caller: Caller,
    Path((user, id, budget)): Path<(String, u64, String)>,
) -> Result<(Extension<ChangeScope>, Json<BudgetOverrideResponse>), ApiError> {
    caller.require(RESOURCE, "Delete")?;
    let removed = s.keys.remove_override(&caller.0, &user, profile_id(id), &budget).await?;
    Ok((changed_users([user]), Json(removed)))
}
