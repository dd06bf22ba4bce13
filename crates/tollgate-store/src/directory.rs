//! `DirectoryStore` reads on SQL: users with their role, roles, attachments, copies, keys,
//! overrides and usage rows.

use std::collections::HashMap;

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::copies::UserCopy;
use tollgate_core::directory::{BudgetUsage, DirectoryStore, RateLimitUsage, Write};
use tollgate_core::ids::{BudgetId, ProfileId, RateLimitId};
use tollgate_core::money::Money;
use tollgate_core::overrides::{BudgetOverride, OverrideMode};
use tollgate_core::paging::Page;
use tollgate_core::ports::StoreError;
use tollgate_core::users::{Dac, Role, RoleSummary, User};
use tollgate_core::vkeys::VirtualKey;

use crate::sql::{Arg, Sql, like_pattern};
use crate::{SqlStore, json_err, map_err, name_key, parse_opt_ts, parse_ts};

const USER_SELECT: &str = "SELECT u.id, u.name, u.email, u.role_id, u.created_at, u.updated_at, r.name AS role_name, \
     r.description AS role_description, r.is_system_role AS role_system FROM users u LEFT JOIN roles r ON r.id = u.role_id";
const ROLE_COLUMNS: &str = "id, name, description, is_system_role, dac, created_at, updated_at";
pub(crate) const COPY_COLUMNS: &str =
    "id, user_id, parent_profile_id, name, is_active, expires_at, policy, source_role_id, version, created_at, updated_at";
const KEY_COLUMNS: &str = "id, name, description, value_masked, user_id, copy_id, is_active, expires_at, rotated_at, previous_value_expires_at, created_at, updated_at";

fn text(row: &AnyRow, col: &str) -> Result<String, StoreError> {
    row.try_get::<String, _>(col).map_err(map_err)
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let role_id: Option<i64> = row.try_get("role_id").map_err(map_err)?;
    let role_name: Option<String> = row.try_get("role_name").map_err(map_err)?;
    let role = match (role_id, role_name) {
        (Some(id), Some(name)) => Some(RoleSummary {
            id,
            name,
            description: row.try_get::<Option<String>, _>("role_description").map_err(map_err)?.unwrap_or_default(),
            is_system_role: row.try_get::<Option<i64>, _>("role_system").map_err(map_err)?.unwrap_or(0) != 0,
        }),
        _ => None,
    };
    Ok(User {
        id: text(row, "id")?,
        name: text(row, "name")?,
        email: text(row, "email")?,
        role_id,
        role,
        created_at: parse_ts(&text(row, "created_at")?)?,
        updated_at: parse_ts(&text(row, "updated_at")?)?,
    })
}

pub(crate) fn role_from_row(row: &AnyRow) -> Result<Role, StoreError> {
    Ok(Role {
        id: row.try_get("id").map_err(map_err)?,
        name: text(row, "name")?,
        description: text(row, "description")?,
        is_system_role: row.try_get::<i64, _>("is_system_role").map_err(map_err)? != 0,
        dac: Dac::parse(&text(row, "dac")?).unwrap_or_default(),
        created_by_user_id: None,
        created_at: parse_ts(&text(row, "created_at")?)?,
        updated_at: parse_ts(&text(row, "updated_at")?)?,
    })
}

pub(crate) fn copy_from_row(row: &AnyRow) -> Result<UserCopy, StoreError> {
    Ok(UserCopy {
        id: row.try_get("id").map_err(map_err)?,
        user_id: text(row, "user_id")?,
        parent_profile_id: row.try_get::<Option<i64>, _>("parent_profile_id").map_err(map_err)?.map(ProfileId),
        name: text(row, "name")?,
        is_active: row.try_get::<i64, _>("is_active").map_err(map_err)? != 0,
        expires_at: parse_opt_ts(row.try_get("expires_at").map_err(map_err)?)?,
        policy: serde_json::from_str(&text(row, "policy")?).map_err(|e| json_err(&e))?,
        source_role_id: row.try_get("source_role_id").map_err(map_err)?,
        version: row.try_get("version").map_err(map_err)?,
        created_at: parse_ts(&text(row, "created_at")?)?,
        updated_at: parse_ts(&text(row, "updated_at")?)?,
    })
}

