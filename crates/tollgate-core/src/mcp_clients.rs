//! MCP clients and Virtual MCPs as the management API keeps them: the requests that define them,
//! their validation, the stored records (header and environment values sealed), and the opening
//! of stored records into the catalog the MCP surface serves.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::egress::EgressPolicy;
use crate::error::Problems;
use crate::mcp::{McpCatalog, McpClientSpec, McpConnectionType, McpEndpoint, ToolSelection, VirtualMcpSpec, VirtualMcpTools};
use crate::money::Money;
use crate::provider_headers;
use crate::store_error::StoreError;
use crate::vkeys::Sealer;

/// What the operator decided about MCP clients (`[mcp]` in the config file).
#[derive(Debug, Clone, Default)]
pub struct McpRules {
    pub egress: EgressPolicy,
    /// Commands a stdio client defined through the API may run (exact match); empty: none.
    pub stdio_commands: Vec<String>,
    /// Client names the config file declares; the API may not define or change them.
    pub declared: Vec<String>,
}

/// How to start a stdio client. `envs` values are secrets: sealed at rest, never served.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct StdioConfig {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables the process gets (it inherits nothing else), name to value.
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
}

/// Body of `POST /api/mcp/client` and `PUT /api/mcp/client/{id}` (a full replacement; `client_id`
/// is the path's on PUT). A header or environment value sent back as served (masked) keeps the
/// stored secret.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpClientRequest {
    /// Letters, digits, '_' or '-'; generated when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Letters, digits or '_' (no '-': tools are served as `<name>-<tool>`).
    #[serde(default)]
    #[schema(required = true, value_type = String)]
    pub name: Option<String>,
    /// `http` (streamable HTTP) or `stdio`; `sse` is refused.
    #[serde(default)]
    #[schema(required = true, value_type = String)]
    pub connection_type: Option<String>,
    /// The server's URL, for `http`.
    #[serde(default)]
    pub connection_string: Option<String>,
    #[serde(default)]
    pub stdio_config: Option<StdioConfig>,
    /// Sent with every request to the server (values sealed at rest).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The client's own tool list: `["*"]` all (the default), `[]` none.
    #[serde(default)]
    pub tools_to_execute: Option<ToolSelection>,
    #[serde(default)]
    pub allow_on_all_virtual_keys: Option<bool>,
    /// Minutes between re-reads of the tool list; 0 or absent: only on change notifications.
    #[serde(default)]
    #[schema(maximum = 10080)]
    pub tool_sync_interval: Option<u64>,
    /// Dollars charged per call, by the tool's own name.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, f64>)]
    pub tool_pricing: Option<BTreeMap<String, Money>>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// An MCP client as stored (header and env values sealed) and, masked, as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpClient {
    pub client_id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub connection_type: McpConnectionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_config: Option<StdioConfig>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub tools_to_execute: ToolSelection,
    pub allow_on_all_virtual_keys: bool,
    pub tool_sync_interval: u64,
    #[schema(value_type = BTreeMap<String, f64>)]
    pub tool_pricing: BTreeMap<String, Money>,
    pub disabled: bool,
    /// Declared in the config file (read-only through the API).
    #[serde(default)]
    pub declared: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of the Virtual MCP routes (`endpoint_slug` cannot change once set).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualMcpRequest {
    #[serde(default)]
    #[schema(required = true, value_type = String)]
    pub name: Option<String>,
    /// Lowercase letters, digits, '-' or '_'; unique; immutable.
    #[serde(default)]
    #[schema(required = true, value_type = String)]
    pub endpoint_slug: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub tools: Option<Vec<VirtualMcpTools>>,
}

/// A Virtual MCP as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VirtualMcp {
    pub id: i64,
    pub name: String,
    pub endpoint_slug: String,
    pub enabled: bool,
    pub tools: Vec<VirtualMcpTools>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Storage of MCP clients and Virtual MCPs.
#[async_trait]
pub trait McpStore: Send + Sync {
    async fn list_mcp_clients(&self) -> Result<Vec<McpClient>, StoreError>;
    /// `Duplicate` when the id or the name is taken.
    async fn insert_mcp_client(&self, client: &McpClient) -> Result<(), StoreError>;
    /// `Duplicate` when the new name is taken; false when the client is gone.
    async fn replace_mcp_client(&self, client: &McpClient) -> Result<bool, StoreError>;
    async fn delete_mcp_client(&self, client_id: &str) -> Result<bool, StoreError>;
    async fn list_virtual_mcps(&self) -> Result<Vec<VirtualMcp>, StoreError>;
    /// `Duplicate` when the name or the slug is taken.
    async fn insert_virtual_mcp(&self, group: &VirtualMcp) -> Result<(), StoreError>;
    async fn replace_virtual_mcp(&self, group: &VirtualMcp) -> Result<bool, StoreError>;
    async fn delete_virtual_mcp(&self, id: i64) -> Result<bool, StoreError>;
}

