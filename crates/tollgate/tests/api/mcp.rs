//! The MCP gateway end to end: real upstream MCP servers (the Rust fixture and one written with
//! the official Python SDK, over streamable HTTP and stdio) behind Tollgate, and the official
//! Python `mcp` client listing and calling tools with a user's virtual key.
#![expect(clippy::expect_used, reason = "a failing exchange with a server under test must stop the test loudly")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_testkit::mcp_fixture::{Fixture, serve_http};
use tollgate_testkit::{Backend, TestApp};

use crate::sdk::{python, run_sdk_script};
use crate::{FAMILIES, key_holder};

/// The Python upstream script.
pub fn python_upstream() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/mcp_upstream.py").display().to_string()
}

/// The Rust fixture's stdio binary (built with the workspace, beside this test's binary).
pub fn fixture_binary() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().and_then(|deps| deps.parent()).map(PathBuf::from).unwrap_or_default();
    let path = dir.join("mcp-fixture");
    assert!(path.exists(), "the stdio fixture is built with the workspace: run the suite with --workspace ({})", path.display());
    path.display().to_string()
}

/// Configuration letting the API register the two stdio commands the tests use.
pub fn stdio_config() -> String {
    format!("[mcp]\nstdio_commands = [{:?}, {:?}]\n", python().display().to_string(), fixture_binary())
}

/// Registers an HTTP client.
pub async fn register_http(app: &TestApp, id: &str, url: &str, extra: Value) {
    let mut body = json!({"client_id": id, "name": id, "connection_type": "http", "connection_string": url, "tools_to_execute": ["*"]});
    merge(&mut body, extra);
    app.admin().post("/api/mcp/client", body).await.expect(200);
}

/// Registers a stdio client running `command args`.
pub async fn register_stdio(app: &TestApp, id: &str, command: &str, args: &[&str], extra: Value) {
    let mut body = json!({"client_id": id, "name": id, "connection_type": "stdio",
        "stdio_config": {"command": command, "args": args, "envs": {}}, "tools_to_execute": ["*"]});
    merge(&mut body, extra);
    app.admin().post("/api/mcp/client", body).await.expect(200);
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(more)) = (body.as_object_mut(), extra) {
        target.extend(more);
    }
}

