//! `ProfileStore` on SQL: templates with their tags, guarded delete, id sequences.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tollgate_core::audit::{AuditLog, AuditQuery, NewAuditEntry, NewVersion, ProfileVersion};
use tollgate_core::ids::{ProfileId, Sequence};
use tollgate_core::paging::Page;
use tollgate_core::ports::{DeleteOutcome, ProfileFilter, ProfileStore, RoleAttachment, StoreError};
use tollgate_core::profile::{AccessProfile, Policy, Rotation};

use crate::sql::{Arg, Sql, like_pattern};
use crate::{SqlStore, json_err, map_err, name_key, parse_opt_ts, parse_ts, ts};

const PROFILE_COLUMNS: &str = "p.id, p.name, p.description, p.is_active, p.version, p.tags, p.policy, \
     p.auto_rotation_interval, p.next_rotation_at, p.last_rotation_at, p.created_at, p.updated_at";

fn profile_from_row(row: &AnyRow) -> Result<AccessProfile, StoreError> {
    let get_text = |col: &str| row.try_get::<String, _>(col).map_err(map_err);
    let tags: Vec<String> = serde_json::from_str(&get_text("tags")?).map_err(|e| json_err(&e))?;
    let policy: Policy = serde_json::from_str(&get_text("policy")?).map_err(|e| json_err(&e))?;
    Ok(AccessProfile {
        id: ProfileId(row.try_get("id").map_err(map_err)?),
        name: get_text("name")?,
        description: row.try_get("description").map_err(map_err)?,
        is_active: row.try_get::<i64, _>("is_active").map_err(map_err)? != 0,
        version: row.try_get("version").map_err(map_err)?,
        tags,
        policy,
        rotation: Rotation {
            auto_rotation_interval: row.try_get("auto_rotation_interval").map_err(map_err)?,
            next_rotation_at: parse_opt_ts(row.try_get("next_rotation_at").map_err(map_err)?)?,
            last_rotation_at: parse_opt_ts(row.try_get("last_rotation_at").map_err(map_err)?)?,
        },
        created_at: parse_ts(&get_text("created_at")?)?,
        updated_at: parse_ts(&get_text("updated_at")?)?,
    })
}

/// The stored forms of a profile's JSON members.
fn encoded(profile: &AccessProfile) -> Result<(String, String), StoreError> {
    let tags = serde_json::to_string(&profile.tags).map_err(|e| json_err(&e))?;
    let policy = serde_json::to_string(&profile.policy).map_err(|e| json_err(&e))?;
    Ok((tags, policy))
}

fn opt_ts(at: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    at.map(crate::ts)
}

