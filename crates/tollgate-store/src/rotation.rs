//! Scheduled key rotation in SQL: which profiles and keys are due, and the guarded write that
//! replaces a key's value while keeping its previous hash for the grace period.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tollgate_core::ids::ProfileId;
use tollgate_core::ports::StoreError;
use tollgate_core::rotation::{DueKey, DueProfile, KeyRotation, RotationStore};

use crate::tx::{Tx, exec, guard};
use crate::{SqlStore, map_err, parse_ts, ts};

#[async_trait]
impl RotationStore for SqlStore {
    async fn due_profiles(&self, now: DateTime<Utc>) -> Result<Vec<DueProfile>, StoreError> {
        // Fixed-width RFC 3339 text: text order is time order.
        let rows = sqlx::query(
            "SELECT id, auto_rotation_interval, next_rotation_at FROM access_profiles \
             WHERE auto_rotation_interval > 0 AND next_rotation_at IS NOT NULL AND next_rotation_at <= $1 ORDER BY next_rotation_at, id",
        )
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(DueProfile {
                    profile_id: ProfileId(r.try_get("id").map_err(map_err)?),
                    interval: r.try_get("auto_rotation_interval").map_err(map_err)?,
                    next_rotation_at: parse_ts(&r.try_get::<String, _>("next_rotation_at").map_err(map_err)?)?,
                })
            })
            .collect()
    }

    async fn due_keys(&self, profile: ProfileId, due_at: DateTime<Utc>, limit: u32) -> Result<Vec<DueKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT k.id, k.name, k.user_id, k.value_hash FROM virtual_keys k JOIN user_access_profiles c ON c.id = k.copy_id \
             WHERE c.parent_profile_id = $1 AND COALESCE(k.rotated_at, k.created_at) < $2 ORDER BY k.id LIMIT $3",
        )
        .bind(profile.0)
        .bind(ts(due_at))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(DueKey {
                    id: r.try_get("id").map_err(map_err)?,
                    name: r.try_get("name").map_err(map_err)?,
                    user_id: r.try_get("user_id").map_err(map_err)?,
                    value_hash: r.try_get("value_hash").map_err(map_err)?,
                })
            })
            .collect()
    }
}

/// Replaces the key's value if it is still the one rotated from (`Stale` otherwise): the current
/// hash moves to `previous_value_hash`, valid until `previous_value_expires_at`.
pub(crate) async fn rotate_key(tx: &mut Tx, r: &KeyRotation) -> Result<(), StoreError> {
    let q = sqlx::query(
        "UPDATE virtual_keys SET previous_value_hash = value_hash, previous_value_expires_at = $1, value_hash = $2, \
         value_sealed = $3, value_masked = $4, rotated_at = $5, updated_at = $5 WHERE id = $6 AND value_hash = $7",
    )
    .bind(ts(r.previous_value_expires_at))
    .bind(r.value_hash.as_str())
    .bind(r.value_sealed.as_str())
    .bind(r.value_masked.as_str())
    .bind(ts(r.rotated_at))
    .bind(r.key_id.as_str())
    .bind(r.expected_hash.as_str());
    guard(exec(tx, q).await?)
}
