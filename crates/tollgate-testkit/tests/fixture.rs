//! The MCP fixture answers over both transports, as the MCP tests expect of it (this test also
//! makes cargo build the `mcp-fixture` binary those tests start as a child process).

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use tollgate_testkit::mcp_fixture::{Fixture, serve_http};

#[tokio::test]
async fn the_fixture_lists_and_calls_its_tools_over_stdio() {
    let child = TokioChildProcess::new(tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-fixture"))).expect("fixture starts");
    let client = ClientConfig::default().serve(child).await.expect("initialized");
    let tools = client.peer().list_all_tools().await.expect("tools listed");
    let names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["echo", "add", "read-file", "fail", "slow", "headers"]);
    let mut call = CallToolRequestParams::new("add");
    call.arguments = serde_json::json!({"a": 2, "b": 3}).as_object().cloned();
    let answer = client.peer().call_tool(call).await.expect("called");
    assert_eq!(answer.content[0].as_text().map(|t| t.text.as_str()), Some("5"));
}

#[tokio::test]
async fn the_fixture_answers_over_streamable_http() {
    tollgate_mcp::install_tls_provider();
    let (url, server) = serve_http(Fixture { label: "h:".into() }).await.expect("bound");
    let client = ClientConfig::default().serve(StreamableHttpClientTransport::from_uri(url)).await.expect("initialized");
    let mut call = CallToolRequestParams::new("echo");
    call.arguments = serde_json::json!({"text": "hi"}).as_object().cloned();
    let answer = client.peer().call_tool(call).await.expect("called");
    assert_eq!(answer.content[0].as_text().map(|t| t.text.as_str()), Some("h:hi"));
    server.abort();
}