async fn write_tags(tx: &mut Transaction<'_, Any>, profile: &AccessProfile) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM access_profile_tags WHERE profile_id = $1").bind(profile.id.0).execute(&mut **tx).await.map_err(map_err)?;
    for tag in &profile.tags {
        sqlx::query("INSERT INTO access_profile_tags (profile_id, tag) VALUES ($1, $2)")
            .bind(profile.id.0)
            .bind(tag.as_str())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

impl SqlStore {
    async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        self.pool.begin().await.map_err(map_err)
    }
}

#[async_trait]
impl ProfileStore for SqlStore {
    async fn next_ids(&self, sequence: Sequence, n: u32) -> Result<Vec<i64>, StoreError> {
        let row = sqlx::query("UPDATE id_sequences SET next_value = next_value + $1 WHERE name = $2 RETURNING next_value")
            .bind(i64::from(n))
            .bind(sequence.name())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let end: i64 = row.try_get("next_value").map_err(map_err)?;
        Ok((end - i64::from(n)..end).collect())
    }

    async fn list_profiles(&self, filter: &ProfileFilter) -> Result<Page<AccessProfile>, StoreError> {
        let mut count = Sql::new("SELECT COUNT(*) AS n FROM access_profiles p");
        push_filter(&mut count, filter);
        let mut page = Sql::new(&format!("SELECT {PROFILE_COLUMNS} FROM access_profiles p"));
        push_filter(&mut page, filter);
        page.push(" ORDER BY p.id LIMIT ").bind(Arg::Int(filter.paging.limit.map_or(i64::MAX, i64::from)));
        page.push(" OFFSET ").bind(Arg::Int(i64::from(filter.paging.offset)));
        let total: i64 = count.query().fetch_one(&self.pool).await.map_err(map_err)?.try_get("n").map_err(map_err)?;
        let rows = page.query().fetch_all(&self.pool).await.map_err(map_err)?;
        let items = rows.iter().map(profile_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, total: u64::try_from(total).unwrap_or(0) })
    }

    async fn get_profile(&self, id: ProfileId) -> Result<Option<AccessProfile>, StoreError> {
        let row = sqlx::query(&format!("SELECT {PROFILE_COLUMNS} FROM access_profiles p WHERE p.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(profile_from_row).transpose()
    }

    async fn insert_profile(&self, profile: &AccessProfile, version: &NewVersion, audit: &NewAuditEntry) -> Result<(), StoreError> {
        let (tags, policy) = encoded(profile)?;
        let mut tx = self.begin().await?;
        let insert = sqlx::query(
            "INSERT INTO access_profiles (name, name_key, description, is_active, version, tags, policy, auto_rotation_interval, \
             next_rotation_at, last_rotation_at, updated_at, id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        );
        bind_columns(insert, profile, tags, policy)
            .bind(profile.id.0)
            .bind(ts(profile.created_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        write_tags(&mut tx, profile).await?;
        crate::audit::insert_version(&mut tx, version).await?;
        crate::audit::insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn update_profile(
        &self,
        expected_version: i64,
        profile: &AccessProfile,
        version: &NewVersion,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        update_profile_tx(&mut tx, expected_version, profile, version).await?;
        crate::audit::insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_profile(&self, id: ProfileId, audit: &NewAuditEntry) -> Result<DeleteOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "DELETE FROM access_profiles WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM user_access_profiles u WHERE u.parent_profile_id = $1)",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await;
        let deleted = match done {
            Ok(done) => done.rows_affected() > 0,
            // A copy committed between the check and the delete: the foreign key refuses.
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => false,
            Err(e) => return Err(map_err(e)),
        };
        if !deleted {
            drop(tx);
            let copies = self.copy_count(id).await?;
            return Ok(if copies > 0 { DeleteOutcome::HasCopies(copies) } else { DeleteOutcome::NotFound });
        }
        crate::audit::insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(DeleteOutcome::Deleted)
    }

    async fn copy_count(&self, id: ProfileId) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM user_access_profiles WHERE parent_profile_id = $1")
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let n: i64 = row.try_get("n").map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn role_attachments(&self, id: ProfileId) -> Result<Vec<RoleAttachment>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.access_profile_id, a.role_id, r.name AS role_name, a.is_default \
             FROM access_profile_roles a JOIN roles r ON r.id = a.role_id WHERE a.access_profile_id = $1 ORDER BY a.id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                Ok(RoleAttachment {
                    id: row.try_get("id").map_err(map_err)?,
                    access_profile_id: row.try_get("access_profile_id").map_err(map_err)?,
                    role_id: row.try_get("role_id").map_err(map_err)?,
                    role_name: row.try_get("role_name").map_err(map_err)?,
                    is_default: row.try_get::<i64, _>("is_default").map_err(map_err)? != 0,
                })
            })
            .collect()
    }

    async fn list_versions(&self, id: ProfileId) -> Result<Vec<ProfileVersion>, StoreError> {
        crate::audit::list_versions(&self.pool, id).await
    }

    async fn get_version(&self, id: ProfileId, version: i64) -> Result<Option<ProfileVersion>, StoreError> {
        crate::audit::get_version(&self.pool, id, version).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditLog>, StoreError> {
        crate::audit::list_audit(&self.pool, query).await
    }
}

/// Appends the list filter (search, active state, every requested tag) as a WHERE clause.
fn push_filter(sql: &mut Sql, filter: &ProfileFilter) {
    sql.push(" WHERE 1 = 1");
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = like_pattern(search);
        sql.push(" AND (LOWER(p.name) LIKE ").bind(Arg::Text(pattern.clone()));
        sql.push(" ESCAPE '\\' OR LOWER(COALESCE(p.description, '')) LIKE ").bind(Arg::Text(pattern)).push(" ESCAPE '\\')");
    }
    if let Some(active) = filter.is_active {
        sql.push(" AND p.is_active = ").bind(Arg::Int(i64::from(active)));
    }
    for tag in &filter.tags {
        sql.push(" AND EXISTS (SELECT 1 FROM access_profile_tags t WHERE t.profile_id = p.id AND t.tag = ");
        sql.bind(Arg::Text(tag.clone())).push(")");
    }
}

/// Replaces a template at `expected_version` with its tags and new version row, inside `tx`.
pub(crate) async fn update_profile_tx(
    tx: &mut Transaction<'_, Any>,
    expected_version: i64,
    profile: &AccessProfile,
    version: &NewVersion,
) -> Result<(), StoreError> {
    let (tags, policy) = encoded(profile)?;
    let update = sqlx::query(
        "UPDATE access_profiles SET name = $1, name_key = $2, description = $3, is_active = $4, version = $5, tags = $6, \
         policy = $7, auto_rotation_interval = $8, next_rotation_at = $9, last_rotation_at = COALESCE(last_rotation_at, $10), \
         updated_at = $11 WHERE id = $12 AND version = $13",
    );
    // `last_rotation_at` is the scheduler's: an edit made from an older read must not move it back.
    let done =
        bind_columns(update, profile, tags, policy).bind(profile.id.0).bind(expected_version).execute(&mut **tx).await.map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Stale);
    }
    write_tags(tx, profile).await?;
    crate::audit::insert_version(tx, version).await
}

/// Binds $1..$11, the columns every profile write sets, in the order both statements use.
fn bind_columns<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    profile: &'q AccessProfile,
    tags: String,
    policy: String,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(profile.name.as_str())
        .bind(name_key(&profile.name))
        .bind(profile.description.clone())
        .bind(i64::from(profile.is_active))
        .bind(profile.version)
        .bind(tags)
        .bind(policy)
        .bind(profile.rotation.auto_rotation_interval)
        .bind(opt_ts(profile.rotation.next_rotation_at))
        .bind(opt_ts(profile.rotation.last_rotation_at))
        .bind(ts(profile.updated_at))
}
