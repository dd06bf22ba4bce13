//! Handlers of the role endpoints (`/api/governance/rbac/roles…`, deprecated `/api/roles…`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tollgate_core::services::directory::RoleDeleteRefusal;
use tollgate_core::users::{CreateRoleRequest, Role, UpdateRoleRequest};
use utoipa::ToSchema;

use crate::AdminState;
use crate::dto::MessageResponse;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, Path};

const RESOURCE: &str = "RBAC";

pub(crate) fn routes() -> Router<AdminState> {
    let mut router = Router::new();
    for prefix in ["/governance/rbac/roles", "/roles"] {
        router = router.route(prefix, get(list).post(create)).route(&format!("{prefix}/{{role_id}}"), get(read).put(update).delete(remove));
    }
    router
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, read, update, remove))]
pub(crate) struct RoleDoc;

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleListResponse {
    pub roles: Vec<Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleResponse {
    pub role: Role,
}

/// The plain body of a refused system-role deletion, as published.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlainError {
    pub error: String,
}

/// A 403 on role deletion: the envelope (missing permission) or the plain system-role body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RoleDeleteForbidden {
    #[expect(dead_code, reason = "documents the envelope form in the OpenAPI document; ApiError builds that body")]
    Envelope(ErrorResponse),
    Plain(PlainError),
}

/// Every role, system roles first.
#[utoipa::path(get, path = "/api/governance/rbac/roles", tag = "RBAC", operation_id = "listRoles",
    responses((status = 200, body = RoleListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(State(s): State<AdminState>, caller: Caller) -> Result<Json<RoleListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(RoleListResponse { roles: s.directory.list_roles().await? }))
}

/// Creates a custom role.
#[utoipa::path(post, path = "/api/governance/rbac/roles", tag = "RBAC", operation_id = "createRole", request_body = CreateRoleRequest,
    responses((status = 200, body = RoleResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn create(State(s): State<AdminState>, caller: Caller, Body(req): Body<CreateRoleRequest>) -> Result<Json<RoleResponse>, ApiError> {
    caller.require(RESOURCE, "Create")?;
    Ok(Json(RoleResponse { role: s.directory.create_role(req).await? }))
}

#[utoipa::path(get, path = "/api/governance/rbac/roles/{role_id}", tag = "RBAC", operation_id = "getRole", params(("role_id" = i64, Path)),
    responses((status = 200, body = RoleResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn read(State(s): State<AdminState>, caller: Caller, Path(id): Path<i64>) -> Result<Json<RoleResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(RoleResponse { role: s.directory.get_role(id).await? }))
}

/// Partial update; system roles keep their name.
#[utoipa::path(put, path = "/api/governance/rbac/roles/{role_id}", tag = "RBAC", operation_id = "updateRole", params(("role_id" = i64, Path)),
    request_body = UpdateRoleRequest,
    responses((status = 200, body = RoleResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn update(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<i64>,
    Body(req): Body<UpdateRoleRequest>,
) -> Result<Json<RoleResponse>, ApiError> {
    caller.require(RESOURCE, "Update")?;
    Ok(Json(RoleResponse { role: s.directory.update_role(id, req).await? }))
}

/// Deletes a custom role nobody holds; system roles answer 403 with a plain body.
#[utoipa::path(delete, path = "/api/governance/rbac/roles/{role_id}", tag = "RBAC", operation_id = "deleteRole", params(("role_id" = i64, Path)),
    responses((status = 200, body = MessageResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = RoleDeleteForbidden), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove(State(s): State<AdminState>, caller: Caller, Path(id): Path<i64>) -> Result<Response, ApiError> {
    caller.require(RESOURCE, "Delete")?;
    match s.directory.delete_role(&caller.0, id).await {
        Ok(()) => Ok(Json(MessageResponse { message: format!("role {id} deleted") }).into_response()),
        Err(RoleDeleteRefusal::SystemRole) => {
            let body = RoleDeleteForbidden::Plain(PlainError { error: "cannot delete system role".into() });
            Ok((StatusCode::FORBIDDEN, Json(body)).into_response())
        }
        Err(RoleDeleteRefusal::Other(e)) => Err(e.into()),
    }
}