pub(crate) fn override_from_row(r: &AnyRow) -> Result<BudgetOverride, StoreError> {
    Ok(BudgetOverride {
        budget_id: BudgetId(text(r, "budget_id")?),
        copy_id: r.try_get("copy_id").map_err(map_err)?,
        amount: Money::from_micros(r.try_get("amount").map_err(map_err)?).unwrap_or(Money::ZERO),
        mode: OverrideMode::parse(&text(r, "mode")?).unwrap_or(OverrideMode::Forever),
        cycles_total: r.try_get::<Option<i64>, _>("cycles_total").map_err(map_err)?.and_then(|c| u32::try_from(c).ok()),
        anchor_reset: parse_ts(&text(r, "anchor_reset")?)?,
        created_at: parse_ts(&text(r, "created_at")?)?,
    })
}

pub(crate) const OVERRIDE_COLUMNS: &str = "budget_id, copy_id, amount, mode, cycles_total, anchor_reset, created_at";

fn key_from_row(row: &AnyRow) -> Result<VirtualKey, StoreError> {
    Ok(VirtualKey {
        id: text(row, "id")?,
        name: text(row, "name")?,
        description: row.try_get("description").map_err(map_err)?,
        value_masked: text(row, "value_masked")?,
        user_id: text(row, "user_id")?,
        copy_id: row.try_get("copy_id").map_err(map_err)?,
        is_active: row.try_get::<i64, _>("is_active").map_err(map_err)? != 0,
        expires_at: parse_opt_ts(row.try_get("expires_at").map_err(map_err)?)?,
        rotated_at: parse_opt_ts(row.try_get("rotated_at").map_err(map_err)?)?,
        previous_value_expires_at: parse_opt_ts(row.try_get("previous_value_expires_at").map_err(map_err)?)?,
        created_at: parse_ts(&text(row, "created_at")?)?,
        updated_at: parse_ts(&text(row, "updated_at")?)?,
    })
}

fn push_user_search(sql: &mut Sql, search: Option<&str>) {
    if let Some(search) = search.filter(|s| !s.is_empty()) {
        let pattern = like_pattern(search);
        sql.push(" WHERE (LOWER(u.name) LIKE ").bind(Arg::Text(pattern.clone()));
        sql.push(" ESCAPE '\\' OR LOWER(u.email) LIKE ").bind(Arg::Text(pattern)).push(" ESCAPE '\\')");
    }
}

