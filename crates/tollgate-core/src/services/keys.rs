//! A user's virtual keys (list masked, mint, delete, audited reveal), the edit lock on managed
//! keys, and budget overrides on a user's copy.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::audit::AuditAction;
use crate::auth::Principal;
use crate::copies::{UserCopy, budget_lines};
use crate::directory::Write;
use crate::error::{CoreError, Problems};
use crate::ids::{BudgetId, ProfileId};
use crate::lifecycle::LifecycleChange;
use crate::overrides::{BudgetOverride, BudgetOverrideResponse, OverrideRequest, current_window_start, overridden};
use crate::ports::{Store, StoreError};
use crate::profile::Budget;
use crate::services::directory::user_not_found;
use crate::services::lifecycle::lifecycle_action;
use crate::services::provision::{new_key, user_entry};
use crate::vkeys::{Sealer, UserVirtualKey, VirtualKey, VirtualKeySummary};

/// Body of minting an extra key.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct MintKeyRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A key as `GET /api/governance/virtual-keys/{vk_id}` serves it (value masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ManagedVirtualKey {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub value: String,
    pub is_active: bool,
    /// When the key stops working; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the scheduled rotation last replaced the value; absent: never rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Until when the value before the last rotation still works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_value_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub is_access_profile_managed: bool,
    pub user_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Members of a key update that a managed key accepts (its label and its lifecycle); anything
/// else belongs to the profile.
const EDITABLE: [&str; 4] = ["name", "description", "is_active", "expires_at"];

#[derive(Clone)]
pub struct KeyService {
    store: Arc<dyn Store>,
    sealer: Sealer,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService").finish_non_exhaustive()
    }
}

fn key_not_found(id: &str) -> CoreError {
    CoreError::NotFound(format!("virtual key {id} not found"))
}

fn view(k: &VirtualKey) -> ManagedVirtualKey {
    ManagedVirtualKey {
        id: k.id.clone(),
        name: k.name.clone(),
        description: k.description.clone(),
        value: k.value_masked.clone(),
        is_active: k.is_active,
        expires_at: k.expires_at,
        rotated_at: k.rotated_at,
        previous_value_expires_at: k.previous_value_expires_at,
        is_access_profile_managed: true,
        user_id: k.user_id.clone(),
        created_at: k.created_at,
        updated_at: k.updated_at,
    }
}

