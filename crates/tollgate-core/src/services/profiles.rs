//! Access-profile template use cases: list, create, read, update, delete, (de)activate, clone,
//! versions and audit logs. Every change bumps the version once and is audited with its actor.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::apply::{self, UPDATE_CAPS};
use crate::audit::{AuditAction, AuditLog, AuditQuery, NewAuditEntry, NewVersion, ProfileVersion};
use crate::auth::Principal;
use crate::error::CoreError;
use crate::ids::{ProfileId, ProviderConfigId, Sequence};
use crate::input::{CloneProfileRequest, CreateProfileRequest, UpdateProfileRequest};
use crate::paging::Page;
use crate::ports::{DeleteOutcome, ProfileFilter, RoleAttachment, Store, StoreError};
use crate::profile::AccessProfile;
use crate::services::MAX_WRITE_ATTEMPTS;

/// A template with the roles it is attached to and how many users hold a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileDetail {
    pub profile: AccessProfile,
    pub roles: Vec<RoleAttachment>,
    pub user_count: u64,
}

#[derive(Clone)]
pub struct ProfileService {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for ProfileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileService").finish_non_exhaustive()
    }
}

fn not_found(id: ProfileId) -> CoreError {
    CoreError::NotFound(format!("access profile {id} not found"))
}

fn name_taken(name: &str) -> CoreError {
    CoreError::Conflict(format!("an access profile named '{name}' already exists"))
}

impl ProfileService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn list(&self, filter: &ProfileFilter) -> Result<Page<AccessProfile>, CoreError> {
        Ok(self.store.list_profiles(filter).await?)
    }

    pub async fn get(&self, id: ProfileId) -> Result<AccessProfile, CoreError> {
        self.store.get_profile(id).await?.ok_or_else(|| not_found(id))
    }

    pub async fn detail(&self, id: ProfileId) -> Result<ProfileDetail, CoreError> {
        let profile = self.get(id).await?;
        let roles = self.store.role_attachments(id).await?;
        let user_count = self.store.copy_count(id).await?;
        Ok(ProfileDetail { profile, roles, user_count })
    }

    pub async fn create(&self, actor: &Principal, req: CreateProfileRequest) -> Result<AccessProfile, CoreError> {
        let id = self.fresh_profile_id().await?;
        let fresh = self.fresh_config_ids(req.provider_configs.as_ref().map_or(0, Vec::len)).await?;
        let profile = apply::created(id, req, crate::clock::now(), &mut fresh.into_iter())?;
        let audit = entry(actor, AuditAction::Create, &profile, None, Some(profile.snapshot()), &json!({"version": 1}));
        match self.store.insert_profile(&profile, &version_of(&profile, actor), &audit).await {
            Err(StoreError::Duplicate) => Err(name_taken(&profile.name)),
            other => other.map(|()| profile).map_err(Into::into),
        }
    }

    pub async fn update(&self, actor: &Principal, id: ProfileId, req: UpdateProfileRequest) -> Result<AccessProfile, CoreError> {
        let configs = req.provider_configs.as_ref().map_or(0, Vec::len);
        // The same fresh ids serve every attempt: an attempt that lost the race wrote nothing.
        let fresh = self.fresh_config_ids(configs).await?;
        self.write(actor, id, AuditAction::Update, |current| {
            apply::updated(current, req.clone(), UPDATE_CAPS, crate::clock::now(), &mut fresh.iter().copied())
        })
        .await
    }

    pub async fn set_active(&self, actor: &Principal, id: ProfileId, active: bool) -> Result<AccessProfile, CoreError> {
        let action = if active { AuditAction::Activate } else { AuditAction::Deactivate };
        self.write(actor, id, action, |current| Ok(AccessProfile { is_active: active, ..current.clone() })).await
    }

    pub async fn delete(&self, actor: &Principal, id: ProfileId) -> Result<(), CoreError> {
        let profile = self.get(id).await?;
        let audit = entry(actor, AuditAction::Delete, &profile, Some(profile.snapshot()), None, &json!({"version": profile.version}));
        match self.store.delete_profile(id, &audit).await? {
            DeleteOutcome::Deleted => Ok(()),
            DeleteOutcome::NotFound => Err(not_found(id)),
            DeleteOutcome::HasCopies(n) => Err(CoreError::Conflict(format!(
                "access profile {id} is still held by {n} user(s); detach its roles or remove the user assignments first"
            ))),
        }
    }

    pub async fn clone_profile(
        &self,
        actor: &Principal,
        source_id: ProfileId,
        req: CloneProfileRequest,
    ) -> Result<AccessProfile, CoreError> {
        let source = self.get(source_id).await?;
        let id = self.fresh_profile_id().await?;
        let fresh = self.fresh_config_ids(source.policy.provider_configs.len()).await?;
        let profile = apply::cloned(&source, id, req, crate::clock::now(), &mut fresh.into_iter())?;
        let metadata = json!({"version": 1, "source_profile_id": source_id.0, "source_version": source.version});
        let audit = entry(actor, AuditAction::Clone, &profile, None, Some(profile.snapshot()), &metadata);
        match self.store.insert_profile(&profile, &version_of(&profile, actor), &audit).await {
            Err(StoreError::Duplicate) => Err(name_taken(&profile.name)),
            other => other.map(|()| profile).map_err(Into::into),
        }
    }

    pub async fn versions(&self, id: ProfileId) -> Result<Vec<ProfileVersion>, CoreError> {
        self.get(id).await?;
        Ok(self.store.list_versions(id).await?)
    }

    pub async fn version(&self, id: ProfileId, version: i64) -> Result<ProfileVersion, CoreError> {
        self.store
            .get_version(id, version)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("version {version} of access profile {id} not found")))
    }

    pub async fn audit_logs(&self, query: &AuditQuery) -> Result<Page<AuditLog>, CoreError> {
        Ok(self.store.list_audit(query).await?)
    }

    /// Read, change, compare-and-swap; retried when a concurrent writer won, so no edit is lost
    /// and each change bumps the version exactly once. A change that alters nothing is not saved.
    async fn write<F>(&self, actor: &Principal, id: ProfileId, action: AuditAction, mut change: F) -> Result<AccessProfile, CoreError>
    where
        F: FnMut(&AccessProfile) -> Result<AccessProfile, CoreError> + Send,
    {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.get(id).await?;
            let mut next = change(&current)?;
            if !current.differs_in_content(&next) {
                return Ok(current);
            }
            next.version = current.version + 1;
            next.updated_at = crate::clock::now();
            let (before, after) = changed_members(&current, &next);
            let audit = entry(actor, action, &next, Some(before), Some(after), &json!({"version": next.version}));
            match self.store.update_profile(current.version, &next, &version_of(&next, actor), &audit).await {
                Ok(()) => return Ok(next),
                Err(StoreError::Stale) => {}
                Err(StoreError::Duplicate) => return Err(name_taken(&next.name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Unavailable(format!("profile {id} kept changing under {MAX_WRITE_ATTEMPTS} attempts")))
    }

    async fn fresh_profile_id(&self) -> Result<ProfileId, CoreError> {
        let ids = self.store.next_ids(Sequence::Profile, 1).await?;
        ids.first().copied().map(ProfileId).ok_or_else(|| CoreError::Internal("id sequence returned nothing".into()))
    }

    async fn fresh_config_ids(&self, n: usize) -> Result<Vec<ProviderConfigId>, CoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let n = u32::try_from(n).map_err(|_| CoreError::invalid("provider_configs", "too many provider configs"))?;
        let ids = self.store.next_ids(Sequence::ProviderConfig, n).await?;
        Ok(ids.into_iter().map(ProviderConfigId).collect())
    }
}

