//! MCP clients (the upstream tool servers) and Virtual MCPs as governance and the MCP surface
//! read them: how a client is reached, which of its tools it offers, what a call costs, and the
//! one rule for tool names (`<client>-<tool>`, split at the first hyphen).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use crate::money::Money;

/// The separator between a client's name and its tool's own name in an exposed tool name.
pub const TOOL_SEPARATOR: char = '-';

/// A set of tools by their upstream names: every tool (`["*"]`, including tools added later) or
/// exactly those listed (`[]`: none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolSelection {
    All,
    #[default]
    None,
    Only(BTreeSet<String>),
}

impl ToolSelection {
    /// The selection a wire list means: `*` anywhere means all.
    pub fn from_list<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> ToolSelection {
        let mut only = BTreeSet::new();
        for name in names {
            let name = name.into();
            if name == "*" {
                return ToolSelection::All;
            }
            only.insert(name);
        }
        if only.is_empty() { ToolSelection::None } else { ToolSelection::Only(only) }
    }

    pub fn allows(&self, tool: &str) -> bool {
        match self {
            ToolSelection::All => true,
            ToolSelection::None => false,
            ToolSelection::Only(names) => names.contains(tool),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, ToolSelection::None)
    }

    /// The wire form: `["*"]`, `[]` or the names in order.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            ToolSelection::All => vec!["*".to_owned()],
            ToolSelection::None => Vec::new(),
            ToolSelection::Only(names) => names.iter().cloned().collect(),
        }
    }
}

impl Serialize for ToolSelection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_list().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ToolSelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ToolSelection::from_list(Vec::<String>::deserialize(d)?))
    }
}

impl ToSchema for ToolSelection {}

impl utoipa::PartialSchema for ToolSelection {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String))
            .description(Some("Tool names: [\"*\"] every tool (also tools added later), [] none, else exactly these."))
            .into()
    }
}

/// How Tollgate reaches an MCP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpConnectionType {
    /// Streamable HTTP at `connection_string`.
    Http,
    /// A child process spoken to over its standard input and output.
    Stdio,
}

/// The opened (plain) form of an MCP client, as the MCP surface connects with it. Secrets are
/// present here and nowhere that is served or logged.
#[derive(Clone, PartialEq)]
pub struct McpClientSpec {
    /// The stable string id profiles name (`mcp_servers[].mcp_server_id`).
    pub client_id: String,
    /// The prefix of its exposed tool names; never contains the separator.
    pub name: String,
    pub endpoint: McpEndpoint,
    /// The client's baseline: tools anyone may be granted.
    pub tools_to_execute: ToolSelection,
    /// Every key may use the client's tools when its copies name nothing of the client.
    pub allow_on_all_virtual_keys: bool,
    /// How often the tool list is read again (besides list-changed notifications); `None`: never.
    pub tool_sync_interval: Option<std::time::Duration>,
    /// The price of one call, by upstream tool name; a tool not listed costs nothing.
    pub tool_pricing: BTreeMap<String, Money>,
    pub disabled: bool,
}

impl std::fmt::Debug for McpClientSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClientSpec")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("tools_to_execute", &self.tools_to_execute)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Where an MCP client is, with the credentials Tollgate (never the caller) presents to it.
#[derive(Clone, PartialEq)]
pub enum McpEndpoint {
    Http {
        url: String,
        /// Sent on every request to the upstream.
        headers: Vec<(String, String)>,
    },
    Stdio {
        command: String,
        args: Vec<String>,
        /// The child's whole environment (nothing else of Tollgate's is inherited).
        envs: Vec<(String, String)>,
    },
}

impl std::fmt::Debug for McpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpEndpoint::Http { url, .. } => f.debug_struct("Http").field("url", url).finish_non_exhaustive(),
            McpEndpoint::Stdio { command, args, .. } => {
                f.debug_struct("Stdio").field("command", command).field("args", args).finish_non_exhaustive()
            }
        }
    }
}