#[async_trait]
impl DirectoryStore for SqlStore {
    async fn list_users(&self, search: Option<&str>, page: u32, limit: u32) -> Result<Page<User>, StoreError> {
        let mut count = Sql::new("SELECT COUNT(*) AS n FROM users u");
        push_user_search(&mut count, search);
        let mut rows = Sql::new(USER_SELECT);
        push_user_search(&mut rows, search);
        rows.push(" ORDER BY u.created_at, u.id LIMIT ").bind(Arg::Int(i64::from(limit)));
        rows.push(" OFFSET ").bind(Arg::Int(i64::from(page.saturating_sub(1)) * i64::from(limit)));
        let total: i64 = count.query().fetch_one(&self.pool).await.map_err(map_err)?.try_get("n").map_err(map_err)?;
        let items = rows.query().fetch_all(&self.pool).await.map_err(map_err)?.iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok(Page { items, total: u64::try_from(total).unwrap_or(0) })
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("{USER_SELECT} WHERE u.id = $1")).bind(id).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("{USER_SELECT} WHERE u.email_key = $1"))
            .bind(name_key(email))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {ROLE_COLUMNS} FROM roles ORDER BY id")).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(role_from_row).collect()
    }

    async fn get_role(&self, id: i64) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ROLE_COLUMNS} FROM roles WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(role_from_row).transpose()
    }

    async fn role_by_name(&self, name: &str) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ROLE_COLUMNS} FROM roles WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(role_from_row).transpose()
    }

    async fn role_member_ids(&self, role_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM users WHERE role_id = $1 ORDER BY id")
            .bind(role_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| text(r, "id")).collect()
    }

    async fn role_default_profile(&self, role_id: i64) -> Result<Option<ProfileId>, StoreError> {
        let row =
            sqlx::query("SELECT access_profile_id FROM access_profile_roles WHERE role_id = $1 AND is_default = 1 ORDER BY id LIMIT 1")
                .bind(role_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(|r| r.try_get("access_profile_id").map(ProfileId).map_err(map_err)).transpose()
    }

    async fn profiles_of_role(&self, role_id: i64) -> Result<Vec<ProfileId>, StoreError> {
        let rows = sqlx::query("SELECT access_profile_id FROM access_profile_roles WHERE role_id = $1 ORDER BY id")
            .bind(role_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| r.try_get("access_profile_id").map(ProfileId).map_err(map_err)).collect()
    }

    async fn attachment_exists(&self, profile_id: ProfileId, role_id: i64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM access_profile_roles WHERE access_profile_id = $1 AND role_id = $2")
            .bind(profile_id.0)
            .bind(role_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn copies_of_user(&self, user_id: &str) -> Result<Vec<UserCopy>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COPY_COLUMNS} FROM user_access_profiles WHERE user_id = $1 ORDER BY id"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(copy_from_row).collect()
    }

    async fn role_members(&self, role_id: i64) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!("{USER_SELECT} WHERE u.role_id = $1 ORDER BY u.id"))
            .bind(role_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn copies_of_profile(&self, profile_id: ProfileId) -> Result<Vec<UserCopy>, StoreError> {
        // Parsed as the rows arrive: a template's copies can number 100k, and parsing them all
        // after one fetch would hold the worker (and the requests queued on it) for that long.
        let text = format!("SELECT {COPY_COLUMNS} FROM user_access_profiles WHERE parent_profile_id = $1 ORDER BY id");
        let mut rows = sqlx::query(&text).bind(profile_id.0).fetch(&self.pool);
        let mut copies = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(map_err)? {
            copies.push(copy_from_row(&row)?);
        }
        Ok(copies)
    }

    async fn keys_of_user(&self, user_id: &str) -> Result<Vec<VirtualKey>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM virtual_keys WHERE user_id = $1 ORDER BY created_at, id"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn get_key(&self, id: &str) -> Result<Option<VirtualKey>, StoreError> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM virtual_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn sealed_value(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value_sealed FROM virtual_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| text(&r, "value_sealed")).transpose()
    }

    async fn overrides_of_copy(&self, copy_id: i64) -> Result<Vec<BudgetOverride>, StoreError> {
        let rows = sqlx::query(
            "SELECT budget_id, copy_id, amount, mode, cycles_total, anchor_reset, created_at FROM budget_overrides WHERE copy_id = $1",
        )
        .bind(copy_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(override_from_row).collect()
    }

    async fn budget_usage(&self, ids: &[BudgetId]) -> Result<HashMap<BudgetId, BudgetUsage>, StoreError> {
        let mut out = HashMap::new();
        for id in ids {
            let row = sqlx::query("SELECT current_usage, last_reset FROM budget_usage WHERE budget_id = $1")
                .bind(id.0.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
            if let Some(row) = row {
                let usage = BudgetUsage {
                    current_usage: Money::from_micros(row.try_get("current_usage").map_err(map_err)?).unwrap_or(Money::ZERO),
                    last_reset: parse_ts(&text(&row, "last_reset")?)?,
                };
                out.insert(id.clone(), usage);
            }
        }
        Ok(out)
    }

    async fn rate_limit_usage(&self, ids: &[RateLimitId]) -> Result<HashMap<RateLimitId, RateLimitUsage>, StoreError> {
        let mut out = HashMap::new();
        for id in ids {
            let row = sqlx::query(
                "SELECT token_usage, request_usage, token_last_reset, request_last_reset FROM rate_limit_usage WHERE rate_limit_id = $1",
            )
            .bind(id.0.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
            if let Some(row) = row {
                let count = |name: &str| row.try_get::<i64, _>(name).map(|n| u64::try_from(n).unwrap_or(0)).map_err(map_err);
                let usage = RateLimitUsage {
                    tokens: count("token_usage")?,
                    token_window: parse_ts(&text(&row, "token_last_reset")?)?,
                    requests: count("request_usage")?,
                    request_window: parse_ts(&text(&row, "request_last_reset")?)?,
                };
                out.insert(id.clone(), usage);
            }
        }
        Ok(out)
    }

    async fn apply(&self, plan: &[Write]) -> Result<(), StoreError> {
        crate::plan::apply(&self.pool, plan).await
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1").bind(name).fetch_one(&self.pool).await.map_err(map_err)?;
        text(&row, "value")
    }
}
