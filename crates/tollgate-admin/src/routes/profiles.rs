//! Handlers of the access-profile template endpoints; each checks the permission, then calls
//! the profile service. Paths are relative to either path family.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use tollgate_core::audit::{AuditAction, AuditQuery};
use tollgate_core::ids::ProfileId;
use tollgate_core::input::{CloneProfileRequest, CreateProfileRequest, UpdateProfileRequest};
use tollgate_core::paging::Paging;
use tollgate_core::ports::ProfileFilter;

use crate::AdminState;
use crate::dto::{
    AccessProfileDetailResponse, AccessProfileListResponse, AccessProfileResponse, AuditLogListResponse, AuditParams, MessageResponse,
    ProfileListParams, VersionListResponse, VersionResponse, count, paging,
};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Body, Caller, Path, Query, profile_id};

const RESOURCE: &str = "AccessProfiles";

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/audit-logs", get(all_audit_logs))
        .route("/{profile_id}", get(detail).put(update).delete(remove))
        .route("/{profile_id}/activate", put(activate))
        .route("/{profile_id}/deactivate", put(deactivate))
        .route("/{profile_id}/clone", axum::routing::post(clone_profile))
        .route("/{profile_id}/versions", get(versions))
        .route("/{profile_id}/versions/{version}", get(version))
        .route("/{profile_id}/audit-logs", get(profile_audit_logs))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list,
    create,
    all_audit_logs,
    detail,
    update,
    remove,
    activate,
    deactivate,
    clone_profile,
    versions,
    version,
    profile_audit_logs
))]
pub(crate) struct ProfileDoc;

