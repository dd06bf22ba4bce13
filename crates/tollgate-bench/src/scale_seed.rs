//! The organisation behind `tollgate-bench scale --http`: users, each in one of the catalogue's
//! roles with a copy of that role's default profile and the copy's managed key, written through
//! the store's own plan (`DirectoryStore::apply`), the same writes the users API makes.

use std::time::Instant;

use serde_json::json;
use tollgate_core::audit::{AuditAction, NewAuditEntry};
use tollgate_core::auth::sha256_hex;
use tollgate_core::copies::UserCopy;
use tollgate_core::directory::{DirectoryStore, Write};
use tollgate_core::ids::Sequence;
use tollgate_core::ports::ProfileStore;
use tollgate_core::profile::AccessProfile;
use tollgate_core::users::User;
use tollgate_core::vkeys::{Sealer, VirtualKey, generate_value, mask};
use tollgate_store::SqlStore;

/// Users written per transaction (so progress shows and no transaction grows without bound).
const CHUNK: usize = 10_000;

/// The role names the catalogue step gives its roles; user `n` joins role `n % roles`.
pub fn role_name(i: usize) -> String {
    format!("scale_{i:04}")
}

/// One user's writes: the user, the copy of its role's default, the copy's key and the audit
/// entry of the assignment — what `POST /api/governance/users` with a `role_id` writes.
fn user_plan(sealer: &Sealer, n: usize, copy_id: i64, role_id: i64, template: &AccessProfile) -> Result<Vec<Write>, String> {
    let now = tollgate_core::clock::now();
    let email = format!("seeded-{n:06}@scale.example");
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("Seeded {n}"),
        email: email.clone(),
        role_id: Some(role_id),
        role: None,
        created_at: now,
        updated_at: now,
    };
    let copy = UserCopy::from_template(copy_id, &user.id, template, Some(role_id), now);
    let value = generate_value();
    let key = VirtualKey {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("{} · {email}", template.name),
        description: None,
        value_masked: mask(value.expose()),
        user_id: user.id.clone(),
        copy_id: Some(copy_id),
        is_active: true,
        expires_at: None,
        rotated_at: None,
        previous_value_expires_at: None,
        created_at: now,
        updated_at: now,
    };
    let metadata = json!({"copy_id": copy_id, "source_role_id": role_id, "virtual_key_id": key.id});
    let audit = NewAuditEntry {
        profile_id: Some(template.id),
        user_id: Some(user.id.clone()),
        actor: "admin".to_owned(),
        action: AuditAction::Assign,
        previous_values: None,
        new_values: None,
        metadata: Some(metadata.to_string()),
        created_at: now,
    };
    let key_write = Write::InsertKey {
        value_hash: sha256_hex(value.expose()),
        value_sealed: sealer.seal(value.expose()).map_err(|e| e.to_string())?,
        key,
    };
    Ok(vec![Write::InsertUser(user), Write::InsertCopy(copy), key_write, Write::Audit(audit)])
}

/// Writes `users` users over the catalogue's `roles` roles (each with a default profile).
pub async fn seed(store: &SqlStore, sealer: &Sealer, users: usize, roles: usize, say: fn(&str)) -> Result<(), String> {
    let mut catalogue = Vec::with_capacity(roles);
    for i in 0..roles {
        let name = role_name(i);
        let role = store.role_by_name(&name).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("no role {name}"))?;
        let profile =
            store.role_default_profile(role.id).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("role {name} has no default"))?;
        let template = store.get_profile(profile).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("no profile {profile}"))?;
        catalogue.push((role.id, template));
    }
    let started = Instant::now();
    let mut n = 0;
    while n < users {
        let size = CHUNK.min(users - n);
        let ids = store.next_ids(Sequence::UserCopy, u32::try_from(size).unwrap_or(u32::MAX)).await.map_err(|e| e.to_string())?;
        let mut plan = Vec::with_capacity(size * 4);
        for (offset, copy_id) in ids.into_iter().enumerate() {
            let (role_id, template) = &catalogue[(n + offset) % catalogue.len()];
            plan.extend(user_plan(sealer, n + offset, copy_id, *role_id, template)?);
        }
        store.apply(&plan).await.map_err(|e| e.to_string())?;
        n += size;
        say(&format!("  seeded {n} users ({:.0} s)", started.elapsed().as_secs_f64()));
    }
    Ok(())
}
