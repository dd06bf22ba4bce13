//! A management API key as the API serves it (`bfst-…`); its secret is never part of it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::ApiKeyId;

/// A management API key as served; the secret itself is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    /// Display-only start of the value, e.g. `bfst-A1b2C3d4...`.
    pub key_prefix: String,
    pub description: Option<String>,
    /// Permission ids (see `GET /api/governance/rbac/permissions`).
    pub scopes: Vec<u64>,
    pub created_by_user_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
