//! `ApiKeyStore` on SQL: management API keys, found by the hash of their value.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::ids::ApiKeyId;
use tollgate_core::paging::{Page, Paging};
use tollgate_core::ports::{ApiKeyStore, StoreError};
use tollgate_core::services::api_keys::ApiKey;

use crate::sql::{Arg, Sql, like_pattern};
use crate::{SqlStore, json_err, map_err, name_key, parse_opt_ts, parse_ts, ts};

const COLUMNS: &str = "id, name, key_prefix, description, scopes, created_by_user_id, expires_at, last_used_at, created_at, updated_at";

fn key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let scopes: String = row.try_get("scopes").map_err(map_err)?;
    Ok(ApiKey {
        id: ApiKeyId(row.try_get("id").map_err(map_err)?),
        name: row.try_get("name").map_err(map_err)?,
        key_prefix: row.try_get("key_prefix").map_err(map_err)?,
        description: row.try_get("description").map_err(map_err)?,
        scopes: serde_json::from_str(&scopes).map_err(|e| json_err(&e))?,
        created_by_user_id: row.try_get("created_by_user_id").map_err(map_err)?,
        expires_at: parse_opt_ts(row.try_get("expires_at").map_err(map_err)?)?,
        last_used_at: parse_opt_ts(row.try_get("last_used_at").map_err(map_err)?)?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        updated_at: parse_ts(&row.try_get::<String, _>("updated_at").map_err(map_err)?)?,
    })
}

fn scopes_text(key: &ApiKey) -> Result<String, StoreError> {
    serde_json::to_string(&key.scopes).map_err(|e| json_err(&e))
}

fn push_search(sql: &mut Sql, search: Option<&str>) {
    if let Some(search) = search.filter(|s| !s.is_empty()) {
        sql.push(" WHERE LOWER(name) LIKE ").bind(Arg::Text(like_pattern(search))).push(" ESCAPE '\\'");
    }
}

#[async_trait]
impl ApiKeyStore for SqlStore {
    async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, name_key, key_prefix, key_hash, description, scopes, created_by_user_id, \
             expires_at, last_used_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(key.id.0)
        .bind(key.name.as_str())
        .bind(name_key(&key.name))
        .bind(key.key_prefix.as_str())
        .bind(key_hash)
        .bind(key.description.clone())
        .bind(scopes_text(key)?)
        .bind(key.created_by_user_id.clone())
        .bind(key.expires_at.map(ts))
        .bind(key.last_used_at.map(ts))
        .bind(ts(key.created_at))
        .bind(ts(key.updated_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list_api_keys(&self, search: Option<&str>, paging: Paging) -> Result<Page<ApiKey>, StoreError> {
        let mut count = Sql::new("SELECT COUNT(*) AS n FROM api_keys");
        push_search(&mut count, search);
        let mut page = Sql::new(&format!("SELECT {COLUMNS} FROM api_keys"));
        push_search(&mut page, search);
        page.push(" ORDER BY id LIMIT ").bind(Arg::Int(paging.limit.map_or(i64::MAX, i64::from)));
        page.push(" OFFSET ").bind(Arg::Int(i64::from(paging.offset)));
        let total: i64 = count.query().fetch_one(&self.pool).await.map_err(map_err)?.try_get("n").map_err(map_err)?;
        let rows = page.query().fetch_all(&self.pool).await.map_err(map_err)?;
        let items = rows.iter().map(key_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, total: u64::try_from(total).unwrap_or(0) })
    }

    async fn get_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn update_api_key(&self, key: &ApiKey) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET name = $1, name_key = $2, description = $3, scopes = $4, expires_at = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(key.name.as_str())
        .bind(name_key(&key.name))
        .bind(key.description.clone())
        .bind(scopes_text(key)?)
        .bind(key.expires_at.map(ts))
        .bind(ts(key.updated_at))
        .bind(key.id.0)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_api_key(&self, id: ApiKeyId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(id.0).execute(&self.pool).await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(ts(at))
            .bind(id.0)
            .bind(ts(at - Duration::minutes(1)))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