/// Lists templates, filtered and paged.
#[utoipa::path(get, path = "/api/governance/access-profiles", tag = "Access Profiles", operation_id = "listAccessProfiles",
    params(ProfileListParams),
    responses((status = 200, body = AccessProfileListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn list(
    State(s): State<AdminState>,
    caller: Caller,
    Query(q): Query<ProfileListParams>,
) -> Result<Json<AccessProfileListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    let paging = paging(q.limit, q.offset)?;
    let tags = q.tags.unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect();
    let filter = ProfileFilter { search: q.search.map(|s| s.trim().to_owned()), tags, is_active: q.is_active, paging };
    let page = s.profiles.list(&filter).await?;
    Ok(Json(AccessProfileListResponse {
        count: count(page.items.len()),
        access_profiles: page.items,
        total_count: page.total,
        limit: paging.limit.unwrap_or(0),
        offset: paging.offset,
    }))
}

/// Creates a template; it starts inactive.
#[utoipa::path(post, path = "/api/governance/access-profiles", tag = "Access Profiles", operation_id = "createAccessProfile",
    request_body = CreateProfileRequest,
    responses((status = 201, body = AccessProfileResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse), (status = 413, body = ErrorResponse),
        (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn create(
    State(s): State<AdminState>,
    caller: Caller,
    Body(req): Body<CreateProfileRequest>,
) -> Result<(StatusCode, Json<AccessProfileResponse>), ApiError> {
    caller.require(RESOURCE, "Create")?;
    let access_profile = s.profiles.create(&caller.0, req).await?;
    Ok((StatusCode::CREATED, Json(AccessProfileResponse { access_profile })))
}

/// One template with its role attachments and the number of users holding a copy.
#[utoipa::path(get, path = "/api/governance/access-profiles/{profile_id}", tag = "Access Profiles", operation_id = "getAccessProfile",
    params(("profile_id" = u64, Path)),
    responses((status = 200, body = AccessProfileDetailResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn detail(State(s): State<AdminState>, caller: Caller, Path(id): Path<u64>) -> Result<Json<AccessProfileDetailResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    let d = s.profiles.detail(profile_id(id)).await?;
    Ok(Json(AccessProfileDetailResponse { access_profile: d.profile, roles: d.roles, user_count: d.user_count }))
}

/// Partial update: absent members keep their value, `null` clears where allowed.
#[utoipa::path(put, path = "/api/governance/access-profiles/{profile_id}", tag = "Access Profiles", operation_id = "updateAccessProfile",
    params(("profile_id" = u64, Path)), request_body = UpdateProfileRequest,
    responses((status = 200, body = AccessProfileResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn update(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<u64>,
    Body(req): Body<UpdateProfileRequest>,
) -> Result<Json<AccessProfileResponse>, ApiError> {
    caller.require(RESOURCE, "Update")?;
    let access_profile = s.profiles.update(&caller.0, profile_id(id), req).await?;
    Ok(Json(AccessProfileResponse { access_profile }))
}

/// Deletes a template; refused with 409 while any user holds a copy.
#[utoipa::path(delete, path = "/api/governance/access-profiles/{profile_id}", tag = "Access Profiles", operation_id = "deleteAccessProfile",
    params(("profile_id" = u64, Path)),
    responses((status = 200, body = MessageResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn remove(State(s): State<AdminState>, caller: Caller, Path(id): Path<u64>) -> Result<Json<MessageResponse>, ApiError> {
    caller.require(RESOURCE, "Delete")?;
    s.profiles.delete(&caller.0, profile_id(id)).await?;
    Ok(Json(MessageResponse { message: format!("access profile {id} deleted") }))
}

async fn set_active(s: &AdminState, caller: &Caller, id: u64, active: bool) -> Result<Json<AccessProfileResponse>, ApiError> {
    caller.require(RESOURCE, "Update")?;
    let access_profile = s.profiles.set_active(&caller.0, profile_id(id), active).await?;
    Ok(Json(AccessProfileResponse { access_profile }))
}

/// Activates a template (idempotent).
#[utoipa::path(put, path = "/api/governance/access-profiles/{profile_id}/activate", tag = "Access Profiles", operation_id = "activateAccessProfile",
    params(("profile_id" = u64, Path)),
    responses((status = 200, body = AccessProfileResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn activate(State(s): State<AdminState>, caller: Caller, Path(id): Path<u64>) -> Result<Json<AccessProfileResponse>, ApiError> {
    set_active(&s, &caller, id, true).await
}

/// Deactivates a template (idempotent); existing user copies are kept.
#[utoipa::path(put, path = "/api/governance/access-profiles/{profile_id}/deactivate", tag = "Access Profiles", operation_id = "deactivateAccessProfile",
    params(("profile_id" = u64, Path)),
    responses((status = 200, body = AccessProfileResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn deactivate(State(s): State<AdminState>, caller: Caller, Path(id): Path<u64>) -> Result<Json<AccessProfileResponse>, ApiError> {
    set_active(&s, &caller, id, false).await
}

/// Copies a template's policy into a new, inactive template without roles or user copies.
#[utoipa::path(post, path = "/api/governance/access-profiles/{profile_id}/clone", tag = "Access Profiles", operation_id = "cloneAccessProfile",
    params(("profile_id" = u64, Path)), request_body = CloneProfileRequest,
    responses((status = 201, body = AccessProfileResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
        (status = 413, body = ErrorResponse), (status = 415, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn clone_profile(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<u64>,
    Body(req): Body<CloneProfileRequest>,
) -> Result<(StatusCode, Json<AccessProfileResponse>), ApiError> {
    caller.require(RESOURCE, "Create")?;
    let access_profile = s.profiles.clone_profile(&caller.0, profile_id(id), req).await?;
    Ok((StatusCode::CREATED, Json(AccessProfileResponse { access_profile })))
}

/// Every saved version of a template, newest first.
#[utoipa::path(get, path = "/api/governance/access-profiles/{profile_id}/versions", tag = "Access Profiles", operation_id = "listAccessProfileVersions",
    params(("profile_id" = u64, Path)),
    responses((status = 200, body = VersionListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn versions(State(s): State<AdminState>, caller: Caller, Path(id): Path<u64>) -> Result<Json<VersionListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(VersionListResponse { versions: s.profiles.versions(profile_id(id)).await? }))
}

/// One version; `snapshot` is the template at that version as JSON text.
#[utoipa::path(get, path = "/api/governance/access-profiles/{profile_id}/versions/{version}", tag = "Access Profiles", operation_id = "getAccessProfileVersion",
    params(("profile_id" = u64, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn version(
    State(s): State<AdminState>,
    caller: Caller,
    Path((id, version)): Path<(u64, i64)>,
) -> Result<Json<VersionResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    Ok(Json(VersionResponse { version: s.profiles.version(profile_id(id), version).await? }))
}

fn audit_query(profile: Option<ProfileId>, q: AuditParams) -> Result<AuditQuery, ApiError> {
    let action = match q.action.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(AuditAction::parse(a).ok_or_else(|| ApiError::bad_request(format!("unknown action '{a}'")).with_param("action"))?),
    };
    let Paging { limit, offset } = paging(q.limit, q.offset)?;
    Ok(AuditQuery { profile_id: profile, action, user_id: q.user_id.filter(|u| !u.is_empty()), paging: Paging { limit, offset } })
}

async fn audit_page(s: &AdminState, query: AuditQuery) -> Result<Json<AuditLogListResponse>, ApiError> {
    let page = s.profiles.audit_logs(&query).await?;
    Ok(Json(AuditLogListResponse { audit_logs: page.items, total_count: page.total }))
}

/// Audit entries of every profile, newest first (100 per page unless `limit` says otherwise).
#[utoipa::path(get, path = "/api/governance/access-profiles/audit-logs", tag = "Access Profiles", operation_id = "listAccessProfileAuditLogs",
    params(AuditParams),
    responses((status = 200, body = AuditLogListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn all_audit_logs(
    State(s): State<AdminState>,
    caller: Caller,
    Query(q): Query<AuditParams>,
) -> Result<Json<AuditLogListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    audit_page(&s, audit_query(None, q)?).await
}

/// Audit entries of one profile, also after it was deleted.
#[utoipa::path(get, path = "/api/governance/access-profiles/{profile_id}/audit-logs", tag = "Access Profiles", operation_id = "listAccessProfileAuditLogsById",
    params(("profile_id" = u64, Path), AuditParams),
    responses((status = 200, body = AuditLogListResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn profile_audit_logs(
    State(s): State<AdminState>,
    caller: Caller,
    Path(id): Path<u64>,
    Query(q): Query<AuditParams>,
) -> Result<Json<AuditLogListResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    audit_page(&s, audit_query(Some(profile_id(id)), q)?).await
}
