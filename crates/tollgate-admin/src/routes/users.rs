//! Handlers of the user endpoints: the directory (list, create, get, delete, role) and a user's
//! virtual keys (list masked, mint, audited reveal). Both path families.

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tollgate_core::services::keys::MintKeyRequest;
use tollgate_core::users::{AssignRoleRequest, CreateUserRequest, User};
use tollgate_core::vkeys::{UserVirtualKey, VirtualKeySummary};
use utoipa::{IntoParams, ToSchema};

use crate::dto::MessageResponse;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, OptionalBody, Path, Query};
use crate::{AdminState, changed_users};
use axum::Extension;
use tollgate_core::usage::ChangeScope;

pub(crate) const USERS_CANONICAL: &str = "/governance/users";
pub(crate) const USERS_ALIAS: &str = "/users";

pub(crate) fn routes() -> Router<AdminState> {
    let mut router = Router::new();
    for prefix in [USERS_CANONICAL, USERS_ALIAS] {
        router = router
            .route(prefix, get(list).post(create))
            .route(&format!("{prefix}/{{user_id}}"), get(read).delete(remove))
            .route(&format!("{prefix}/{{user_id}}/role"), put(assign_role))
            .route(&format!("{prefix}/{{user_id}}/virtual-keys"), get(list_keys).post(mint_key))
            .route(&format!("{prefix}/{{user_id}}/virtual-keys/{{vk_id}}/reveal"), post(reveal_key));
    }
    router
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, read, remove, assign_role, list_keys, mint_key, reveal_key))]
pub(crate) struct UserDoc;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Page number from 1.
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 0)]
    pub limit: Option<i64>,
    /// Case-insensitive substring of the name or e-mail.
    pub search: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListResponse {
    pub users: Vec<User>,
    pub total: u64,
    pub page: u32,
    pub limit: u32,
    pub total_pages: u64,
    pub has_more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub user: User,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserVirtualKeyListResponse {
    pub virtual_keys: Vec<UserVirtualKey>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VirtualKeyResponse {
    pub virtual_key: VirtualKeySummary,
}

/// Users, paged (`page` from 1, `limit` 1–100, default 20).
#[utoipa::path(get, path = "/api/governance/users", tag = "Users", operation_id = "listUsers", params(UserListParams),
    responses((status = 200, body = UserListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(State(s): State<AdminState>, caller: Caller, Query(q): Query<UserListParams>) -> Result<Json<UserListResponse>, ApiError> {
    caller.require("Users", "View")?;
    let page = match q.page {
        None => 1,
        Some(p) if p >= 1 => u32::try_from(p).unwrap_or(u32::MAX),
        Some(_) => return Err(ApiError::bad_request("page must be 1 or more").with_param("page")),
    };
    let limit = match q.limit {
        None | Some(0) => 20,
        Some(l) if l < 0 => return Err(ApiError::bad_request("limit must not be negative").with_param("limit")),
        Some(l) => u32::try_from(l.min(100)).unwrap_or(100),
    };
    let found = s.directory.list_users(q.search.as_deref().map(str::trim), page, limit).await?;
    let total_pages = found.total.div_ceil(u64::from(limit));
    Ok(Json(UserListResponse { users: found.items, total: found.total, page, limit, total_pages, has_more: u64::from(page) < total_pages }))
}

/// Creates a user; a `role_id` provisions that role's default access profile at once.
#[utoipa::path(post, path = "/api/governance/users", tag = "Users", operation_id = "createUser", request_body = CreateUserRequest,
    responses((status = 200, body = UserResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn create(
    State(s): State<AdminState>,
    caller: Caller,
    Body(req): Body<CreateUserRequest>,
) -> Result<(Extension<ChangeScope>, Json<UserResponse>), ApiError> {
    caller.require("Users", "Create")?;
    let user = s.directory.create_user(&caller.0, req).await?;
    Ok((changed_users([user.id.clone()]), Json(UserResponse { user })))
}

/// One user (a Tollgate addition: the published API has no single-user read).
#[utoipa::path(get, path = "/api/governance/users/{user_id}", tag = "Users", operation_id = "getUser", params(("user_id" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn read(State(s): State<AdminState>, caller: Caller, Path(id): Path<String>) -> Result<Json<UserResponse>, ApiError> {
    caller.require("Users", "View")?;
    Ok(Json(UserResponse { user: s.directory.get_user(&id).await? }))
}

/// Deletes a user with every copy and key they hold.
#[utoipa::path(delete, path = "/api/governance/users/{user_id}", tag = "Users", operation_id = "deleteUser", params(("user_id" = String, Path)),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(Extension<ChangeScope>, Json<MessageResponse>), ApiError> {
    caller.require("Users", "Delete")?;
    s.directory.delete_user(&caller.0, &id).await?;
    let message = format!("user {id} deleted");
    Ok((changed_users([id]), Json(MessageResponse { message })))
}

/// Sets the user's role: copies from the previous role's default go, the new default arrives.
#[utoipa::path(put, path = "/api/governance/users/{user_id}/role", tag = "Users", operation_id = "assignUserRole",
    params(("user_id" = String, Path)), request_body = AssignRoleRequest,
    responses((status = 200, body = MessageResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn assign_role(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<AssignRoleRequest>,
) -> Result<(Extension<ChangeScope>, Json<MessageResponse>), ApiError> {
    caller.require("Users", "Update")?;
    let role_id = req.role_id;
    s.directory.assign_role(&caller.0, &id, req).await?;
    let message = format!("role {role_id} assigned to user {id}");
    Ok((changed_users([id]), Json(MessageResponse { message })))
}

/// Every key of the user, values masked.
#[utoipa::path(get, path = "/api/governance/users/{user_id}/virtual-keys", tag = "Users", operation_id = "listUserVirtualKeys",
    params(("user_id" = String, Path)),
    responses((status = 200, body = UserVirtualKeyListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list_keys(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserVirtualKeyListResponse>, ApiError> {
    caller.require("VirtualKeys", "View")?;
    Ok(Json(UserVirtualKeyListResponse { virtual_keys: s.keys.list(&id).await? }))
}

/// Mints an extra key for a user who holds an access profile; the value is in this answer only.
#[utoipa::path(post, path = "/api/governance/users/{user_id}/virtual-keys", tag = "Users", operation_id = "addUserVirtualKey",
    params(("user_id" = String, Path)), request_body = MintKeyRequest,
    responses((status = 200, body = VirtualKeyResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn mint_key(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalBody(req): OptionalBody<MintKeyRequest>,
) -> Result<(Extension<ChangeScope>, Json<VirtualKeyResponse>), ApiError> {
    caller.require("VirtualKeys", "Create")?;
    let virtual_key = s.keys.mint(&caller.0, &id, req).await?;
    Ok((changed_users([id]), Json(VirtualKeyResponse { virtual_key })))
}

/// The full value of one of the user's keys, to hand it over; every reveal is audited
/// (a Tollgate addition, permission `VirtualKeys:Reveal`).
#[utoipa::path(post, path = "/api/governance/users/{user_id}/virtual-keys/{vk_id}/reveal", tag = "Users", operation_id = "revealUserVirtualKey",
    params(("user_id" = String, Path), ("vk_id" = String, Path)),
    responses((status = 200, body = VirtualKeyResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn reveal_key(
    State(s): State<AdminState>,
    caller: Caller,
    Path((id, vk)): Path<(String, String)>,
) -> Result<(Extension<ChangeScope>, Json<VirtualKeyResponse>), ApiError> {
    caller.require("VirtualKeys", "Reveal")?;
    let virtual_key = s.keys.reveal(&caller.0, &id, &vk).await?;
    // A reveal changes no governance state, only the audit log.
    Ok((changed_users(Vec::<String>::new()), Json(VirtualKeyResponse { virtual_key })))
}
