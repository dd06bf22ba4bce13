//! The MCP surface as the rest of the binary sees it: the management API reads each client's
//! state and tools and asks for reconnects through core's `McpRuntime` port, and governance's
//! reload hook installs the catalog every full reload opens.

use tollgate_core::mcp::{McpCatalog, McpClientStatus, McpConnectionState, McpRuntime, McpToolInfo};
use tollgate_core::usage::GovernanceData;
use tollgate_governance::OnReload;

use std::sync::Arc;

use crate::upstream::{State, Upstreams};

impl McpRuntime for Upstreams {
    fn status(&self, client_id: &str) -> Option<McpClientStatus> {
        let link = self.link(client_id)?;
        let status = link.status();
        let (state, reason) = match &status.state {
            State::Connecting => (McpConnectionState::Connecting, None),
            State::Connected => (McpConnectionState::Connected, None),
            State::Failed(why) => (McpConnectionState::Error, Some(why.clone())),
            State::Disabled => (McpConnectionState::Disabled, None),
        };
        let tools = status
            .tools
            .iter()
            .map(|t| McpToolInfo { name: t.name.to_string(), description: t.description.as_ref().map(ToString::to_string) })
            .collect();
        Some(McpClientStatus { state, reason, tools })
    }

    fn reconnect(&self, client_id: &str) -> bool {
        self.link(client_id).map(|link| link.reconnect()).is_some()
    }
}

impl Upstreams {
    /// The hook that keeps the surface's catalog current: on every full governance reload,
    /// `open` turns the data read into the catalog (secrets unsealed) and it is installed
    /// (unchanged clients keep their connections).
    pub fn on_reload<F>(self: &Arc<Self>, open: F) -> OnReload
    where
        F: Fn(&GovernanceData) -> McpCatalog + Send + Sync + 'static,
    {
        let upstreams = Arc::clone(self);
        Arc::new(move |data: &GovernanceData| upstreams.install(open(data)))
    }
}