/// The longest pause between two reads of a client's tools.
const MAX_SYNC_MINUTES: u64 = 7 * 24 * 60;

fn is_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// Checks a request and builds the client it describes (secrets still in clear; the service
/// seals them). A `trusted` request (the config file's) may run any stdio command.
pub(crate) fn checked_client(req: McpClientRequest, client_id: String, rules: &McpRules, trusted: bool, p: &mut Problems) -> McpClient {
    if !is_id(&client_id) {
        p.add("client_id", "must be 1-64 letters, digits, '-' or '_'");
    }
    let name = req.name.unwrap_or_default().trim().to_owned();
    if let Some(why) = crate::mcp::client_name_problem(&name) {
        p.add("name", why);
    }
    let connection_type = match req.connection_type.as_deref() {
        Some("http") => McpConnectionType::Http,
        Some("stdio") => McpConnectionType::Stdio,
        Some("sse") => {
            p.add("connection_type", "sse is not supported: use http (streamable HTTP) or stdio");
            McpConnectionType::Http
        }
        _ => {
            p.add("connection_type", "must be http or stdio");
            McpConnectionType::Http
        }
    };
    match connection_type {
        McpConnectionType::Http => match req.connection_string.as_deref() {
            Some(url) => {
                if let Err(why) = rules.egress.check_base_url(url) {
                    p.add("connection_string", why);
                }
            }
            None => p.add("connection_string", "an http client needs the server's URL"),
        },
        McpConnectionType::Stdio => match &req.stdio_config {
            Some(stdio) if stdio.command.trim().is_empty() => p.add("stdio_config.command", "must not be empty"),
            Some(stdio) if !trusted && !rules.stdio_commands.contains(&stdio.command) => p.add(
                "stdio_config.command",
                "a stdio client runs a command on the gateway's host: only commands the operator lists in [mcp] stdio_commands are accepted",
            ),
            Some(stdio) => {
                if stdio.envs.keys().any(|k| k.is_empty() || k.contains('=') || k.contains('\0')) {
                    p.add("stdio_config.envs", "variable names must be non-empty, without '=' or NUL");
                }
            }
            None => p.add("stdio_config", "a stdio client needs a command"),
        },
    }
    if req.tool_sync_interval.is_some_and(|m| m > MAX_SYNC_MINUTES) {
        p.add("tool_sync_interval", format!("must be at most {MAX_SYNC_MINUTES} minutes (a week)"));
    }
    let headers = req.headers.unwrap_or_default();
    for (header, value) in &headers {
        if http_header_problem(header, value) {
            p.add(format!("headers.{header}"), "must be a valid HTTP header name and value");
        }
    }
    let now = crate::clock::now();
    McpClient {
        client_id,
        name,
        connection_string: req.connection_string.filter(|_| connection_type == McpConnectionType::Http),
        stdio_config: req.stdio_config.filter(|_| connection_type == McpConnectionType::Stdio),
        connection_type,
        headers,
        tools_to_execute: req.tools_to_execute.unwrap_or(ToolSelection::All),
        allow_on_all_virtual_keys: req.allow_on_all_virtual_keys.unwrap_or(false),
        tool_sync_interval: req.tool_sync_interval.unwrap_or(0),
        tool_pricing: req.tool_pricing.unwrap_or_default(),
        disabled: req.disabled.unwrap_or(false),
        declared: trusted,
        created_at: now,
        updated_at: now,
    }
}

fn http_header_problem(name: &str, value: &str) -> bool {
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let value_ok = value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    !name_ok || !value_ok
}

