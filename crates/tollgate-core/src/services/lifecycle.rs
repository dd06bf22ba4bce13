//! Deactivating, reactivating and expiring a user's copy: the one change an operator makes on a
//! copy directly (its policy comes from the template by propagation, and from overrides).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::audit::AuditAction;
use crate::auth::Principal;
use crate::directory::Write;
use crate::error::{CoreError, Problems};
use crate::ids::ProfileId;
use crate::lifecycle::{LifecycleChange, MEMBERS};
use crate::ports::{Store, StoreError};
use crate::services::MAX_WRITE_ATTEMPTS;
use crate::services::assignments::{AssignmentService, UserAccessProfile};
use crate::services::directory::user_not_found;
use crate::services::provision::user_entry;

/// Body of `PUT …/users/{user_id}/access-profiles/{profile_id}` (and of a key's lifecycle members
/// in `PUT /api/governance/virtual-keys/{vk_id}`). Members left out stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct LifecycleRequest {
    /// `false` refuses every request made under it at once (403); `true` serves them again.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// When it stops working (RFC 3339, in the future); `""` or `null` removes the expiry.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
}

/// The audit action of a lifecycle change: (de)activation when `is_active` flips, else an update.
pub(crate) fn lifecycle_action(was_active: bool, is_active: bool) -> AuditAction {
    match (was_active, is_active) {
        (false, true) => AuditAction::Activate,
        (true, false) => AuditAction::Deactivate,
        _ => AuditAction::Update,
    }
}

/// Reads a lifecycle body: an object holding only `is_active` and `expires_at`.
pub(crate) fn read_body(body: &Value, allowed: &[&str]) -> Result<LifecycleChange, CoreError> {
    let Value::Object(members) = body else { return Err(CoreError::invalid("", "the body must be a JSON object")) };
    let mut problems = Problems::default();
    for name in members.keys().filter(|m| !allowed.contains(&m.as_str())) {
        problems.add(name.as_str(), format!("cannot be changed here; only {} can", allowed.join(", ")));
    }
    let change = LifecycleChange::read(members, crate::clock::now(), &mut problems);
    problems.into_result(change)
}

#[derive(Clone)]
pub struct LifecycleService {
    store: Arc<dyn Store>,
    assignments: AssignmentService,
}

impl std::fmt::Debug for LifecycleService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleService").finish_non_exhaustive()
    }
}

impl LifecycleService {
    pub fn new(store: Arc<dyn Store>, assignments: AssignmentService) -> Self {
        Self { store, assignments }
    }

    /// Sets whether the user's copy of `profile_id` works and until when; answers the copy as
    /// the list serves it. A body that changes nothing writes nothing.
    pub async fn update_copy(
        &self,
        actor: &Principal,
        user_id: &str,
        profile_id: ProfileId,
        body: &Value,
    ) -> Result<UserAccessProfile, CoreError> {
        let change = read_body(body, &MEMBERS)?;
        self.store.get_user(user_id).await?.ok_or_else(|| user_not_found(user_id))?;
        let mut written = false;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let copy = self
                .store
                .copies_of_user(user_id)
                .await?
                .into_iter()
                .find(|c| c.parent_profile_id == Some(profile_id))
                .ok_or_else(|| CoreError::NotFound(format!("user {user_id} holds no copy of access profile {profile_id}")))?;
            let (is_active, expires_at) = change.applied_to(copy.is_active, copy.expires_at);
            if (is_active, expires_at) == (copy.is_active, copy.expires_at) {
                written = true;
                break;
            }
            let metadata = json!({
                "copy_id": copy.id,
                "previous": {"is_active": copy.is_active, "expires_at": copy.expires_at},
                "new": {"is_active": is_active, "expires_at": expires_at},
            });
            let audit = user_entry(actor, lifecycle_action(copy.is_active, is_active), Some(profile_id), user_id, &metadata);
            let expected_version = copy.version;
            let next =
                crate::copies::UserCopy { is_active, expires_at, version: copy.version + 1, updated_at: crate::clock::now(), ..copy };
            match self.store.apply(&[Write::UpdateCopy { copy: next, expected_version }, Write::Audit(audit)]).await {
                Ok(()) => {
                    written = true;
                    break;
                }
                Err(StoreError::Stale) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !written {
            return Err(CoreError::Unavailable(format!("the copy of access profile {profile_id} kept changing")));
        }
        self.assignments
            .user_copies(user_id)
            .await?
            .into_iter()
            .find(|c| c.parent_profile_id == Some(profile_id.0))
            .ok_or_else(|| CoreError::NotFound(format!("user {user_id} holds no copy of access profile {profile_id}")))
    }
}
