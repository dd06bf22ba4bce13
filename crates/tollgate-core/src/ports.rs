//! The storage ports: what the services need from a database, implemented by `tollgate-store`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::alerts::AlertStore;
use crate::api_key::ApiKey;
use crate::audit::{AuditLog, AuditQuery, NewAuditEntry, NewVersion, ProfileVersion};
use crate::directory::DirectoryStore;
use crate::ids::{ApiKeyId, ProfileId, Sequence};
use crate::logs::LogStore;
use crate::mcp_clients::McpStore;
use crate::paging::{Page, Paging};
use crate::profile::AccessProfile;
use crate::providers::ProviderStore;
use crate::rotation::RotationStore;
pub use crate::store_error::StoreError;

/// Filters of the profile list.
#[derive(Debug, Clone, Default)]
pub struct ProfileFilter {
    /// Case-insensitive substring of the name or description.
    pub search: Option<String>,
    /// Profiles carrying every one of these tags.
    pub tags: Vec<String>,
    pub is_active: Option<bool>,
    pub paging: Paging,
}

/// Outcome of a guarded delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// Refused: this many user copies still derive from the template.
    HasCopies(u64),
}

/// A role a profile is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RoleAttachment {
    pub id: i64,
    pub access_profile_id: i64,
    pub role_id: i64,
    pub role_name: String,
    pub is_default: bool,
}

/// The stored admin credential (only ever a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCredential {
    pub username: String,
    pub password_hash: String,
}

#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Hands out `n` new ids of a sequence (gaps are fine, reuse never happens).
    async fn next_ids(&self, sequence: Sequence, n: u32) -> Result<Vec<i64>, StoreError>;
    async fn list_profiles(&self, filter: &ProfileFilter) -> Result<Page<AccessProfile>, StoreError>;
    async fn get_profile(&self, id: ProfileId) -> Result<Option<AccessProfile>, StoreError>;
    /// Inserts a template with its first version and audit entry, in one transaction.
    async fn insert_profile(&self, profile: &AccessProfile, version: &NewVersion, audit: &NewAuditEntry) -> Result<(), StoreError>;
    /// Replaces a template if its stored version is still `expected_version`, recording the
    /// new version and the audit entry in the same transaction; `Stale` otherwise.
    async fn update_profile(
        &self,
        expected_version: i64,
        profile: &AccessProfile,
        version: &NewVersion,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Deletes a template unless user copies derive from it, atomically.
    async fn delete_profile(&self, id: ProfileId, audit: &NewAuditEntry) -> Result<DeleteOutcome, StoreError>;
    async fn copy_count(&self, id: ProfileId) -> Result<u64, StoreError>;
    async fn role_attachments(&self, id: ProfileId) -> Result<Vec<RoleAttachment>, StoreError>;
    async fn list_versions(&self, id: ProfileId) -> Result<Vec<ProfileVersion>, StoreError>;
    async fn get_version(&self, id: ProfileId, version: i64) -> Result<Option<ProfileVersion>, StoreError>;
    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditLog>, StoreError>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<(), StoreError>;
    async fn list_api_keys(&self, search: Option<&str>, paging: Paging) -> Result<Page<ApiKey>, StoreError>;
    async fn get_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError>;
    /// Writes every mutable member of `key`; false when it no longer exists.
    async fn update_api_key(&self, key: &ApiKey) -> Result<bool, StoreError>;
    async fn delete_api_key(&self, id: ApiKeyId) -> Result<bool, StoreError>;
    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// Records a successful use, at most about once a minute per key.
    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<(), StoreError>;
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    async fn admin_credential(&self) -> Result<Option<AdminCredential>, StoreError>;
    async fn set_admin_credential(&self, credential: &AdminCredential) -> Result<(), StoreError>;
    /// Answers once the database accepts queries.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Everything the management plane needs from storage.
pub trait Store:
    ProfileStore + ApiKeyStore + AdminStore + DirectoryStore + ProviderStore + RotationStore + McpStore + LogStore + AlertStore
{
}

impl<T: ProfileStore + ApiKeyStore + AdminStore + DirectoryStore + ProviderStore + RotationStore + McpStore + LogStore + AlertStore> Store
    for T
{
}