fn version_of(profile: &AccessProfile, actor: &Principal) -> NewVersion {
    NewVersion {
        profile_id: profile.id,
        version: profile.version,
        name: profile.name.clone(),
        description: profile.description.clone(),
        snapshot: profile.snapshot(),
        changed_by: actor.actor(),
        created_at: profile.updated_at,
    }
}

fn entry(
    actor: &Principal,
    action: AuditAction,
    profile: &AccessProfile,
    previous: Option<String>,
    new: Option<String>,
    metadata: &Value,
) -> NewAuditEntry {
    NewAuditEntry {
        profile_id: Some(profile.id),
        user_id: None,
        actor: actor.actor(),
        action,
        previous_values: previous,
        new_values: new,
        metadata: Some(metadata.to_string()),
        created_at: crate::clock::now(),
    }
}

/// The top-level members that differ between two versions, before and after, as JSON text.
fn changed_members(before: &AccessProfile, after: &AccessProfile) -> (String, String) {
    let as_map = |p: &AccessProfile| match serde_json::to_value(p) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let (old, new) = (as_map(before), as_map(after));
    let mut prev = Map::new();
    let mut next = Map::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        if matches!(key.as_str(), "version" | "updated_at") {
            continue;
        }
        if old.get(key) != new.get(key) {
            prev.insert(key.clone(), old.get(key).cloned().unwrap_or(Value::Null));
            next.insert(key.clone(), new.get(key).cloned().unwrap_or(Value::Null));
        }
    }
    (Value::Object(prev).to_string(), Value::Object(next).to_string())
}
