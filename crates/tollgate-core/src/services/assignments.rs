//! Templates reaching people: attaching roles (with defaults and backfill), detaching them,
//! listing and detaching a user's copies, and propagating template fields to copies.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{AuditAction, NewAuditEntry, NewVersion};
use crate::auth::Principal;
use crate::copies::{PropagateField, UserCopy, budget_lines};
use crate::directory::Write;
use crate::error::CoreError;
use crate::ids::ProfileId;
use crate::ids::Sequence;
use crate::ports::{Store, StoreError};
use crate::profile::{AccessProfile, Policy};
use crate::services::MAX_WRITE_ATTEMPTS;
use crate::services::directory::user_not_found;
use crate::services::provision::{plan_copy_as, plan_uncopy, user_entry};
use crate::users::User;
use crate::vkeys::Sealer;

/// Body of `POST …/{profile_id}/roles`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AttachRolesRequest {
    #[schema(min_items = 1)]
    pub role_ids: Vec<i64>,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub apply_to_existing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AttachRolesResponse {
    pub message: String,
    /// Users who received a copy now.
    pub users_applied: u64,
}

/// Body of `POST …/{profile_id}/propagate`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PropagateRequest {
    #[schema(min_items = 1)]
    pub fields: Vec<PropagateField>,
    #[serde(default)]
    pub dry_run: bool,
    /// Only these users; empty or omitted means every holder of a copy.
    #[serde(default)]
    pub user_ids: Option<Vec<String>>,
    /// Only members of these roles (role ids as strings); combined with `user_ids` by AND.
    #[serde(default)]
    pub group_ids: Option<Vec<String>>,
    #[serde(default)]
    pub reset_usage: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PropagateResponse {
    /// Copies changed (or, on a dry run, that would change).
    pub affected_users: u64,
    pub failed_users: u64,
    /// Selected users whose copy already matched, or who hold no copy of this profile.
    pub skipped_users: u64,
    /// The affected users.
    pub user_ids: Vec<String>,
    pub fields: Vec<PropagateField>,
    pub applied: bool,
    pub vk_sync_errors: Vec<String>,
}

/// A user's copy as served: the contract's members plus the copy's policy with live usage.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserAccessProfile {
    pub id: i64,
    pub user_id: String,
    pub parent_profile_id: Option<i64>,
    pub name: String,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub virtual_key_ids: Vec<String>,
    /// Virtual key id → masked value.
    pub virtual_key_values: BTreeMap<String, String>,
    #[serde(flatten)]
    pub policy: Policy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DetachUserProfileResponse {
    pub message: String,
    pub deleted_vk_names: Vec<String>,
    pub deleted_vk_count: u64,
}

#[derive(Clone)]
pub struct AssignmentService {
    store: Arc<dyn Store>,
    sealer: Sealer,
}

impl std::fmt::Debug for AssignmentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssignmentService").finish_non_exhaustive()
    }
}

/// Copies planned between two yields of the worker when many members get one at once.
const YIELD_EVERY: usize = 128;

