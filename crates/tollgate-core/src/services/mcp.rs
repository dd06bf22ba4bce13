//! MCP use cases: define, read, replace and delete MCP clients and Virtual MCPs, apply the ones
//! the config file declares, and ask the running MCP surface (through `McpRuntime`) for each
//! client's state and tools or a reconnect. Secrets are sealed before they reach the store and
//! masked in every answer.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{CoreError, Problems};
use crate::mcp::{McpConnectionState, McpRuntime, McpToolInfo};
use crate::mcp_clients::{
    McpClient, McpClientRequest, McpRules, VirtualMcp, VirtualMcpRequest, checked_client, checked_group, masked, seal_secrets,
};
use crate::paging::{Page, Paging};
use crate::ports::{Store, StoreError};
use crate::vkeys::Sealer;

pub use crate::mcp_clients::McpStore;

/// One client as the list shows it: its settings (secrets masked), its tools and its state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct McpClientEntry {
    pub config: McpClient,
    pub tools: Vec<McpToolInfo>,
    pub state: McpConnectionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone)]
pub struct McpService {
    store: Arc<dyn Store>,
    sealer: Sealer,
    rules: Arc<McpRules>,
    runtime: Option<Arc<dyn McpRuntime>>,
}

impl std::fmt::Debug for McpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpService").finish_non_exhaustive()
    }
}

fn client_missing(id: &str) -> CoreError {
    CoreError::NotFound(format!("MCP client '{id}' not found"))
}

fn group_missing(id: i64) -> CoreError {
    CoreError::NotFound(format!("Virtual MCP {id} not found"))
}

fn taken(e: StoreError, what: &str) -> CoreError {
    match e {
        StoreError::Duplicate => CoreError::Conflict(format!("{what} is taken")),
        other => other.into(),
    }
}

