//! `McpStore` on SQL: MCP clients (one JSON document each, secrets sealed inside) and Virtual
//! MCPs (their tools as a JSON list).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::mcp_clients::{McpClient, McpStore, VirtualMcp};
use tollgate_core::ports::StoreError;

use crate::{SqlStore, json_err, map_err, parse_ts, ts};

const GROUP_COLUMNS: &str = "id, name, endpoint_slug, enabled, tools, created_at, updated_at";

fn client_from_row(row: &AnyRow) -> Result<McpClient, StoreError> {
    let config: String = row.try_get("config").map_err(map_err)?;
    serde_json::from_str(&config).map_err(|e| json_err(&e))
}

fn group_from_row(row: &AnyRow) -> Result<VirtualMcp, StoreError> {
    let tools: String = row.try_get("tools").map_err(map_err)?;
    Ok(VirtualMcp {
        id: row.try_get("id").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        endpoint_slug: row.try_get("endpoint_slug").map_err(map_err)?,
        enabled: row.try_get::<i64, _>("enabled").map_err(map_err)? != 0,
        tools: serde_json::from_str(&tools).map_err(|e| json_err(&e))?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        updated_at: parse_ts(&row.try_get::<String, _>("updated_at").map_err(map_err)?)?,
    })
}

fn text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| json_err(&e))
}

impl SqlStore {
    /// Every MCP client and Virtual MCP, for a governance load.
    pub(crate) async fn mcp_catalog_rows(&self) -> Result<(Vec<McpClient>, Vec<VirtualMcp>), StoreError> {
        Ok((self.list_mcp_clients().await?, self.list_virtual_mcps().await?))
    }
}

#[async_trait]
impl McpStore for SqlStore {
    async fn list_mcp_clients(&self) -> Result<Vec<McpClient>, StoreError> {
        let rows = sqlx::query("SELECT config FROM mcp_clients ORDER BY name").fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn insert_mcp_client(&self, client: &McpClient) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO mcp_clients (client_id, name, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(client.client_id.as_str())
            .bind(client.name.as_str())
            .bind(text(client)?)
            .bind(ts(client.created_at))
            .bind(ts(client.updated_at))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn replace_mcp_client(&self, client: &McpClient) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE mcp_clients SET name = $2, config = $3, updated_at = $4 WHERE client_id = $1")
            .bind(client.client_id.as_str())
            .bind(client.name.as_str())
            .bind(text(client)?)
            .bind(ts(client.updated_at))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_mcp_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM mcp_clients WHERE client_id = $1").bind(client_id).execute(&self.pool).await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_virtual_mcps(&self) -> Result<Vec<VirtualMcp>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {GROUP_COLUMNS} FROM virtual_mcps ORDER BY id")).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(group_from_row).collect()
    }

    async fn insert_virtual_mcp(&self, group: &VirtualMcp) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO virtual_mcps ({GROUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(group.id)
            .bind(group.name.as_str())
            .bind(group.endpoint_slug.as_str())
            .bind(i64::from(group.enabled))
            .bind(text(&group.tools)?)
            .bind(ts(group.created_at))
            .bind(ts(group.updated_at))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn replace_virtual_mcp(&self, group: &VirtualMcp) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE virtual_mcps SET name = $2, enabled = $3, tools = $4, updated_at = $5 WHERE id = $1")
            .bind(group.id)
            .bind(group.name.as_str())
            .bind(i64::from(group.enabled))
            .bind(text(&group.tools)?)
            .bind(ts(group.updated_at))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_virtual_mcp(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM virtual_mcps WHERE id = $1").bind(id).execute(&self.pool).await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