/// Sends one JSON-RPC message to `path` with `headers`; returns (status, body).
pub async fn rpc(app: &TestApp, path: &str, headers: &[(&str, &str)], message: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(app.url(path))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.json(&message).send().await.expect("sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The tool names `tools/list` shows the key on `path`.
pub async fn listed(app: &TestApp, path: &str, key: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let bearer = format!("Bearer {key}");
    let mut all = vec![("authorization", bearer.as_str())];
    all.extend_from_slice(headers);
    let (status, body) = rpc(app, path, &all, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect()
}

/// Waits until the key sees at least `count` tools (upstreams connect in the background).
pub async fn wait_for_tools(app: &TestApp, key: &str, count: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let names = listed(app, "/mcp", key, &[]).await;
        if names.len() >= count || start.elapsed() > Duration::from_secs(30) {
            return names;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the Python client against `/mcp` with `key`, making `calls`; `legacy` opens with
/// `initialize` instead of the SDK's default `server/discover`.
async fn python_client_in(app: &TestApp, key: &str, headers: Value, calls: Value, legacy: bool) -> Value {
    let env = [
        ("TOLLGATE_URL", app.url("/mcp")),
        ("TOLLGATE_KEY", key.to_owned()),
        ("TOLLGATE_HEADERS", headers.to_string()),
        ("TOLLGATE_CALLS", calls.to_string()),
        ("TOLLGATE_MODE", if legacy { "legacy" } else { "auto" }.to_owned()),
    ];
    tokio::task::spawn_blocking(move || run_sdk_script("mcp_client.py", &env)).await.unwrap_or(Value::Null)
}

async fn python_client(app: &TestApp, key: &str, headers: Value, calls: Value) -> Value {
    python_client_in(app, key, headers, calls, false).await
}

fn names(seen: &Value) -> Vec<&str> {
    seen["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect()
}

async fn start(backend: Backend) -> TestApp {
    TestApp::start_with_config(backend, &stdio_config()).await
}

/// A whole client and one tool of another: exactly those are listed and callable through the
/// official client; the rest is refused as a tool error; a propagate that removes the whole
/// client takes it away on the next request.
async fn grant_scenario(backend: Backend) {
    let (url, fixture) = serve_http(Fixture { label: "rust:".into() }).await.expect("fixture");
    let app = start(backend).await;
    register_http(&app, "docs", &url, json!({"headers": {"x-upstream-token": "upstream-secret"}})).await;
    register_stdio(&app, "py", &python().display().to_string(), &[&python_upstream()], json!({})).await;
    let profile = json!({"name": "Agents", "mcp_servers": [{"mcp_server_id": "docs"}],
        "mcp_tool_overrides": [{"mcp_client_id": "py", "tool_name": "look-up", "action": "include"}]});
    let (_, key) = key_holder(&app, profile).await;
    assert_eq!(wait_for_tools(&app, &key, 7).await.len(), 7);

    let calls = json!([["docs-echo", {"text": "hi"}], ["py-look-up", {"key": "k"}], ["py-shout", {"text": "no"}], ["docs-fail", {}], ["docs-headers", {}]]);
    let seen = python_client(&app, &key, json!({}), calls).await;
    assert_eq!(seen["server"], "tollgate");
    assert_eq!(seen["protocol"], "2026-07-28", "the SDK's server/discover opening is answered: {seen}");
    assert_eq!(names(&seen), ["docs-add", "docs-echo", "docs-fail", "docs-headers", "docs-read-file", "docs-slow", "py-look-up"], "{seen}");
    let read = seen["tools"].as_array().into_iter().flatten().find(|t| t["name"] == "docs-read-file").cloned().unwrap_or_default();
    assert_eq!(read["read_only"], true, "annotations pass through: {read}");
    assert_eq!(read["schema"]["properties"]["path"]["type"], "string", "schemas pass through: {read}");
    assert_eq!(seen["calls"][0], json!({"tool": "docs-echo", "is_error": false, "text": "rust:hi"}));
    assert_eq!(seen["calls"][1], json!({"tool": "py-look-up", "is_error": false, "text": "value-of-k"}));
    assert_eq!(seen["calls"][2]["is_error"], true);
    assert!(seen["calls"][2]["text"].as_str().unwrap_or_default().contains("not available"), "{seen}");
    assert_eq!(seen["calls"][3]["is_error"], true, "an upstream error result stays one: {seen}");
    // The caller's key never travels upstream; only the client's own headers do.
    assert_eq!(seen["calls"][4]["text"], "authorization=- x-api-key=- x-upstream-token=upstream-secret", "{seen}");

    // Remove the whole client from the template and push the change to the copies.
    let profiles = app.admin().get(FAMILIES[0]).await.expect(200).clone();
    let id = profiles["access_profiles"][0]["id"].as_i64().unwrap_or_default();
    app.admin().put(&format!("{}/{id}", FAMILIES[0]), json!({"mcp_servers": []})).await.expect(200);
    app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["mcp_servers"]})).await.expect(200);
    assert_eq!(listed(&app, "/mcp", &key, &[]).await, ["py-look-up"]);

    // Rows are written by the background usage writer: wait for them rather than for a tick.
    let rows = app.count_reaching("SELECT COUNT(*) FROM mcp_tool_calls", 5).await;
    assert_eq!(rows, 5, "every call has its row, the refused one too");
    assert_eq!(app.count("SELECT COUNT(*) FROM mcp_tool_calls WHERE outcome = 'tool_error'").await, 1);
    app.stop().await;
    fixture.abort();
}

mod the_official_python_client_sees_exactly_the_grant_and_a_propagate_takes_a_client_away {
    use super::grant_scenario as scenario;
    scenario_on_both_backends!();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_transports_serve_while_a_dead_upstream_is_left_out() {
    // The Python upstream over HTTP, the Rust fixture over stdio, and a client nobody answers.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(18_944, |a| a.port());
    let mut upstream = std::process::Command::new(python())
        .args([python_upstream(), "http".into(), port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python upstream");
    let app = start(Backend::Sqlite).await;
    register_http(&app, "web", &format!("http://127.0.0.1:{port}/mcp"), json!({})).await;
    register_stdio(&app, "files", &fixture_binary(), &[], json!({})).await;
    register_http(&app, "gone", "http://127.0.0.1:9/mcp", json!({})).await;
    // Every tool of files through a Virtual MCP, less the one the same profile excludes.
    let group = json!({"name": "Files", "endpoint_slug": "files-all", "tools": [{"mcp_client_id": "files", "tool_names": ["*"]}]});
    let group = app.admin().post("/api/mcp/virtual-mcps", group).await.expect(200)["virtual_mcp"]["id"].as_i64().unwrap_or_default();
    let profile = json!({"name": "Wide", "mcp_servers": [{"mcp_server_id": "web"}, {"mcp_server_id": "gone"}],
        "mcp_tool_groups": [{"tool_group_id": group}],
        "mcp_tool_overrides": [{"mcp_client_id": "files", "tool_name": "slow", "action": "exclude"}]});
    let (_, key) = key_holder(&app, profile).await;
    let tools = wait_for_tools(&app, &key, 9).await;
    let expected =
        ["files-add", "files-echo", "files-fail", "files-headers", "files-read-file", "web-grow", "web-look-up", "web-shout", "web-times"];
    assert_eq!(tools, expected);

    let calls =
        json!([["web-times", {"a": 6, "b": 7}], ["files-read-file", {"path": "/etc/x"}], ["files-slow", {"ms": 1}], ["gone-anything", {}]]);
    // This client opens the older way, with initialize.
    let seen = python_client_in(&app, &key, json!({}), calls, true).await;
    assert_eq!((seen["server"].clone(), seen["protocol"].clone()), (json!("tollgate"), json!("2025-11-25")), "{seen}");
    assert_eq!(seen["calls"][0]["text"], "42", "{seen}");
    assert_eq!(seen["calls"][1]["text"], "contents of /etc/x");
    assert_eq!(seen["calls"][2]["is_error"], true, "an excluded tool is refused: {seen}");
    assert_eq!(seen["calls"][3]["is_error"], true, "a dead upstream's tool is refused: {seen}");
    let why = seen["calls"][3]["text"].as_str().unwrap_or_default();
    assert!(why.contains("MCP client 'gone'") && !why.contains("127.0.0.1"), "the caller learns the client, not its address: {why}");

    // Headers narrow the grant, with client-* wildcards, and never widen it.
    let narrowed = python_client(&app, &key, json!({"x-bf-mcp-include-tools": "web-*,files-echo,files-slow"}), json!([])).await;
    assert_eq!(names(&narrowed), ["files-echo", "web-grow", "web-look-up", "web-shout", "web-times"]);
    let by_client = listed(&app, "/mcp", &key, &[("x-bf-mcp-include-clients", "files")]).await;
    assert_eq!(by_client, ["files-add", "files-echo", "files-fail", "files-headers", "files-read-file"]);
    let slug = listed(&app, "/mcp/web", &key, &[]).await;
    assert_eq!(slug, ["web-grow", "web-look-up", "web-shout", "web-times"]);
    // The Virtual MCP's own endpoint serves its tools as the grant narrows them.
    let group_tools = listed(&app, "/mcp/files-all", &key, &[]).await;
    assert_eq!(group_tools, ["files-add", "files-echo", "files-fail", "files-headers", "files-read-file"]);
    app.stop().await;
    let _ = upstream.kill();
    let _ = upstream.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_the_upstream_adds_is_listed_after_its_change_notification() {
    let app = start(Backend::Sqlite).await;
    register_stdio(&app, "py", &python().display().to_string(), &[&python_upstream()], json!({})).await;
    let (_, key) = key_holder(&app, json!({"name": "Growing", "mcp_servers": [{"mcp_server_id": "py"}]})).await;
    assert_eq!(wait_for_tools(&app, &key, 4).await, ["py-grow", "py-look-up", "py-shout", "py-times"]);
    let bearer = format!("Bearer {key}");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "py-grow", "arguments": {}}});
    let (_, answer) = rpc(&app, "/mcp", &[("authorization", &bearer)], call).await;
    assert_eq!(answer["result"]["content"][0]["text"], "grown", "{answer}");
    // No sync interval is set: only the upstream's notification can bring the new tool in.
    let tools = wait_for_tools(&app, &key, 5).await;
    assert!(tools.contains(&"py-grown".to_owned()), "{tools:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tool_times_out_without_holding_up_other_calls_and_is_charged_as_sent() {
    let (url, fixture) = serve_http(Fixture::default()).await.expect("fixture");
    let app = TestApp::start_with_config(Backend::Sqlite, "[mcp]\ncall_timeout_secs = 1\n").await;
    register_http(&app, "docs", &url, json!({"tool_pricing": {"slow": 0.25}})).await;
    let profile =
        json!({"name": "Patient", "budgets": [{"max_limit": 10, "reset_duration": "1d"}], "mcp_servers": [{"mcp_server_id": "docs"}]});
    let (user, key) = key_holder(&app, profile).await;
    wait_for_tools(&app, &key, 6).await;
    let bearer = format!("Bearer {key}");
    let slow = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "docs-slow", "arguments": {"ms": 3000}}});
    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "docs-echo", "arguments": {"text": "quick"}}});
    let auth = [("authorization", bearer.as_str())];
    let started = Instant::now();
    let (slow, echo) = tokio::join!(rpc(&app, "/mcp", &auth, slow), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        let answer = rpc(&app, "/mcp", &auth, echo).await;
        (answer, asked.elapsed())
    });
    let ((_, echo), echo_took) = echo;
    assert_eq!(echo["result"]["content"][0]["text"], "quick");
    assert!(echo_took < Duration::from_millis(900), "the quick call waited for the slow one: {echo_took:?}");
    assert_eq!(slow.1["result"]["isError"], true, "{}", slow.1);
    assert!(started.elapsed() < Duration::from_millis(2900), "the slow call was not cut at the timeout");
    assert_eq!(
        app.count_reaching("SELECT COUNT(*) FROM mcp_tool_calls WHERE outcome = 'upstream_failure' AND tool = 'slow' AND cost = 250000", 1)
            .await,
        1
    );
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
    assert_eq!(copies["access_profiles"][0]["budgets"][0]["current_usage"], 0.25, "sent and unanswered: it may have run, so it is charged");
    app.stop().await;
    fixture.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_redirects_is_not_followed() {
    let (url, fixture) = serve_http(Fixture::default()).await.expect("fixture");
    // A server that sends every request on to the fixture: a link must not go along.
    let target = url.clone();
    let bounce =
        axum::Router::new().route("/mcp", axum::routing::any(move || std::future::ready(axum::response::Redirect::temporary(&target))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let bounce_url = format!("http://{}/mcp", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, bounce).await;
    });
    let app = start(Backend::Sqlite).await;
    register_http(&app, "direct", &url, json!({})).await;
    register_http(&app, "bounce", &bounce_url, json!({})).await;
    let (_, key) =
        key_holder(&app, json!({"name": "Both", "mcp_servers": [{"mcp_server_id": "direct"}, {"mcp_server_id": "bounce"}]})).await;
    let tools = wait_for_tools(&app, &key, 6).await;
    assert!(tools.iter().all(|t| t.starts_with("direct-")), "{tools:?}");
    let state = app.admin().get("/api/mcp/client/bounce").await.expect(200)["state"].clone();
    assert_eq!(state, "error");
    app.stop().await;
    server.abort();
    fixture.abort();
}