impl KeyService {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        Self { store, sealer }
    }

    async fn user_key(&self, user_id: &str, key_id: &str) -> Result<VirtualKey, CoreError> {
        self.store.get_key(key_id).await?.filter(|k| k.user_id == user_id).ok_or_else(|| key_not_found(key_id))
    }

    pub async fn list(&self, user_id: &str) -> Result<Vec<UserVirtualKey>, CoreError> {
        self.store.get_user(user_id).await?.ok_or_else(|| user_not_found(user_id))?;
        let keys = self.store.keys_of_user(user_id).await?;
        Ok(keys
            .iter()
            .map(|k| UserVirtualKey {
                id: k.id.clone(),
                name: k.name.clone(),
                value: k.value_masked.clone(),
                is_access_profile_managed: true,
            })
            .collect())
    }

    /// An extra key for a user who holds at least one profile; its value is in this answer only.
    pub async fn mint(&self, actor: &Principal, user_id: &str, req: MintKeyRequest) -> Result<VirtualKeySummary, CoreError> {
        let user = self.store.get_user(user_id).await?.ok_or_else(|| user_not_found(user_id))?;
        if self.store.copies_of_user(user_id).await?.is_empty() {
            return Err(CoreError::NotFound(format!("user {user_id} holds no access profile")));
        }
        let existing = self.store.keys_of_user(user_id).await?.len();
        let name = match req.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) if n.chars().count() > 255 => return Err(CoreError::invalid("name", "must be at most 255 characters")),
            Some(n) => n.to_owned(),
            None => format!("{} key {}", user.email, existing + 1),
        };
        let description = req.description.filter(|d| !d.trim().is_empty());
        let (write, summary) = new_key(&self.sealer, user_id, None, name, description, crate::clock::now())?;
        let audit = user_entry(actor, AuditAction::MintKey, None, user_id, &json!({"virtual_key_id": summary.id, "name": summary.name}));
        match self.store.apply(&[write, Write::Audit(audit)]).await {
            Ok(()) => Ok(summary),
            Err(StoreError::Duplicate) => Err(CoreError::Conflict(format!("a virtual key named '{}' already exists", summary.name))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, actor: &Principal, user_id: &str, key_id: &str) -> Result<(), CoreError> {
        let key = self.user_key(user_id, key_id).await?;
        let audit = user_entry(actor, AuditAction::DeleteKey, None, user_id, &json!({"virtual_key_id": key.id, "name": key.name}));
        match self.store.apply(&[Write::DeleteKey(key.id.clone()), Write::Audit(audit)]).await {
            Err(StoreError::Stale) => Err(key_not_found(key_id)),
            other => other.map_err(Into::into),
        }
    }

    /// The full value of a key, for handing it to its user. Every reveal is audited.
    pub async fn reveal(&self, actor: &Principal, user_id: &str, key_id: &str) -> Result<VirtualKeySummary, CoreError> {
        let key = self.user_key(user_id, key_id).await?;
        let sealed = self.store.sealed_value(key_id).await?.ok_or_else(|| key_not_found(key_id))?;
        let value = self.sealer.open(&sealed)?;
        let audit = user_entry(actor, AuditAction::RevealKey, None, user_id, &json!({"virtual_key_id": key.id, "name": key.name}));
        self.store.apply(&[Write::Audit(audit)]).await?;
        Ok(VirtualKeySummary { id: key.id, name: key.name, value: value.expose().to_owned() })
    }

    pub async fn get(&self, key_id: &str) -> Result<ManagedVirtualKey, CoreError> {
        self.store.get_key(key_id).await?.map(|k| view(&k)).ok_or_else(|| key_not_found(key_id))
    }

    /// A managed key takes a new name or description, and may be deactivated, reactivated or
    /// given an expiry; what it may do belongs to its profile, so any other member in the body is
    /// refused with 409 and nothing changes.
    pub async fn edit(&self, actor: &Principal, key_id: &str, body: &Value) -> Result<ManagedVirtualKey, CoreError> {
        let key = self.store.get_key(key_id).await?.ok_or_else(|| key_not_found(key_id))?;
        let Value::Object(members) = body else { return Err(CoreError::invalid("", "the body must be a JSON object")) };
        if let Some(locked) = members.keys().find(|m| !EDITABLE.contains(&m.as_str())) {
            return Err(CoreError::Conflict(format!(
                "virtual key {key_id} is managed by an access profile: '{locked}' cannot be changed on the key; edit the profile and propagate instead"
            )));
        }
        let mut problems = Problems::default();
        let name = match members.get("name") {
            None | Some(Value::Null) => key.name.clone(),
            Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => n.trim().to_owned(),
            Some(_) => {
                problems.add("name", "must be a non-empty string of at most 255 characters");
                key.name.clone()
            }
        };
        let description = match members.get("description") {
            None => key.description.clone(),
            Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()).filter(|d| !d.trim().is_empty()),
            Some(_) => {
                problems.add("description", "must be a string");
                key.description.clone()
            }
        };
        let change = LifecycleChange::read(members, crate::clock::now(), &mut problems);
        problems.into_result(())?;
        let (is_active, expires_at) = change.applied_to(key.is_active, key.expires_at);
        let mut plan = vec![Write::RenameKey { id: key.id.clone(), name: name.clone(), description: description.clone() }];
        if (is_active, expires_at) != (key.is_active, key.expires_at) {
            plan.push(Write::SetKeyLifecycle { id: key.id.clone(), is_active, expires_at });
            let metadata = json!({
                "virtual_key_id": key.id,
                "previous": {"is_active": key.is_active, "expires_at": key.expires_at},
                "new": {"is_active": is_active, "expires_at": expires_at},
            });
            plan.push(Write::Audit(user_entry(actor, lifecycle_action(key.is_active, is_active), None, &key.user_id, &metadata)));
        }
        match self.store.apply(&plan).await {
            Ok(()) => Ok(view(&VirtualKey { name, description, is_active, expires_at, updated_at: crate::clock::now(), ..key })),
            Err(StoreError::Duplicate) => Err(CoreError::Conflict(format!("a virtual key named '{name}' already exists"))),
            Err(StoreError::Stale) => Err(key_not_found(key_id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Direct deletion of a managed key is refused: it goes with its copy or through the user.
    pub async fn delete_direct(&self, key_id: &str) -> Result<(), CoreError> {
        let key = self.store.get_key(key_id).await?.ok_or_else(|| key_not_found(key_id))?;
        Err(CoreError::Conflict(format!(
            "virtual key {key_id} is managed by an access profile; delete it through /api/governance/users/{}/access-profiles/virtual-keys/{key_id} or detach the profile",
            key.user_id
        )))
    }

    async fn copy_budget(&self, user_id: &str, profile_id: ProfileId, budget_id: &str) -> Result<(UserCopy, Budget), CoreError> {
        let copy = self
            .store
            .copies_of_user(user_id)
            .await?
            .into_iter()
            .find(|c| c.parent_profile_id == Some(profile_id))
            .ok_or_else(|| CoreError::NotFound(format!("user {user_id} holds no copy of access profile {profile_id}")))?;
        let found = budget_lines(&copy.policy).find(|b| b.id.0 == budget_id).cloned();
        if let Some(budget) = found {
            return Ok((copy, budget));
        }
        let template = self.store.get_profile(profile_id).await?;
        if template.is_some_and(|t| budget_lines(&t.policy).any(|b| b.id.0 == budget_id)) {
            return Err(CoreError::invalid(
                "budget_id",
                "is a budget of the template; override the user's copy of it (ids from GET …/users/{user_id}/access-profiles)",
            ));
        }
        Err(CoreError::NotFound(format!("budget {budget_id} is not a budget of this user's copy")))
    }

    async fn answer(&self, copy: &UserCopy, budget: &Budget) -> Result<BudgetOverrideResponse, CoreError> {
        let grant = self.store.overrides_of_copy(copy.id).await?.into_iter().find(|o| o.budget_id == budget.id);
        let usage = self.store.budget_usage(std::slice::from_ref(&budget.id)).await?.get(&budget.id).copied();
        Ok(overridden(budget, copy.policy.calendar_aligned, usage, grant.as_ref(), crate::clock::now()))
    }

    /// Sets (replaces) the override of one copy budget line, anchored to its current window.
    pub async fn set_override(
        &self,
        actor: &Principal,
        user_id: &str,
        profile_id: ProfileId,
        budget_id: &str,
        req: &OverrideRequest,
    ) -> Result<BudgetOverrideResponse, CoreError> {
        let (amount, cycles) = req.checked()?;
        let (copy, budget) = self.copy_budget(user_id, profile_id, budget_id).await?;
        let now = crate::clock::now();
        let grant = BudgetOverride {
            budget_id: BudgetId(budget_id.to_owned()),
            copy_id: copy.id,
            amount,
            mode: req.mode,
            cycles_total: cycles,
            anchor_reset: current_window_start(&budget, copy.policy.calendar_aligned, now),
            created_at: now,
        };
        let metadata = json!({"budget_id": budget_id, "amount": amount.dollars(), "mode": req.mode, "cycles": cycles});
        let audit = user_entry(actor, AuditAction::SetOverride, Some(profile_id), user_id, &metadata);
        self.store.apply(&[Write::SetOverride(grant), Write::Audit(audit)]).await?;
        self.answer(&copy, &budget).await
    }

    /// Removes the override (idempotent); usage and schedule are untouched.
    pub async fn remove_override(
        &self,
        actor: &Principal,
        user_id: &str,
        profile_id: ProfileId,
        budget_id: &str,
    ) -> Result<BudgetOverrideResponse, CoreError> {
        let (copy, budget) = self.copy_budget(user_id, profile_id, budget_id).await?;
        let had = self.store.overrides_of_copy(copy.id).await?.iter().any(|o| o.budget_id.0 == budget_id);
        if had {
            let audit = user_entry(actor, AuditAction::RemoveOverride, Some(profile_id), user_id, &json!({"budget_id": budget_id}));
            self.store.apply(&[Write::DeleteOverride(BudgetId(budget_id.to_owned())), Write::Audit(audit)]).await?;
        }
        self.answer(&copy, &budget).await
    }
}