fn profile_not_found(id: ProfileId) -> CoreError {
    CoreError::NotFound(format!("access profile {id} not found"))
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn profile_entry(actor: &Principal, action: AuditAction, profile: ProfileId, metadata: &serde_json::Value) -> NewAuditEntry {
    NewAuditEntry { user_id: None, ..user_entry(actor, action, Some(profile), "", metadata) }
}

impl AssignmentService {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        Self { store, sealer }
    }

    async fn template(&self, id: ProfileId) -> Result<AccessProfile, CoreError> {
        self.store.get_profile(id).await?.ok_or_else(|| profile_not_found(id))
    }

    /// Attaches roles. Attaching activates an inactive template (it now governs people); a
    /// default replaces the role's previous default; `apply_to_existing` gives every current
    /// member without a copy one now.
    pub async fn attach_roles(
        &self,
        actor: &Principal,
        profile_id: ProfileId,
        req: AttachRolesRequest,
    ) -> Result<AttachRolesResponse, CoreError> {
        if req.role_ids.is_empty() {
            return Err(CoreError::invalid("role_ids", "must name at least one role"));
        }
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let template = self.template(profile_id).await?;
            let mut plan = Vec::new();
            let mut applied: HashSet<String> = HashSet::new();
            let holders: HashSet<String> = self.store.copies_of_profile(profile_id).await?.into_iter().map(|c| c.user_id).collect();
            let mut seen = HashSet::new();
            let mut newcomers: Vec<(User, i64)> = Vec::new();
            for role_id in req.role_ids.iter().copied().filter(|r| seen.insert(*r)) {
                self.store.get_role(role_id).await?.ok_or_else(|| CoreError::NotFound(format!("role {role_id} not found")))?;
                plan.push(Write::Attach { profile_id, role_id, is_default: req.is_default });
                let metadata = json!({"role_id": role_id, "is_default": req.is_default, "apply_to_existing": req.apply_to_existing});
                plan.push(Write::Audit(profile_entry(actor, AuditAction::AttachRole, profile_id, &metadata)));
                if !req.apply_to_existing {
                    continue;
                }
                for user in self.store.role_members(role_id).await? {
                    if !holders.contains(&user.id) && applied.insert(user.id.clone()) {
                        newcomers.push((user, role_id));
                    }
                }
            }
            let wanted = u32::try_from(newcomers.len()).map_err(|_| CoreError::invalid("role_ids", "too many members at once"))?;
            let ids = if wanted == 0 { Vec::new() } else { self.store.next_ids(Sequence::UserCopy, wanted).await? };
            for (n, ((user, role_id), id)) in newcomers.iter().zip(ids).enumerate() {
                plan.extend(plan_copy_as(&self.sealer, actor, user, &template, Some(*role_id), id)?);
                if n % YIELD_EVERY == YIELD_EVERY - 1 {
                    // Sealing a hundred thousand keys is seconds of CPU: let the worker's
                    // other tasks (inference requests) run between slices of it.
                    tokio::task::yield_now().await;
                }
            }
            if !template.is_active {
                let active =
                    AccessProfile { is_active: true, version: template.version + 1, updated_at: crate::clock::now(), ..template.clone() };
                let version = NewVersion {
                    profile_id,
                    version: active.version,
                    name: active.name.clone(),
                    description: active.description.clone(),
                    snapshot: active.snapshot(),
                    changed_by: actor.actor(),
                    created_at: active.updated_at,
                };
                plan.push(Write::UpdateProfile { profile: active, expected_version: template.version, version });
                let reason = json!({"version": template.version + 1, "reason": "attached to a role"});
                plan.push(Write::Audit(profile_entry(actor, AuditAction::Activate, profile_id, &reason)));
            }
            match self.store.apply(&plan).await {
                Ok(()) => {
                    let roles = seen.len();
                    return Ok(AttachRolesResponse { message: format!("attached {roles} role(s)"), users_applied: count(applied.len()) });
                }
                Err(StoreError::Stale | StoreError::Duplicate) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Unavailable(format!("access profile {profile_id} kept changing")))
    }

    /// Detaches a role; the copies that role produced go with their keys. Direct copies stay.
    pub async fn detach_role(&self, actor: &Principal, profile_id: ProfileId, role_id: i64) -> Result<u64, CoreError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            if !self.store.attachment_exists(profile_id, role_id).await? {
                return Err(CoreError::NotFound(format!("role {role_id} is not attached to access profile {profile_id}")));
            }
            let mut plan = vec![Write::Detach { profile_id, role_id }];
            let doomed: Vec<UserCopy> =
                self.store.copies_of_profile(profile_id).await?.into_iter().filter(|c| c.source_role_id == Some(role_id)).collect();
            for copy in &doomed {
                let keys = self.store.keys_of_user(&copy.user_id).await?;
                let others = self.store.copies_of_user(&copy.user_id).await?.len() > 1;
                plan.extend(plan_uncopy(actor, copy, &keys, others).0);
            }
            let metadata = json!({"role_id": role_id, "removed_copies": doomed.len()});
            plan.push(Write::Audit(profile_entry(actor, AuditAction::DetachRole, profile_id, &metadata)));
            match self.store.apply(&plan).await {
                Ok(()) => return Ok(count(doomed.len())),
                Err(StoreError::Stale) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Unavailable(format!("access profile {profile_id} kept changing")))
    }

    /// The user's copies, with masked key values and live usage.
    pub async fn user_copies(&self, user_id: &str) -> Result<Vec<UserAccessProfile>, CoreError> {
        self.store.get_user(user_id).await?.ok_or_else(|| user_not_found(user_id))?;
        let keys = self.store.keys_of_user(user_id).await?;
        let mut out = Vec::new();
        for copy in self.store.copies_of_user(user_id).await? {
            let own: Vec<_> = keys.iter().filter(|k| k.copy_id == Some(copy.id) || k.copy_id.is_none()).collect();
            let mut policy = copy.policy.clone();
            self.fill_usage(&mut policy, copy.created_at).await?;
            out.push(UserAccessProfile {
                id: copy.id,
                user_id: copy.user_id.clone(),
                parent_profile_id: copy.parent_profile_id.map(|p| p.0),
                name: copy.name.clone(),
                is_active: copy.is_active,
                expires_at: copy.expires_at,
                virtual_key_ids: own.iter().map(|k| k.id.clone()).collect(),
                virtual_key_values: own.iter().map(|k| (k.id.clone(), k.value_masked.clone())).collect(),
                policy,
                created_at: copy.created_at,
                updated_at: copy.updated_at,
            });
        }
        Ok(out)
    }

    /// Sets `current_usage` of every line from stored usage of its current window (`created` is
    /// the copy's creation, the origin of its rolling rate-limit windows).
    async fn fill_usage(&self, policy: &mut Policy, created: chrono::DateTime<chrono::Utc>) -> Result<(), CoreError> {
        let ids: Vec<_> = budget_lines(policy).map(|b| b.id.clone()).collect();
        let usage = self.store.budget_usage(&ids).await?;
        let now = crate::clock::now();
        let aligned = policy.calendar_aligned;
        let fill = |b: &mut crate::profile::Budget| {
            let window = crate::overrides::current_window_start(b, aligned, now);
            if let Some(u) = usage.get(&b.id).filter(|u| u.last_reset >= window) {
                b.current_usage = u.current_usage;
            }
            b.last_reset = window;
        };
        policy.budgets.iter_mut().for_each(fill);
        policy.provider_configs.iter_mut().flat_map(|c| c.budgets.iter_mut()).for_each(fill);
        let limits: Vec<_> = policy
            .rate_limit
            .iter()
            .chain(policy.provider_configs.iter().filter_map(|c| c.rate_limit.as_ref()))
            .map(|r| r.id.clone())
            .collect();
        let usage = self.store.rate_limit_usage(&limits).await?;
        let fill = |r: &mut crate::profile::RateLimit| {
            let Some(u) = usage.get(&r.id) else { return };
            let current = |window: Option<crate::window::RateLimitResetDuration>, stored| {
                window.is_some_and(|w| stored >= crate::windows::Period::from(w).window_start(aligned, created, now))
            };
            r.token_current_usage = if current(r.token_reset_duration, u.token_window) { u.tokens } else { 0 };
            r.request_current_usage = if current(r.request_reset_duration, u.request_window) { u.requests } else { 0 };
        };
        policy.rate_limit.iter_mut().for_each(fill);
        policy.provider_configs.iter_mut().filter_map(|c| c.rate_limit.as_mut()).for_each(fill);
        Ok(())
    }

    /// Removes the user's copy of `profile_id` and the keys only it produced, all or nothing.
    pub async fn detach_user_profile(
        &self,
        actor: &Principal,
        user_id: &str,
        profile_id: ProfileId,
    ) -> Result<DetachUserProfileResponse, CoreError> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let copies = self.store.copies_of_user(user_id).await?;
            let copy = copies
                .iter()
                .find(|c| c.parent_profile_id == Some(profile_id))
                .ok_or_else(|| CoreError::NotFound(format!("user {user_id} holds no copy of access profile {profile_id}")))?;
            let keys = self.store.keys_of_user(user_id).await?;
            let (plan, names) = plan_uncopy(actor, copy, &keys, copies.len() > 1);
            match self.store.apply(&plan).await {
                Ok(()) => {
                    return Ok(DetachUserProfileResponse {
                        message: format!("access profile {profile_id} detached from user {user_id}"),
                        deleted_vk_count: count(names.len()),
                        deleted_vk_names: names,
                    });
                }
                Err(StoreError::Stale) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Unavailable(format!("user {user_id} kept changing")))
    }

    /// Copies the chosen field groups of the template to the selected copies, in one transaction.
    pub async fn propagate(&self, actor: &Principal, profile_id: ProfileId, req: PropagateRequest) -> Result<PropagateResponse, CoreError> {
        if req.fields.is_empty() {
            return Err(CoreError::invalid("fields", "must name at least one field group"));
        }
        let mut roles = Vec::new();
        for (i, g) in req.group_ids.iter().flatten().enumerate() {
            roles.push(g.trim().parse::<i64>().map_err(|_| CoreError::invalid(format!("group_ids[{i}]"), "must be a role id"))?);
        }
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let template = self.template(profile_id).await?;
            let wanted: Option<HashSet<&String>> = req.user_ids.as_ref().filter(|u| !u.is_empty()).map(|u| u.iter().collect());
            let mut members: Option<HashSet<String>> = None;
            for role in &roles {
                members.get_or_insert_with(HashSet::new).extend(self.store.role_member_ids(*role).await?);
            }
            let selected: Vec<UserCopy> = self
                .store
                .copies_of_profile(profile_id)
                .await?
                .into_iter()
                .filter(|c| wanted.as_ref().is_none_or(|w| w.contains(&c.user_id)))
                .filter(|c| members.as_ref().is_none_or(|m| m.contains(&c.user_id)))
                .collect();
            let missing = wanted.as_ref().map_or(0, |w| w.iter().filter(|u| !selected.iter().any(|c| &&c.user_id == *u)).count());
            let now = crate::clock::now();
            let mut plan = Vec::new();
            let mut affected = Vec::new();
            for (n, copy) in selected.iter().enumerate() {
                if n % YIELD_EVERY == YIELD_EVERY - 1 {
                    // Propagating to a hundred thousand copies is a second or more of CPU: let
                    // the worker's other tasks (inference requests) run between slices of it.
                    tokio::task::yield_now().await;
                }
                let (policy, changes) = copy.propagated(&template, &req.fields, req.reset_usage, now);
                if let Some(tool) = policy.excluded_from_whole_server() {
                    return Err(CoreError::invalid(
                        "fields",
                        format!(
                            "propagating these fields would leave the copy of user '{}' excluding {tool} of an MCP server its mcp_servers grants whole; propagate mcp_servers and mcp_tool_overrides together",
                            copy.user_id
                        ),
                    ));
                }
                let resets = !changes.reset_budgets.is_empty() || !changes.reset_rate_limits.is_empty();
                if policy == copy.policy && !resets {
                    continue;
                }
                affected.push(copy.user_id.clone());
                let updated = UserCopy { policy, version: copy.version + 1, updated_at: now, ..copy.clone() };
                plan.push(Write::UpdateCopy { copy: updated, expected_version: copy.version });
                for id in changes.dropped_budgets {
                    plan.push(Write::DeleteOverride(id.clone()));
                    plan.push(Write::ResetBudgetUsage(id));
                }
                plan.extend(changes.dropped_rate_limits.into_iter().map(Write::ResetRateLimitUsage));
                plan.extend(changes.reset_budgets.into_iter().map(|id| Write::ZeroBudgetUsage { id, at: now }));
                plan.extend(changes.reset_rate_limits.into_iter().map(|id| Write::ZeroRateLimitUsage { id, at: now }));
            }
            let response = PropagateResponse {
                affected_users: count(affected.len()),
                failed_users: 0,
                skipped_users: count(selected.len() - affected.len() + missing),
                user_ids: affected.clone(),
                fields: req.fields.clone(),
                applied: !req.dry_run,
                vk_sync_errors: Vec::new(),
            };
            if req.dry_run {
                return Ok(response);
            }
            let metadata =
                json!({"fields": req.fields, "user_ids": affected, "reset_usage": req.reset_usage, "template_version": template.version});
            plan.push(Write::Audit(profile_entry(actor, AuditAction::Propagate, profile_id, &metadata)));
            match self.store.apply(&plan).await {
                Ok(()) => return Ok(response),
                Err(StoreError::Stale) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Unavailable(format!("copies of access profile {profile_id} kept changing")))
    }
}