impl McpClientSpec {
    /// The price of one call of `tool`.
    pub fn price_of(&self, tool: &str) -> Money {
        self.tool_pricing.get(tool).copied().unwrap_or(Money::ZERO)
    }

    /// The name a caller sees for one of this client's tools.
    pub fn exposed_name(&self, tool: &str) -> String {
        format!("{}{TOOL_SEPARATOR}{tool}", self.name)
    }
}

/// A client's name and the tool's own name, split at the first hyphen (a client name never
/// holds one; a tool's own name may).
pub fn split_tool_name(exposed: &str) -> Option<(&str, &str)> {
    let (client, tool) = exposed.split_once(TOOL_SEPARATOR)?;
    (!client.is_empty() && !tool.is_empty()).then_some((client, tool))
}

/// Why an MCP client name is refused, if it is: 1–64 ASCII letters, digits or `_`, so that
/// `<client>-<tool>` splits unambiguously.
pub fn client_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some("must be 1-64 ASCII letters, digits or '_' (no '-': tools are named <client>-<tool>)")
    } else {
        None
    }
}

/// The tools one Virtual MCP takes from one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VirtualMcpTools {
    /// The client's `client_id`.
    pub mcp_client_id: String,
    pub tool_names: ToolSelection,
}

/// A Virtual MCP (formerly "tool group"): a named bundle of tools of one or more clients,
/// granted whole by `mcp_tool_groups` and served at `/mcp/{endpoint_slug}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMcpSpec {
    pub id: i64,
    pub name: String,
    pub endpoint_slug: String,
    pub enabled: bool,
    pub tools: Vec<VirtualMcpTools>,
}

/// Everything about MCP that governance decisions and the MCP surface read, loaded with the
/// governance snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McpCatalog {
    pub clients: Vec<McpClientSpec>,
    pub virtual_mcps: Vec<VirtualMcpSpec>,
}

/// The state of one MCP client's upstream connection, as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum McpConnectionState {
    /// Connecting or reconnecting; no tools served yet.
    Connecting,
    Connected,
    /// Could not connect or lost the connection; `reason` says why.
    Error,
    Disabled,
}

/// A tool an upstream offers, as the management API lists it (its own name, not prefixed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct McpToolInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What the MCP surface reports about one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct McpClientStatus {
    pub state: McpConnectionState,
    /// Why the client is in `error`; never holds a header value or an environment secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub tools: Vec<McpToolInfo>,
}

/// The port through which the management API reads and nudges the running MCP surface (the
/// binary plugs the surface in; without one, every client reads as connecting with no tools).
pub trait McpRuntime: Send + Sync {
    /// The state and tools of a client; `None` when the surface does not know the client (yet).
    fn status(&self, client_id: &str) -> Option<McpClientStatus>;
    /// Drops and re-opens a client's connection; false when the surface does not know it.
    fn reconnect(&self, client_id: &str) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_name_splits_at_the_first_hyphen_so_a_tool_may_hold_hyphens() {
        assert_eq!(split_tool_name("docs-read-file"), Some(("docs", "read-file")));
        assert_eq!(split_tool_name("docs"), None);
        assert_eq!(split_tool_name("-x"), None);
        assert_eq!(split_tool_name("docs-"), None);
    }

    #[test]
    fn a_client_name_with_a_hyphen_is_refused() {
        assert!(client_name_problem("my-docs").is_some());
        assert!(client_name_problem("").is_some());
        assert!(client_name_problem("my_docs2").is_none());
    }

    #[test]
    fn a_star_anywhere_selects_every_tool_and_an_empty_list_none() {
        assert_eq!(ToolSelection::from_list(["a", "*"]), ToolSelection::All);
        assert_eq!(ToolSelection::from_list(Vec::<String>::new()), ToolSelection::None);
        assert!(ToolSelection::from_list(["a"]).allows("a"));
        assert!(!ToolSelection::from_list(["a"]).allows("b"));
        assert_eq!(serde_json::to_string(&ToolSelection::All).ok().as_deref(), Some("[\"*\"]"));
    }
}
