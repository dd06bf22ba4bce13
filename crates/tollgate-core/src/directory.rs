//! The directory port: reads of users, roles, copies and keys, and `apply`, which writes a
//! planned list of changes in one transaction. Guarded writes that miss fail the whole plan.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::{NewAuditEntry, NewVersion};
use crate::copies::UserCopy;
use crate::ids::{BudgetId, ProfileId, RateLimitId};
use crate::overrides::BudgetOverride;
pub use crate::overrides::BudgetUsage;
use crate::paging::Page;
use crate::profile::AccessProfile;
use crate::rotation::KeyRotation;
use crate::store_error::StoreError;
use crate::users::{Role, User};
use crate::vkeys::VirtualKey;

/// One change of a plan. `apply` runs a plan's changes in order, in one transaction; a guarded
/// change that matches no row makes the whole plan fail with `StoreError::Stale`.
#[derive(Debug, Clone)]
pub enum Write {
    InsertUser(User),
    /// Guarded: the user exists.
    DeleteUser(String),
    /// Guarded: the user exists.
    SetUserRole {
        user_id: String,
        role_id: Option<i64>,
    },
    InsertRole(Role),
    /// Guarded: the role exists.
    UpdateRole(Role),
    /// Guarded: the role exists and no user holds it.
    DeleteRole(i64),
    /// Makes `role_id` point at `profile_id` (insert or update); `is_default` clears any other
    /// default of the role first.
    Attach {
        profile_id: ProfileId,
        role_id: i64,
        is_default: bool,
    },
    /// Guarded: the attachment exists.
    Detach {
        profile_id: ProfileId,
        role_id: i64,
    },
    InsertCopy(UserCopy),
    /// Guarded: the copy is still at `expected_version`.
    UpdateCopy {
        copy: UserCopy,
        expected_version: i64,
    },
    /// Guarded: the copy exists. Removes its overrides and usage rows too.
    DeleteCopy(i64),
    /// The sealed value and hash travel with the key; the value itself never does.
    InsertKey {
        key: VirtualKey,
        value_hash: String,
        value_sealed: String,
    },
    /// Guarded: the key exists.
    DeleteKey(String),
    /// Guarded: the key exists.
    RenameKey {
        id: String,
        name: String,
        description: Option<String>,
    },
    /// Guarded: the key exists. Whether it works, and until when.
    SetKeyLifecycle {
        id: String,
        is_active: bool,
        expires_at: Option<DateTime<Utc>>,
    },
    /// Guarded: the key's current value is still the one rotated from, so of two instances
    /// rotating one key exactly one succeeds.
    RotateKey(KeyRotation),
    /// Guarded: the profile's next rotation is still `expected_next` (one instance advances it).
    AdvanceRotation {
        profile_id: ProfileId,
        expected_next: DateTime<Utc>,
        next: DateTime<Utc>,
        finished: DateTime<Utc>,
    },
    SetOverride(BudgetOverride),
    DeleteOverride(BudgetId),
    /// The line is gone: its stored usage goes too.
    ResetBudgetUsage(BudgetId),
    ResetRateLimitUsage(RateLimitId),
    /// The line continues from zero: a new window starts `at`, which the data plane adopts on its
    /// next reload (a stored window newer than its own replaces its counter).
    ZeroBudgetUsage {
        id: BudgetId,
        at: DateTime<Utc>,
    },
    ZeroRateLimitUsage {
        id: RateLimitId,
        at: DateTime<Utc>,
    },
    /// Guarded: the profile is still at `expected_version`.
    UpdateProfile {
        profile: AccessProfile,
        expected_version: i64,
        version: NewVersion,
    },
    Audit(NewAuditEntry),
}

/// Stored usage of a rate limit: tokens and requests, each with the start of its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitUsage {
    pub tokens: u64,
    pub token_window: DateTime<Utc>,
    pub requests: u64,
    pub request_window: DateTime<Utc>,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Users matching `search` (name or e-mail), `limit` per page, page numbers from 1.
    async fn list_users(&self, search: Option<&str>, page: u32, limit: u32) -> Result<Page<User>, StoreError>;
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// The user whose e-mail equals `email` ignoring case and surrounding spaces.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError>;
    async fn get_role(&self, id: i64) -> Result<Option<Role>, StoreError>;
    async fn role_by_name(&self, name: &str) -> Result<Option<Role>, StoreError>;
    async fn role_member_ids(&self, role_id: i64) -> Result<Vec<String>, StoreError>;
    /// The role's members, read in one query (ordered by id).
    async fn role_members(&self, role_id: i64) -> Result<Vec<User>, StoreError>;
    /// The profile a role provisions to its members, if any.
    async fn role_default_profile(&self, role_id: i64) -> Result<Option<ProfileId>, StoreError>;
    /// Profiles the role is attached to.
    async fn profiles_of_role(&self, role_id: i64) -> Result<Vec<ProfileId>, StoreError>;
    async fn attachment_exists(&self, profile_id: ProfileId, role_id: i64) -> Result<bool, StoreError>;
    async fn copies_of_user(&self, user_id: &str) -> Result<Vec<UserCopy>, StoreError>;
    async fn copies_of_profile(&self, profile_id: ProfileId) -> Result<Vec<UserCopy>, StoreError>;
    async fn keys_of_user(&self, user_id: &str) -> Result<Vec<VirtualKey>, StoreError>;
    async fn get_key(&self, id: &str) -> Result<Option<VirtualKey>, StoreError>;
    async fn sealed_value(&self, id: &str) -> Result<Option<String>, StoreError>;
    async fn overrides_of_copy(&self, copy_id: i64) -> Result<Vec<BudgetOverride>, StoreError>;
    async fn budget_usage(&self, ids: &[BudgetId]) -> Result<HashMap<BudgetId, BudgetUsage>, StoreError>;
    async fn rate_limit_usage(&self, ids: &[RateLimitId]) -> Result<HashMap<RateLimitId, RateLimitUsage>, StoreError>;
    /// Runs a plan in one transaction.
    async fn apply(&self, plan: &[Write]) -> Result<(), StoreError>;
    /// Stores `value` under `name` unless one is stored; returns the stored value.
    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError>;
}
