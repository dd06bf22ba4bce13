//! Response wrappers and query parameters of the management API, as the wire contract names them.

use serde::{Deserialize, Serialize};
use tollgate_core::audit::{AuditLog, ProfileVersion};
use tollgate_core::paging::{MAX_LIMIT, Paging};
use tollgate_core::permissions::Permission;
use tollgate_core::ports::RoleAttachment;
use tollgate_core::profile::AccessProfile;
use tollgate_core::services::api_keys::ApiKey;
use tollgate_core::services::models::{DEFAULT_MODELS_LIMIT, ListedModel, MAX_MODELS_LIMIT, ModelQuery};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessProfileResponse {
    pub access_profile: AccessProfile,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessProfileDetailResponse {
    pub access_profile: AccessProfile,
    pub roles: Vec<RoleAttachment>,
    /// Number of users holding a copy of this template.
    pub user_count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessProfileListResponse {
    pub access_profiles: Vec<AccessProfile>,
    /// Items in this page.
    pub count: u64,
    /// Items matching the filters in all.
    pub total_count: u64,
    /// The page size applied; 0 means no limit.
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionListResponse {
    pub versions: Vec<ProfileVersion>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionResponse {
    pub version: ProfileVersion,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogListResponse {
    pub audit_logs: Vec<AuditLog>,
    pub total_count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub api_key: ApiKey,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedResponse {
    pub api_key: ApiKey,
    /// The full secret. Shown only in this response; send it as `Authorization: Bearer <key>`.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyListResponse {
    pub api_keys: Vec<ApiKey>,
    pub count: u64,
    pub total_count: u64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionListResponse {
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamedId {
    pub id: u64,
    pub name: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceListResponse {
    pub resources: Vec<NamedId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationListResponse {
    pub operations: Vec<NamedId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    pub status: &'static str,
}

/// Query of the profile list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfileListParams {
    /// Page size, at most 1000; omitted or 0 returns every match.
    #[param(minimum = 0)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Case-insensitive substring of the name or description.
    pub search: Option<String>,
    /// Comma-separated tags; a profile must carry every one.
    pub tags: Option<String>,
    pub is_active: Option<bool>,
}

/// Query of the audit-log lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Page size, at most 1000; omitted or 0 means 100.
    #[param(minimum = 0)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// One of create, update, delete, propagate, attach_role, detach_role, clone, activate, deactivate.
    pub action: Option<String>,
    /// The user an entry concerns.
    pub user_id: Option<String>,
}

/// Query of a paged list searched by name (API keys, MCP clients).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchListParams {
    #[param(minimum = 0)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Case-insensitive substring of the name (an MCP client's id matches too).
    pub search: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelListResponse {
    pub models: Vec<ListedModel>,
    /// Models matching the filters in all, before `limit`.
    pub total: usize,
}

/// Query of the model list. Values are read as text here so that every bad one gets the same
/// clear 400; the document shows their real types.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelListParams {
    /// Case-insensitive substring of the model name.
    pub query: Option<String>,
    /// Exact provider name.
    pub provider: Option<String>,
    /// Comma-separated provider key ids; a model must be served by at least one of them.
    pub keys: Option<String>,
    /// How many models to return, 1 to 1000 (default 5); `total` counts every match.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Also list the pricing catalog's models of every configured provider.
    #[param(value_type = Option<bool>)]
    pub unfiltered: Option<String>,
}

impl ModelListParams {
    /// The checked listing request; an empty `query`, `provider` or `keys` filters nothing.
    pub fn checked(self) -> Result<ModelQuery, ApiError> {
        let limit = match self.limit.as_deref().map(str::trim) {
            None => DEFAULT_MODELS_LIMIT,
            Some(text) => text.parse::<usize>().ok().filter(|l| (1..=MAX_MODELS_LIMIT).contains(l)).ok_or_else(|| {
                ApiError::bad_request(format!("limit must be a whole number from 1 to {MAX_MODELS_LIMIT}, got '{text}'"))
                    .with_param("limit")
            })?,
        };
        let unfiltered = match self.unfiltered.as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(text) => {
                return Err(ApiError::bad_request(format!("unfiltered must be true or false, got '{text}'")).with_param("unfiltered"));
            }
        };
        let keys = self.keys.unwrap_or_default().split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect();
        Ok(ModelQuery {
            query: self.query.filter(|q| !q.is_empty()),
            provider: self.provider.filter(|p| !p.is_empty()),
            keys,
            limit,
            unfiltered,
        })
    }
}

/// Checks `limit`/`offset`: negative values are refused, 0 or no limit means every row, and
/// a limit above the maximum is lowered to it.
pub fn paging(limit: Option<i64>, offset: Option<i64>) -> Result<Paging, ApiError> {
    let limit = match limit {
        Some(l) if l < 0 => return Err(ApiError::bad_request("limit must not be negative").with_param("limit")),
        None | Some(0) => None,
        Some(l) => Some(u32::try_from(l).unwrap_or(MAX_LIMIT).min(MAX_LIMIT)),
    };
    let offset = match offset {
        Some(o) if o < 0 => return Err(ApiError::bad_request("offset must not be negative").with_param("offset")),
        Some(o) => u32::try_from(o).map_err(|_| ApiError::bad_request("offset is too large").with_param("offset"))?,
        None => 0,
    };
    Ok(Paging { limit, offset })
}

pub fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
