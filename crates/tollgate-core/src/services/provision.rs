//! Plans shared by the directory use cases: giving a user a copy of a template with its managed
//! key, and taking a copy away with the keys only it produced.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{AuditAction, NewAuditEntry};
use crate::auth::{Principal, sha256_hex};
use crate::copies::UserCopy;
use crate::directory::Write;
use crate::error::CoreError;
use crate::ids::{ProfileId, Sequence};
use crate::ports::Store;
use crate::profile::AccessProfile;
use crate::users::User;
use crate::vkeys::{Sealer, VirtualKey, VirtualKeySummary, generate_value, mask};

/// An audit entry about a user's assignment or key.
pub(crate) fn user_entry(
    actor: &Principal,
    action: AuditAction,
    profile: Option<ProfileId>,
    user_id: &str,
    metadata: &serde_json::Value,
) -> NewAuditEntry {
    NewAuditEntry {
        profile_id: profile,
        user_id: Some(user_id.to_owned()),
        actor: actor.actor(),
        action,
        previous_values: None,
        new_values: None,
        metadata: Some(metadata.to_string()),
        created_at: crate::clock::now(),
    }
}

/// A new key for `user_id`: the write that stores it (hash and sealed value only) and the one
/// answer that may show its value.
pub(crate) fn new_key(
    sealer: &Sealer,
    user_id: &str,
    copy_id: Option<i64>,
    name: String,
    description: Option<String>,
    now: DateTime<Utc>,
) -> Result<(Write, VirtualKeySummary), CoreError> {
    let value = generate_value();
    let key = VirtualKey {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        description,
        value_masked: mask(value.expose()),
        user_id: user_id.to_owned(),
        copy_id,
        is_active: true,
        expires_at: None,
        rotated_at: None,
        previous_value_expires_at: None,
        created_at: now,
        updated_at: now,
    };
    let summary = VirtualKeySummary { id: key.id.clone(), name: key.name.clone(), value: value.expose().to_owned() };
    let write = Write::InsertKey { value_hash: sha256_hex(value.expose()), value_sealed: sealer.seal(value.expose())?, key };
    Ok((write, summary))
}

/// Writes that give `user` a copy of `template` and the copy's managed key.
pub(crate) async fn plan_copy(
    store: &dyn Store,
    sealer: &Sealer,
    actor: &Principal,
    user: &User,
    template: &AccessProfile,
    source_role_id: Option<i64>,
) -> Result<Vec<Write>, CoreError> {
    let id = store.next_ids(Sequence::UserCopy, 1).await?.first().copied().ok_or_else(|| CoreError::Internal("no copy id".into()))?;
    plan_copy_as(sealer, actor, user, template, source_role_id, id)
}

/// [`plan_copy`] with the copy's id already drawn, so a use case giving many users a copy draws
/// all their ids in one step (the scale benchmark seeds users with it too).
pub fn plan_copy_as(
    sealer: &Sealer,
    actor: &Principal,
    user: &User,
    template: &AccessProfile,
    source_role_id: Option<i64>,
    id: i64,
) -> Result<Vec<Write>, CoreError> {
    let now = crate::clock::now();
    let copy = UserCopy::from_template(id, &user.id, template, source_role_id, now);
    let (key_write, key) = new_key(sealer, &user.id, Some(id), format!("{} · {}", template.name, user.email), None, now)?;
    let metadata = json!({"copy_id": id, "source_role_id": source_role_id, "virtual_key_id": key.id});
    Ok(vec![
        Write::InsertCopy(copy),
        key_write,
        Write::Audit(user_entry(actor, AuditAction::Assign, Some(template.id), &user.id, &metadata)),
    ])
}

/// Writes that remove `copy` and its keys. When no other copy of the user remains, the user's
/// extra keys go too: a key that no profile governs would grant nothing, so none is left behind.
pub(crate) fn plan_uncopy(
    actor: &Principal,
    copy: &UserCopy,
    user_keys: &[VirtualKey],
    other_copies_remain: bool,
) -> (Vec<Write>, Vec<String>) {
    let doomed: Vec<&VirtualKey> =
        user_keys.iter().filter(|k| k.copy_id == Some(copy.id) || (k.copy_id.is_none() && !other_copies_remain)).collect();
    let names: Vec<String> = doomed.iter().map(|k| k.name.clone()).collect();
    let mut writes: Vec<Write> = doomed.iter().map(|k| Write::DeleteKey(k.id.clone())).collect();
    writes.push(Write::DeleteCopy(copy.id));
    let metadata = json!({"copy_id": copy.id, "deleted_virtual_keys": names});
    writes.push(Write::Audit(user_entry(actor, AuditAction::Unassign, copy.parent_profile_id, &copy.user_id, &metadata)));
    (writes, names)
}
