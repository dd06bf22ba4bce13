//! Version snapshots and the audit trail on SQL; both are written inside the change's transaction.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};
use tollgate_core::audit::{AuditLog, AuditQuery, NewAuditEntry, NewVersion, ProfileVersion};
use tollgate_core::ids::ProfileId;
use tollgate_core::paging::Page;
use tollgate_core::ports::StoreError;

use crate::sql::{Arg, Sql};
use crate::{map_err, parse_ts, ts};

/// Page size of the audit lists when the caller gives none.
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;

pub(crate) async fn insert_version(tx: &mut Transaction<'_, Any>, v: &NewVersion) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO access_profile_versions (access_profile_id, version, name, description, snapshot, changed_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(v.profile_id.0)
    .bind(v.version)
    .bind(v.name.as_str())
    .bind(v.description.clone())
    .bind(v.snapshot.as_str())
    .bind(v.changed_by.as_str())
    .bind(ts(v.created_at))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(crate) async fn insert_audit(tx: &mut Transaction<'_, Any>, e: &NewAuditEntry) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO access_profile_audit_logs (access_profile_id, user_id, actor, action, previous_values, new_values, metadata, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.profile_id.map(|p| p.0))
    .bind(e.user_id.clone())
    .bind(e.actor.as_str())
    .bind(e.action.as_str())
    .bind(e.previous_values.clone())
    .bind(e.new_values.clone())
    .bind(e.metadata.clone())
    .bind(ts(e.created_at))
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

const VERSION_COLUMNS: &str = "id, access_profile_id, version, name, description, snapshot, changed_by, created_at";

fn version_from_row(row: &AnyRow) -> Result<ProfileVersion, StoreError> {
    Ok(ProfileVersion {
        id: row.try_get("id").map_err(map_err)?,
        access_profile_id: row.try_get("access_profile_id").map_err(map_err)?,
        version: row.try_get("version").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        description: row.try_get("description").map_err(map_err)?,
        snapshot: row.try_get("snapshot").map_err(map_err)?,
        changed_by: row.try_get("changed_by").map_err(map_err)?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
    })
}

/// Every version of a profile, newest first.
pub(crate) async fn list_versions(pool: &AnyPool, id: ProfileId) -> Result<Vec<ProfileVersion>, StoreError> {
    let rows =
        sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM access_profile_versions WHERE access_profile_id = $1 ORDER BY version DESC"))
            .bind(id.0)
            .fetch_all(pool)
            .await
            .map_err(map_err)?;
    rows.iter().map(version_from_row).collect()
}

pub(crate) async fn get_version(pool: &AnyPool, id: ProfileId, version: i64) -> Result<Option<ProfileVersion>, StoreError> {
    let row = sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM access_profile_versions WHERE access_profile_id = $1 AND version = $2"))
        .bind(id.0)
        .bind(version)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?;
    row.as_ref().map(version_from_row).transpose()
}

fn push_filter(sql: &mut Sql, q: &AuditQuery) {
    sql.push(" WHERE 1 = 1");
    if let Some(id) = q.profile_id {
        sql.push(" AND access_profile_id = ").bind(Arg::Int(id.0));
    }
    if let Some(action) = q.action {
        sql.push(" AND action = ").bind(Arg::Text(action.as_str().to_owned()));
    }
    if let Some(user) = &q.user_id {
        sql.push(" AND user_id = ").bind(Arg::Text(user.clone()));
    }
}

/// Audit entries matching the query, newest first.
pub(crate) async fn list_audit(pool: &AnyPool, q: &AuditQuery) -> Result<Page<AuditLog>, StoreError> {
    let mut count = Sql::new("SELECT COUNT(*) AS n FROM access_profile_audit_logs");
    push_filter(&mut count, q);
    let mut page = Sql::new(
        "SELECT id, access_profile_id, user_id, actor, action, previous_values, new_values, metadata, created_at FROM access_profile_audit_logs",
    );
    push_filter(&mut page, q);
    page.push(" ORDER BY id DESC LIMIT ").bind(Arg::Int(i64::from(q.paging.limit.unwrap_or(DEFAULT_AUDIT_LIMIT))));
    page.push(" OFFSET ").bind(Arg::Int(i64::from(q.paging.offset)));
    let total: i64 = count.query().fetch_one(pool).await.map_err(map_err)?.try_get("n").map_err(map_err)?;
    let rows = page.query().fetch_all(pool).await.map_err(map_err)?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(AuditLog {
                id: row.try_get("id").map_err(map_err)?,
                access_profile_id: row.try_get("access_profile_id").map_err(map_err)?,
                user_id: row.try_get("user_id").map_err(map_err)?,
                actor: row.try_get("actor").map_err(map_err)?,
                action: row.try_get("action").map_err(map_err)?,
                previous_values: row.try_get("previous_values").map_err(map_err)?,
                new_values: row.try_get("new_values").map_err(map_err)?,
                metadata: row.try_get("metadata").map_err(map_err)?,
                created_at: parse_ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Page { items, total: u64::try_from(total).unwrap_or(0) })
}