/// Checks a Virtual MCP request against the clients that exist.
pub(crate) fn checked_group(req: VirtualMcpRequest, id: i64, clients: &[McpClient], p: &mut Problems) -> VirtualMcp {
    let name = req.name.unwrap_or_default().trim().to_owned();
    if name.is_empty() || name.chars().count() > 128 {
        p.add("name", "must be 1-128 characters");
    }
    let endpoint_slug = req.endpoint_slug.unwrap_or_default();
    let slug_ok = !endpoint_slug.is_empty()
        && endpoint_slug.len() <= 64
        && endpoint_slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    if !slug_ok {
        p.add("endpoint_slug", "must be 1-64 lowercase letters, digits, '-' or '_'");
    }
    let tools = req.tools.unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, part) in tools.iter().enumerate() {
        if !clients.iter().any(|c| c.client_id == part.mcp_client_id) {
            p.add(format!("tools[{i}].mcp_client_id"), format!("no MCP client has the id '{}'", part.mcp_client_id));
        }
        if !seen.insert(part.mcp_client_id.as_str()) {
            p.add(format!("tools[{i}].mcp_client_id"), "each client may appear once");
        }
    }
    let now = crate::clock::now();
    VirtualMcp { id, name, endpoint_slug, enabled: req.enabled.unwrap_or(true), tools, created_at: now, updated_at: now }
}

/// Seals every header and env value of `client`; a value equal to the masked form of `stored`'s
/// value of the same name keeps the stored secret.
pub(crate) fn seal_secrets(client: &mut McpClient, stored: Option<&McpClient>, sealer: &Sealer) -> Result<(), crate::error::CoreError> {
    let old_headers = stored.map(|s| &s.headers);
    client.headers = provider_headers::sealed_map(std::mem::take(&mut client.headers), old_headers, sealer)?;
    if let Some(stdio) = client.stdio_config.as_mut() {
        let old_envs = stored.and_then(|s| s.stdio_config.as_ref()).map(|s| &s.envs);
        stdio.envs = provider_headers::sealed_map(std::mem::take(&mut stdio.envs), old_envs, sealer)?;
    }
    Ok(())
}

/// The client as served: header and env values masked.
pub(crate) fn masked(mut client: McpClient, sealer: &Sealer) -> McpClient {
    provider_headers::redacted_map(&mut client.headers, sealer);
    if let Some(stdio) = client.stdio_config.as_mut() {
        provider_headers::redacted_map(&mut stdio.envs, sealer);
    }
    client
}

/// The catalog the MCP surface serves: stored clients with their secrets opened (a client whose
/// secret cannot be opened is left out, with a warning) and the Virtual MCPs.
pub fn open_catalog(clients: &[McpClient], groups: &[VirtualMcp], sealer: &Sealer) -> McpCatalog {
    let mut catalog = McpCatalog::default();
    for client in clients {
        if let Some(spec) = spec_of(client, sealer) {
            catalog.clients.push(spec);
        } else {
            tracing::warn!(client = %client.name, "an MCP client's secret cannot be opened with this key; not served");
        }
    }
    catalog.virtual_mcps = groups
        .iter()
        .map(|g| VirtualMcpSpec {
            id: g.id,
            name: g.name.clone(),
            endpoint_slug: g.endpoint_slug.clone(),
            enabled: g.enabled,
            tools: g.tools.clone(),
        })
        .collect();
    catalog
}

fn open_all(values: &BTreeMap<String, String>, sealer: &Sealer) -> Option<Vec<(String, String)>> {
    values.iter().map(|(k, v)| Some((k.clone(), provider_headers::open(v, sealer)?.expose().to_owned()))).collect()
}

fn spec_of(client: &McpClient, sealer: &Sealer) -> Option<McpClientSpec> {
    let endpoint = match client.connection_type {
        McpConnectionType::Http => {
            McpEndpoint::Http { url: client.connection_string.clone()?, headers: open_all(&client.headers, sealer)? }
        }
        McpConnectionType::Stdio => {
            let stdio = client.stdio_config.as_ref()?;
            McpEndpoint::Stdio { command: stdio.command.clone(), args: stdio.args.clone(), envs: open_all(&stdio.envs, sealer)? }
        }
    };
    Some(McpClientSpec {
        client_id: client.client_id.clone(),
        name: client.name.clone(),
        endpoint,
        tools_to_execute: client.tools_to_execute.clone(),
        allow_on_all_virtual_keys: client.allow_on_all_virtual_keys,
        tool_sync_interval: (client.tool_sync_interval > 0)
            .then(|| std::time::Duration::from_secs(client.tool_sync_interval.saturating_mul(60))),
        tool_pricing: client.tool_pricing.clone(),
        disabled: client.disabled,
    })
}

#[cfg(test)]
#[path = "mcp_clients_tests.rs"]
mod tests;
