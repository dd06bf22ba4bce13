//! Runs a planned list of directory writes in one transaction. A guarded write that matches no
//! row rolls everything back with `StoreError::Stale`, so a plan is applied whole or not at all.

use sqlx::{AnyPool, Row};
use tollgate_core::copies::{UserCopy, budget_lines};
use tollgate_core::directory::Write;
use tollgate_core::ports::StoreError;
use tollgate_core::profile::Policy;

use crate::tx::{Tx, exec, guard};
use crate::{json_err, map_err, name_key, ts};

pub(crate) async fn apply(pool: &AnyPool, plan: &[Write]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    for write in plan {
        one(&mut tx, write).await?;
    }
    tx.commit().await.map_err(map_err)
}

#[expect(clippy::too_many_lines, reason = "one arm per kind of write keeps the whole vocabulary in one place")]
async fn one(tx: &mut Tx, write: &Write) -> Result<(), StoreError> {
    match write {
        Write::InsertUser(u) => {
            let q = sqlx::query(
                "INSERT INTO users (id, name, email, email_key, role_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(u.id.as_str())
            .bind(u.name.as_str())
            .bind(u.email.as_str())
            .bind(name_key(&u.email))
            .bind(u.role_id)
            .bind(ts(u.created_at))
            .bind(ts(u.updated_at));
            exec(tx, q).await.map(drop)
        }
        Write::DeleteUser(id) => guard(exec(tx, sqlx::query("DELETE FROM users WHERE id = $1").bind(id.as_str())).await?),
        Write::SetUserRole { user_id, role_id } => {
            let q = sqlx::query("UPDATE users SET role_id = $1, updated_at = $2 WHERE id = $3")
                .bind(*role_id)
                .bind(ts(tollgate_core::clock::now()))
                .bind(user_id.as_str());
            guard(exec(tx, q).await?)
        }
        Write::InsertRole(r) => {
            let q = sqlx::query("INSERT INTO roles (id, name, description, is_system_role, dac, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(r.id)
                .bind(r.name.as_str())
                .bind(r.description.as_str())
                .bind(i64::from(r.is_system_role))
                .bind(r.dac.as_str())
                .bind(ts(r.created_at))
                .bind(ts(r.updated_at));
            exec(tx, q).await.map(drop)
        }
        Write::UpdateRole(r) => {
            let q = sqlx::query("UPDATE roles SET name = $1, description = $2, dac = $3, updated_at = $4 WHERE id = $5")
                .bind(r.name.as_str())
                .bind(r.description.as_str())
                .bind(r.dac.as_str())
                .bind(ts(r.updated_at))
                .bind(r.id);
            guard(exec(tx, q).await?)
        }
        Write::DeleteRole(id) => {
            let q = sqlx::query("DELETE FROM roles WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM users WHERE role_id = $1)").bind(*id);
            guard(exec(tx, q).await?)
        }
        Write::Attach { profile_id, role_id, is_default } => {
            if *is_default {
                let q = sqlx::query("UPDATE access_profile_roles SET is_default = 0 WHERE role_id = $1 AND access_profile_id <> $2")
                    .bind(*role_id)
                    .bind(profile_id.0);
                exec(tx, q).await?;
            }
            let q = sqlx::query(
                "INSERT INTO access_profile_roles (access_profile_id, role_id, is_default) VALUES ($1, $2, $3) \
                 ON CONFLICT (access_profile_id, role_id) DO UPDATE SET is_default = excluded.is_default",
            )
            .bind(profile_id.0)
            .bind(*role_id)
            .bind(i64::from(*is_default));
            exec(tx, q).await.map(drop)
        }
        Write::Detach { profile_id, role_id } => {
            let q = sqlx::query("DELETE FROM access_profile_roles WHERE access_profile_id = $1 AND role_id = $2")
                .bind(profile_id.0)
                .bind(*role_id);
            guard(exec(tx, q).await?)
        }
        Write::InsertCopy(c) => insert_copy(tx, c).await,
        Write::UpdateCopy { copy, expected_version } => {
            let q = sqlx::query("UPDATE user_access_profiles SET name = $1, is_active = $2, expires_at = $3, policy = $4, version = $5, updated_at = $6 WHERE id = $7 AND version = $8")
                .bind(copy.name.as_str())
                .bind(i64::from(copy.is_active))
                .bind(copy.expires_at.map(ts))
                .bind(policy_text(&copy.policy)?)
                .bind(copy.version)
                .bind(ts(copy.updated_at))
                .bind(copy.id)
                .bind(*expected_version);
            guard(exec(tx, q).await?)
        }
        Write::DeleteCopy(id) => delete_copy(tx, *id).await,
        Write::InsertKey { key, value_hash, value_sealed } => {
            let q = sqlx::query(
                "INSERT INTO virtual_keys (id, name, name_key, description, value_hash, value_sealed, value_masked, user_id, copy_id, is_active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(key.id.as_str())
            .bind(key.name.as_str())
            .bind(name_key(&key.name))
            .bind(key.description.clone())
            .bind(value_hash.as_str())
            .bind(value_sealed.as_str())
            .bind(key.value_masked.as_str())
            .bind(key.user_id.as_str())
            .bind(key.copy_id)
            .bind(i64::from(key.is_active))
            .bind(ts(key.created_at))
            .bind(ts(key.updated_at));
            exec(tx, q).await.map(drop)
        }
        Write::DeleteKey(id) => guard(exec(tx, sqlx::query("DELETE FROM virtual_keys WHERE id = $1").bind(id.as_str())).await?),
        Write::RenameKey { id, name, description } => {
            let q = sqlx::query("UPDATE virtual_keys SET name = $1, name_key = $2, description = $3, updated_at = $4 WHERE id = $5")
                .bind(name.as_str())
                .bind(name_key(name))
                .bind(description.clone())
                .bind(ts(tollgate_core::clock::now()))
                .bind(id.as_str());
            guard(exec(tx, q).await?)
        }
        Write::SetKeyLifecycle { id, is_active, expires_at } => {
            let q = sqlx::query("UPDATE virtual_keys SET is_active = $1, expires_at = $2, updated_at = $3 WHERE id = $4")
                .bind(i64::from(*is_active))
                .bind(expires_at.map(ts))
                .bind(ts(tollgate_core::clock::now()))
                .bind(id.as_str());
            guard(exec(tx, q).await?)
        }
        Write::RotateKey(r) => crate::rotation::rotate_key(tx, r).await,
        Write::AdvanceRotation { profile_id, expected_next, next, finished } => {
            let q = sqlx::query(
                "UPDATE access_profiles SET next_rotation_at = $1, last_rotation_at = $2 \
                 WHERE id = $3 AND auto_rotation_interval > 0 AND next_rotation_at = $4",
            )
            .bind(ts(*next))
            .bind(ts(*finished))
            .bind(profile_id.0)
            .bind(ts(*expected_next));
            guard(exec(tx, q).await?)
        }
        Write::SetOverride(o) => {
            let q = sqlx::query(
                "INSERT INTO budget_overrides (budget_id, copy_id, amount, mode, cycles_total, anchor_reset, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (budget_id) DO UPDATE SET amount = excluded.amount, mode = excluded.mode, cycles_total = excluded.cycles_total, \
                 anchor_reset = excluded.anchor_reset, created_at = excluded.created_at",
            )
            .bind(o.budget_id.0.as_str())
            .bind(o.copy_id)
            .bind(o.amount.micros())
            .bind(o.mode.as_str())
            .bind(o.cycles_total.map(i64::from))
            .bind(ts(o.anchor_reset))
            .bind(ts(o.created_at));
            exec(tx, q).await.map(drop)
        }
        Write::DeleteOverride(id) => {
            exec(tx, sqlx::query("DELETE FROM budget_overrides WHERE budget_id = $1").bind(id.0.as_str())).await.map(drop)
        }
        Write::ResetBudgetUsage(id) => {
            exec(tx, sqlx::query("DELETE FROM budget_usage WHERE budget_id = $1").bind(id.0.as_str())).await.map(drop)
        }
        Write::ResetRateLimitUsage(id) => {
            exec(tx, sqlx::query("DELETE FROM rate_limit_usage WHERE rate_limit_id = $1").bind(id.0.as_str())).await.map(drop)
        }
        Write::ZeroBudgetUsage { id, at } => exec(
            tx,
            sqlx::query(
                "INSERT INTO budget_usage (budget_id, current_usage, last_reset) VALUES ($1, 0, $2) \
                 ON CONFLICT (budget_id) DO UPDATE SET current_usage = 0, last_reset = excluded.last_reset",
            )
            .bind(id.0.as_str())
            .bind(crate::ts(*at)),
        )
        .await
        .map(drop),
        Write::ZeroRateLimitUsage { id, at } => exec(
            tx,
            sqlx::query(
                "INSERT INTO rate_limit_usage (rate_limit_id, token_usage, request_usage, token_last_reset, request_last_reset) \
                 VALUES ($1, 0, 0, $2, $2) ON CONFLICT (rate_limit_id) DO UPDATE SET token_usage = 0, request_usage = 0, \
                 token_last_reset = excluded.token_last_reset, request_last_reset = excluded.request_last_reset",
            )
            .bind(id.0.as_str())
            .bind(crate::ts(*at)),
        )
        .await
        .map(drop),
        Write::UpdateProfile { profile, expected_version, version } => {
            crate::profiles::update_profile_tx(tx, *expected_version, profile, version).await
        }
        Write::Audit(entry) => crate::audit::insert_audit(tx, entry).await,
    }
}

fn policy_text(policy: &Policy) -> Result<String, StoreError> {
    serde_json::to_string(policy).map_err(|e| json_err(&e))
}

async fn insert_copy(tx: &mut Tx, c: &UserCopy) -> Result<(), StoreError> {
    let q = sqlx::query(
        "INSERT INTO user_access_profiles (id, user_id, parent_profile_id, name, is_active, expires_at, policy, source_role_id, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.id)
    .bind(c.user_id.as_str())
    .bind(c.parent_profile_id.map(|p| p.0))
    .bind(c.name.as_str())
    .bind(i64::from(c.is_active))
    .bind(c.expires_at.map(ts))
    .bind(policy_text(&c.policy)?)
    .bind(c.source_role_id)
    .bind(c.version)
    .bind(ts(c.created_at))
    .bind(ts(c.updated_at));
    exec(tx, q).await.map(drop)
}

/// Removes a copy with the overrides and usage rows of its lines.
async fn delete_copy(tx: &mut Tx, id: i64) -> Result<(), StoreError> {
    let row =
        sqlx::query("SELECT policy FROM user_access_profiles WHERE id = $1").bind(id).fetch_optional(&mut **tx).await.map_err(map_err)?;
    let Some(row) = row else { return Err(StoreError::Stale) };
    let policy: Policy = serde_json::from_str(&row.try_get::<String, _>("policy").map_err(map_err)?).map_err(|e| json_err(&e))?;
    for budget in budget_lines(&policy) {
        exec(tx, sqlx::query("DELETE FROM budget_usage WHERE budget_id = $1").bind(budget.id.0.as_str())).await?;
    }
    let limits = policy.rate_limit.iter().chain(policy.provider_configs.iter().filter_map(|c| c.rate_limit.as_ref()));
    for limit in limits {
        exec(tx, sqlx::query("DELETE FROM rate_limit_usage WHERE rate_limit_id = $1").bind(limit.id.0.as_str())).await?;
    }
    exec(tx, sqlx::query("DELETE FROM budget_overrides WHERE copy_id = $1").bind(id)).await?;
    guard(exec(tx, sqlx::query("DELETE FROM user_access_profiles WHERE id = $1").bind(id)).await?)
}
