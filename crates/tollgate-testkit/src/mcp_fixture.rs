//! A small real MCP server for tests, built on rmcp: tools `echo`, `add`, `read-file` (a hyphen
//! in its own name), `fail` (answers an error result), `slow` (waits `ms` milliseconds) and
//! `headers` (names the credentials an HTTP request brought),
//! served over stdio (the `mcp-fixture` binary) or streamable HTTP on a loopback port.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

/// The fixture's tools and their behaviour.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    /// Names this instance answers to (`tools/list` shows them all).
    pub label: String,
}

fn schema(properties: Value) -> Arc<JsonObject> {
    let mut object = JsonObject::new();
    object.insert("type".into(), json!("object"));
    object.insert("properties".into(), properties);
    Arc::new(object)
}

fn tools() -> Vec<Tool> {
    let mut read = Tool::new("read-file", "Reads a named file (returns its name).", schema(json!({"path": {"type": "string"}})));
    let mut hints = ToolAnnotations::default();
    hints.read_only_hint = Some(true);
    hints.title = Some("Read a file".into());
    read.annotations = Some(hints);
    vec![
        Tool::new("echo", "Answers with its text.", schema(json!({"text": {"type": "string"}}))),
        Tool::new("add", "Adds a and b.", schema(json!({"a": {"type": "number"}, "b": {"type": "number"}}))),
        read,
        Tool::new("fail", "Always answers an error result.", schema(json!({}))),
        Tool::new("slow", "Waits ms milliseconds, then answers.", schema(json!({"ms": {"type": "integer"}}))),
        Tool::new("headers", "Tells which credentials reached it over HTTP.", schema(json!({}))),
    ]
}

fn text(t: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(Implementation::new("fixture", "1.0.0"))
    }

    async fn list_tools(&self, _: Option<PaginatedRequestParams>, _: RequestContext<RoleServer>) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let result = match &*request.name {
            "echo" => text(format!("{}{}", self.label, args.get("text").and_then(Value::as_str).unwrap_or_default())),
            "add" => {
                let n = |k: &str| args.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                text(format!("{}", n("a") + n("b")))
            }
            "read-file" => text(format!("contents of {}", args.get("path").and_then(Value::as_str).unwrap_or("?"))),
            "fail" => CallToolResult::error(vec![ContentBlock::text("the fixture failed on purpose")]),
            "slow" => {
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                text("done")
            }
            "headers" => {
                let parts = context.extensions.get::<http::request::Parts>();
                let seen = |name: &str| parts.and_then(|p| p.headers.get(name)).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                text(format!(
                    "authorization={} x-api-key={} x-upstream-token={}",
                    seen("authorization"),
                    seen("x-api-key"),
                    seen("x-upstream-token")
                ))
            }
            other => return Err(ErrorData::invalid_params(format!("no tool named {other}"), None)),
        };
        Ok(CallToolResponse::Complete(result))
    }
}

/// Serves the fixture over stdin and stdout until the peer closes them.
pub async fn serve_stdio(fixture: Fixture) -> Result<(), String> {
    let running = fixture.serve(rmcp::transport::io::stdio()).await.map_err(|e| e.to_string())?;
    running.waiting().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Serves the fixture over streamable HTTP at `http://127.0.0.1:<port>/mcp`; returns the URL and
/// the server's task (abort it to stop the fixture).
pub async fn serve_http(fixture: Fixture) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let config = StreamableHttpServerConfig::default().with_legacy_session_mode(false).with_json_response(true).disable_allowed_hosts();
    let service = StreamableHttpService::new(move || Ok(fixture.clone()), Arc::new(NeverSessionManager::default()), config);
    let app = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}
