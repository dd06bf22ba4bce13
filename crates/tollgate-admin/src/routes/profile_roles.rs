//! Handlers that take a template to people: attach and detach roles, propagate to copies.
//! Paths are relative to either access-profile path family.

use axum::extract::State;
use axum::routing::{delete, post};
use axum::{Json, Router};
use tollgate_core::services::assignments::{AttachRolesRequest, AttachRolesResponse, PropagateRequest, PropagateResponse};

use crate::AdminState;
use crate::dto::MessageResponse;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, Path, profile_id};

const RESOURCE: &str = "AccessProfiles";

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/{profile_id}/roles", post(attach))
        .route("/{profile_id}/roles/{role_id}", delete(detach))
        .route("/{profile_id}/propagate", post(propagate))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(attach, detach, propagate))]
pub(crate) struct ProfileRoleDoc;

/// Attaches roles; `is_default` provisions future members, `apply_to_existing` current ones.
#[utoipa::path(post, path = "/api/governance/access-profiles/{profile_id}/roles", tag = "Access Profiles", operation_id = "attachRolesToAccessProfile",
    params(("profile_id" = u64, Path)), request_body = AttachRolesRequest,
    responses((status = 200, body = AttachRolesResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn attach(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<u64>,
    Body(req): Body<AttachRolesRequest>,
) -> Result<Json<AttachRolesResponse>, ApiError> {
    caller.require(RESOURCE, "Create")?;
    Ok(Json(s.assignments.attach_roles(&caller.0, profile_id(id), req).await?))
}

/// Detaches a role; the copies it produced are removed with their keys.
#[utoipa::path(delete, path = "/api/governance/access-profiles/{profile_id}/roles/{role_id}", tag = "Access Profiles",
    operation_id = "detachRoleFromAccessProfile", params(("profile_id" = u64, Path), ("role_id" = i64, Path)),
    responses((status = 200, body = MessageResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn detach(
    State(s): State<AdminState>,
    caller: Caller,
    Path((id, role)): Path<(u64, i64)>,
) -> Result<Json<MessageResponse>, ApiError> {
    caller.require(RESOURCE, "Delete")?;
    let removed = s.assignments.detach_role(&caller.0, profile_id(id), role).await?;
    Ok(Json(MessageResponse { message: format!("role {role} detached; {removed} user copy(ies) removed") }))
}

/// Copies the chosen field groups of the template to user copies (all or nothing).
#[utoipa::path(post, path = "/api/governance/access-profiles/{profile_id}/propagate", tag = "Access Profiles", operation_id = "propagateAccessProfile",
    params(("profile_id" = u64, Path)), request_body = PropagateRequest,
    responses((status = 200, body = PropagateResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn propagate(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<u64>,
    Body(req): Body<PropagateRequest>,
) -> Result<Json<PropagateResponse>, ApiError> {
    caller.require(RESOURCE, "Create")?;
    Ok(Json(s.assignments.propagate(&caller.0, profile_id(id), req).await?))
}