impl McpService {
    /// A service under the default rules (no stdio command allowed) and no running surface; the
    /// binary adds both.
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        Self { store, sealer, rules: Arc::default(), runtime: None }
    }

    #[must_use]
    pub fn with_rules(self, rules: McpRules) -> Self {
        Self { rules: Arc::new(rules), ..self }
    }

    #[must_use]
    pub fn with_runtime(self, runtime: Arc<dyn McpRuntime>) -> Self {
        Self { runtime: Some(runtime), ..self }
    }

    fn entry(&self, client: McpClient) -> McpClientEntry {
        let status = self.runtime.as_ref().and_then(|r| r.status(&client.client_id));
        let (state, reason, tools) = match status {
            Some(s) => (s.state, s.reason, s.tools),
            None if client.disabled => (McpConnectionState::Disabled, None, Vec::new()),
            None => (McpConnectionState::Connecting, None, Vec::new()),
        };
        McpClientEntry { config: masked(client, &self.sealer), tools, state, reason }
    }

    /// Clients whose name or id holds `search` (any case), by name, a page of them.
    pub async fn list(&self, search: Option<&str>, paging: Paging) -> Result<Page<McpClientEntry>, CoreError> {
        let needle = search.map(str::to_lowercase).unwrap_or_default();
        let mut all: Vec<McpClient> = self
            .store
            .list_mcp_clients()
            .await?
            .into_iter()
            .filter(|c| needle.is_empty() || c.name.to_lowercase().contains(&needle) || c.client_id.to_lowercase().contains(&needle))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let total = all.len() as u64;
        let offset = usize::try_from(paging.offset).unwrap_or(usize::MAX);
        let limit = paging.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let items = all.into_iter().skip(offset).take(limit).map(|c| self.entry(c)).collect();
        Ok(Page { items, total })
    }

    async fn stored(&self, id: &str) -> Result<McpClient, CoreError> {
        self.store.list_mcp_clients().await?.into_iter().find(|c| c.client_id == id).ok_or_else(|| client_missing(id))
    }

    pub async fn get(&self, id: &str) -> Result<McpClientEntry, CoreError> {
        self.stored(id).await.map(|c| self.entry(c))
    }

    pub async fn create(&self, req: McpClientRequest) -> Result<McpClientEntry, CoreError> {
        let id = req.client_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let mut p = Problems::default();
        let mut client = checked_client(req, id, &self.rules, false, &mut p);
        p.into_result(())?;
        self.refuse_declared_name(&client.name)?;
        seal_secrets(&mut client, None, &self.sealer)?;
        self.store.insert_mcp_client(&client).await.map_err(|e| taken(e, "the client id or name"))?;
        Ok(self.entry(client))
    }

    fn refuse_declared_name(&self, name: &str) -> Result<(), CoreError> {
        if self.rules.declared.iter().any(|d| d == name) {
            return Err(CoreError::Conflict(format!("MCP client '{name}' is declared in the config file, which owns it")));
        }
        Ok(())
    }

    /// Replaces a client's settings whole (its id stays; masked secrets sent back are kept).
    pub async fn replace(&self, id: &str, req: McpClientRequest) -> Result<McpClientEntry, CoreError> {
        let stored = self.stored(id).await?;
        if stored.declared {
            return Err(CoreError::Conflict(format!("MCP client '{}' is declared in the config file; change it there", stored.name)));
        }
        if req.client_id.as_deref().is_some_and(|given| given != id) {
            return Err(CoreError::invalid("client_id", "cannot change; it is the path's"));
        }
        let mut p = Problems::default();
        let mut client = checked_client(req, id.to_owned(), &self.rules, false, &mut p);
        p.into_result(())?;
        self.refuse_declared_name(&client.name)?;
        client.created_at = stored.created_at;
        seal_secrets(&mut client, Some(&stored), &self.sealer)?;
        if !self.store.replace_mcp_client(&client).await.map_err(|e| taken(e, "the client name"))? {
            return Err(client_missing(id));
        }
        Ok(self.entry(client))
    }

    /// Deletes a client no Virtual MCP names.
    pub async fn delete(&self, id: &str) -> Result<(), CoreError> {
        let stored = self.stored(id).await?;
        if stored.declared {
            return Err(CoreError::Conflict(format!("MCP client '{}' is declared in the config file; remove it there", stored.name)));
        }
        let users: Vec<String> = self
            .store
            .list_virtual_mcps()
            .await?
            .into_iter()
            .filter(|g| g.tools.iter().any(|t| t.mcp_client_id == id))
            .map(|g| g.name)
            .collect();
        if !users.is_empty() {
            return Err(CoreError::Conflict(format!("MCP client '{id}' is part of Virtual MCPs {users:?}; take it out of them first")));
        }
        if !self.store.delete_mcp_client(id).await? {
            return Err(client_missing(id));
        }
        Ok(())
    }

    /// Asks the running surface to drop and re-open the client's connection.
    pub async fn reconnect(&self, id: &str) -> Result<McpClientEntry, CoreError> {
        let client = self.stored(id).await?;
        if let Some(runtime) = &self.runtime {
            runtime.reconnect(id);
        }
        Ok(self.entry(client))
    }

    /// Applies the config file's clients at start-up: each is created or replaced whole, marked
    /// as declared (read-only through the API); stdio commands are not limited for them.
    pub async fn apply_declared(&self, declared: Vec<McpClientRequest>) -> Result<(), CoreError> {
        let existing = self.store.list_mcp_clients().await?;
        for req in declared {
            let name = req.name.clone().unwrap_or_default();
            let by_name = existing.iter().find(|c| c.name == name);
            let id = req.client_id.clone().or_else(|| by_name.map(|c| c.client_id.clone())).unwrap_or_else(|| name.clone());
            let mut p = Problems::default();
            let mut client = checked_client(req, id, &self.rules, true, &mut p);
            p.into_result(()).map_err(|e| CoreError::invalid(format!("mcp_clients.{name}"), e.to_string()))?;
            let stored = existing.iter().find(|c| c.client_id == client.client_id);
            seal_secrets(&mut client, stored, &self.sealer)?;
            match stored {
                Some(old) => {
                    client.created_at = old.created_at;
                    self.store.replace_mcp_client(&client).await.map_err(|e| taken(e, "the client name"))?;
                }
                None => self.store.insert_mcp_client(&client).await.map_err(|e| taken(e, "the client id or name"))?,
            }
        }
        Ok(())
    }

    pub async fn list_groups(&self) -> Result<Vec<VirtualMcp>, CoreError> {
        let mut groups = self.store.list_virtual_mcps().await?;
        groups.sort_by_key(|g| g.id);
        Ok(groups)
    }

    pub async fn get_group(&self, id: i64) -> Result<VirtualMcp, CoreError> {
        self.store.list_virtual_mcps().await?.into_iter().find(|g| g.id == id).ok_or_else(|| group_missing(id))
    }

    pub async fn create_group(&self, req: VirtualMcpRequest) -> Result<VirtualMcp, CoreError> {
        let clients = self.store.list_mcp_clients().await?;
        let mut p = Problems::default();
        let mut group = checked_group(req, 0, &clients, &mut p);
        p.into_result(())?;
        group.id = self.store.next_ids(crate::ids::Sequence::VirtualMcp, 1).await?.first().copied().unwrap_or_default();
        self.store.insert_virtual_mcp(&group).await.map_err(|e| taken(e, "the name or endpoint_slug"))?;
        Ok(group)
    }

    /// Replaces a Virtual MCP whole; its `endpoint_slug` may be sent again but not changed.
    pub async fn replace_group(&self, id: i64, req: VirtualMcpRequest) -> Result<VirtualMcp, CoreError> {
        let stored = self.get_group(id).await?;
        let slug = req.endpoint_slug.clone();
        if slug.as_deref().is_some_and(|s| s != stored.endpoint_slug) {
            return Err(CoreError::invalid("endpoint_slug", "cannot change once set"));
        }
        let req = VirtualMcpRequest { endpoint_slug: Some(stored.endpoint_slug.clone()), ..req };
        let clients = self.store.list_mcp_clients().await?;
        let mut p = Problems::default();
        let mut group = checked_group(req, id, &clients, &mut p);
        p.into_result(())?;
        group.created_at = stored.created_at;
        if !self.store.replace_virtual_mcp(&group).await.map_err(|e| taken(e, "the name"))? {
            return Err(group_missing(id));
        }
        Ok(group)
    }

    pub async fn delete_group(&self, id: i64) -> Result<(), CoreError> {
        if self.store.delete_virtual_mcp(id).await? { Ok(()) } else { Err(group_missing(id)) }
    }
}
