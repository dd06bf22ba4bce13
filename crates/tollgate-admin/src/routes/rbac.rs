//! The permission catalogue that API-key scopes refer to, on both path families.

use axum::routing::get;
use axum::{Json, Router};
use tollgate_core::permissions::{OPERATIONS, Permission, RESOURCES};

use crate::AdminState;
use crate::dto::{NamedId, OperationListResponse, PermissionListResponse, ResourceListResponse};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::Caller;

pub(crate) fn routes() -> Router<AdminState> {
    let mut router = Router::new();
    for prefix in ["/governance/rbac", ""] {
        router = router
            .route(&format!("{prefix}/permissions"), get(permissions))
            .route(&format!("{prefix}/resources"), get(resources))
            .route(&format!("{prefix}/operations"), get(operations));
    }
    router
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(permissions, resources, operations))]
pub(crate) struct RbacDoc;

/// Every grantable `Resource:Operation` pair with its stable id.
#[utoipa::path(get, path = "/api/governance/rbac/permissions", tag = "RBAC", operation_id = "listPermissions",
    responses((status = 200, body = PermissionListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
async fn permissions(caller: Caller) -> Result<Json<PermissionListResponse>, ApiError> {
    caller.require("RBAC", "View")?;
    Ok(Json(PermissionListResponse { permissions: Permission::all().collect() }))
}

fn named(names: &[&'static str]) -> Vec<NamedId> {
    (1u64..).zip(names.iter()).map(|(id, name)| NamedId { id, name }).collect()
}

/// The resources of the catalogue.
#[utoipa::path(get, path = "/api/governance/rbac/resources", tag = "RBAC", operation_id = "listResources",
    responses((status = 200, body = ResourceListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
async fn resources(caller: Caller) -> Result<Json<ResourceListResponse>, ApiError> {
    caller.require("RBAC", "View")?;
    Ok(Json(ResourceListResponse { resources: named(&RESOURCES) }))
}

/// The operations of the catalogue.
#[utoipa::path(get, path = "/api/governance/rbac/operations", tag = "RBAC", operation_id = "listOperations",
    responses((status = 200, body = OperationListResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
async fn operations(caller: Caller) -> Result<Json<OperationListResponse>, ApiError> {
    caller.require("RBAC", "View")?;
    Ok(Json(OperationListResponse { operations: named(&OPERATIONS) }))
}
