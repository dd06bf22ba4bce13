//! The organisation behind `tollgate-bench scale --http`: users, each in one of the catalogue's
//! roles with a copy of that role's default profile and the copy's managed key, written through
//! the store's own plan (`DirectoryStore::apply`), the same writes the users API makes.

use std::time::Instant;

use tollgate_core::auth::Principal;
use tollgate_core::directory::{DirectoryStore, Write};
use tollgate_core::ids::Sequence;
use tollgate_core::ports::ProfileStore;
use tollgate_core::profile::AccessProfile;
use tollgate_core::services::plan_copy_as;
use tollgate_core::users::User;
use tollgate_core::vkeys::Sealer;
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
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("Seeded {n}"),
        email: format!("seeded-{n:06}@scale.example"),
        role_id: Some(role_id),
        role: None,
        created_at: now,
        updated_at: now,
    };
    let admin = Principal::Admin { username: "admin".to_owned() };
    let mut plan = plan_copy_as(sealer, &admin, &user, template, Some(role_id), copy_id).map_err(|e| e.to_string())?;
    plan.insert(0, Write::InsertUser(user));
    Ok(plan)
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
