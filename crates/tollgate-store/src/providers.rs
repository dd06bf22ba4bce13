//! `ProviderStore` on SQL: providers with their network settings, and their keys with sealed
//! secrets (the redacted form is stored beside them for answers).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::ports::StoreError;
use tollgate_core::providers::{Provider, ProviderKey, RedactedSecret};
use tollgate_core::services::providers::ProviderStore;

use crate::{SqlStore, json_err, map_err, parse_ts, ts};

const PROVIDER_COLUMNS: &str = "name, network_config, custom_provider_config, created_at, updated_at";
const KEY_COLUMNS: &str = "id, provider, name, value_sealed, value_redacted, env_var, models, weight, enabled, created_at, updated_at";

fn provider_from_row(row: &AnyRow) -> Result<Provider, StoreError> {
    let network: String = row.try_get("network_config").map_err(map_err)?;
    let custom: Option<String> = row.try_get("custom_provider_config").map_err(map_err)?;
    Ok(Provider {
        name: row.try_get("name").map_err(map_err)?,
        network_config: serde_json::from_str(&network).map_err(|e| json_err(&e))?,
        custom_provider_config: custom.map(|c| serde_json::from_str(&c)).transpose().map_err(|e| json_err(&e))?,
        provider_status: "active".into(),
        created_at: parse_ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        updated_at: parse_ts(&row.try_get::<String, _>("updated_at").map_err(map_err)?)?,
    })
}

fn key_from_row(row: &AnyRow) -> Result<(ProviderKey, String), StoreError> {
    let env_var: String = row.try_get("env_var").map_err(map_err)?;
    let models: String = row.try_get("models").map_err(map_err)?;
    let key = ProviderKey {
        id: row.try_get("id").map_err(map_err)?,
        provider: row.try_get("provider").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        value: RedactedSecret { value: row.try_get("value_redacted").map_err(map_err)?, from_env: !env_var.is_empty(), env_var },
        models: serde_json::from_str(&models).map_err(|e| json_err(&e))?,
        weight: row.try_get("weight").map_err(map_err)?,
        enabled: row.try_get::<i64, _>("enabled").map_err(map_err)? != 0,
        created_at: parse_ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        updated_at: parse_ts(&row.try_get::<String, _>("updated_at").map_err(map_err)?)?,
    };
    Ok((key, row.try_get("value_sealed").map_err(map_err)?))
}

fn text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| json_err(&e))
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds $1..$10 of a key row (all but the sealed secret).
fn bind_key<'q>(query: Query<'q>, key: &'q ProviderKey, models: String) -> Query<'q> {
    query
        .bind(key.id.as_str())
        .bind(key.provider.as_str())
        .bind(key.name.as_str())
        .bind(key.value.value.as_str())
        .bind(key.value.env_var.as_str())
        .bind(models)
        .bind(key.weight)
        .bind(i64::from(key.enabled))
        .bind(ts(key.created_at))
        .bind(ts(key.updated_at))
}

const INSERT_KEY: &str = "INSERT INTO provider_keys (id, provider, name, value_redacted, env_var, models, weight, enabled, created_at, updated_at, value_sealed) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

#[async_trait]
impl ProviderStore for SqlStore {
    async fn list_providers(&self) -> Result<Vec<Provider>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {PROVIDER_COLUMNS} FROM providers ORDER BY name")).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(provider_from_row).collect()
    }

    async fn get_provider(&self, name: &str) -> Result<Option<Provider>, StoreError> {
        let row = sqlx::query(&format!("SELECT {PROVIDER_COLUMNS} FROM providers WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(provider_from_row).transpose()
    }

    async fn insert_provider(&self, provider: &Provider, keys: &[(ProviderKey, String)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO providers (name, network_config, custom_provider_config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(provider.name.as_str())
        .bind(text(&provider.network_config)?)
        .bind(provider.custom_provider_config.as_ref().map(text).transpose()?)
        .bind(ts(provider.created_at))
        .bind(ts(provider.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        for (key, sealed) in keys {
            bind_key(sqlx::query(INSERT_KEY), key, text(&key.models)?).bind(sealed.as_str()).execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn replace_provider(&self, provider: &Provider) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE providers SET network_config = $1, custom_provider_config = $2, updated_at = $3 WHERE name = $4")
            .bind(text(&provider.network_config)?)
            .bind(provider.custom_provider_config.as_ref().map(text).transpose()?)
            .bind(ts(provider.updated_at))
            .bind(provider.name.as_str())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_provider(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("DELETE FROM provider_keys WHERE provider = $1").bind(name).execute(&mut *tx).await.map_err(map_err)?;
        let done = sqlx::query("DELETE FROM providers WHERE name = $1").bind(name).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_provider_keys(&self, provider: Option<&str>) -> Result<Vec<ProviderKey>, StoreError> {
        let rows = match provider {
            Some(p) => {
                sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM provider_keys WHERE provider = $1 ORDER BY created_at, id"))
                    .bind(p)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM provider_keys ORDER BY provider, created_at, id"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(map_err)?;
        rows.iter().map(|r| key_from_row(r).map(|(k, _)| k)).collect()
    }

    async fn insert_provider_key(&self, key: &ProviderKey, sealed: &str) -> Result<(), StoreError> {
        bind_key(sqlx::query(INSERT_KEY), key, text(&key.models)?).bind(sealed).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn replace_provider_key(&self, key: &ProviderKey, sealed: Option<&str>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE provider_keys SET name = $1, value_redacted = $2, env_var = $3, models = $4, weight = $5, enabled = $6, updated_at = $7, \
             value_sealed = COALESCE($8, value_sealed) WHERE id = $9 AND provider = $10",
        )
        .bind(key.name.as_str())
        .bind(key.value.value.as_str())
        .bind(key.value.env_var.as_str())
        .bind(text(&key.models)?)
        .bind(key.weight)
        .bind(i64::from(key.enabled))
        .bind(ts(key.updated_at))
        .bind(sealed)
        .bind(key.id.as_str())
        .bind(key.provider.as_str())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_provider_key(&self, provider: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM provider_keys WHERE id = $1 AND provider = $2")
            .bind(id)
            .bind(provider)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn sealed_provider_keys(&self) -> Result<Vec<(ProviderKey, String)>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM provider_keys ORDER BY provider, created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(key_from_row).collect()
    }
}
