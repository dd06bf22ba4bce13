//! The MCP server a caller talks to on `/mcp`: rmcp handles the protocol (initialize or
//! discover, ping, notifications, errors); this answers `tools/list` with exactly the caller's
//! granted tools of connected clients, sorted, and `tools/call` through the governed call.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::McpSurface;
use crate::call::{Caller, refusal};
use crate::upstream::State;

/// Serves one request for the caller admission put on it.
#[derive(Debug, Clone)]
pub struct Gate(pub McpSurface);

fn caller(context: &RequestContext<RoleServer>) -> Result<Arc<Caller>, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Arc<Caller>>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the request was not admitted", None))
}

impl McpSurface {
    /// The tools `caller` may see: those of connected clients its grant allows, named
    /// `<client>-<tool>`, sorted by name.
    pub fn tools_of(&self, caller: &Caller) -> Vec<Tool> {
        let catalog = self.0.upstreams.catalog();
        let mut tools = Vec::new();
        for (id, allowed) in &caller.grant.clients {
            let (Some(spec), Some(link)) = (catalog.clients.iter().find(|c| &c.client_id == id), self.0.upstreams.link(id)) else {
                continue;
            };
            let status = link.status();
            if status.state != State::Connected {
                continue;
            }
            for tool in status.tools.iter().filter(|t| allowed.allows(&t.name)) {
                let mut shown = tool.clone();
                shown.name = spec.exposed_name(&tool.name).into();
                tools.push(shown);
            }
        }
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }

    /// Answers one `tools/call`, whichever path brought it (rmcp's handler or `direct`).
    pub(crate) async fn call_tool(&self, caller: &Caller, request: CallToolRequestParams) -> CallToolResult {
        if request.name.is_empty() {
            return refusal("a tool name is required");
        }
        self.call(caller, &request.name, request.arguments).await
    }
}

impl ServerHandler for Gate {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tollgate", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&context)?;
        Ok(ListToolsResult::with_all_items(self.0.tools_of(&caller)))
    }

    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&context)?;
        Ok(CallToolResponse::Complete(self.0.call_tool(&caller, request).await))
    }
}
