//! MCP calls under governance: admission refusals as plain HTTP before any JSON-RPC, protocol
//! odds and ends (notifications, GET, discovery), priced calls that stop at the budget exactly
//! under concurrency, request limits, audit rows, and the REST execution route.
#![expect(clippy::expect_used, reason = "a failing exchange with a server under test must stop the test loudly")]

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_testkit::mcp_fixture::{Fixture, serve_http};
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;
use crate::mcp::{listed, register_http, rpc, wait_for_tools};

fn call(id: u64, name: &str, arguments: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

async fn fixture_app(backend: Backend, profile: Value, client: Value) -> (TestApp, String, String, tokio::task::JoinHandle<()>) {
    let (url, task) = serve_http(Fixture::default()).await.expect("fixture");
    let app = TestApp::start(backend).await;
    register_http(&app, "docs", &url, client).await;
    let (user, key) = key_holder(&app, profile).await;
    wait_for_tools(&app, &key, 1).await;
    (app, user, key, task)
}

async fn admission(backend: Backend) {
    let profile = json!({"name": "Reader", "mcp_servers": [{"mcp_server_id": "docs"}]});
    let (app, user, key, task) = fixture_app(backend, profile, json!({})).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let bearer = format!("Bearer {key}");
    let (status, body) = rpc(&app, "/mcp", &[], list.clone()).await;
    assert_eq!(
        (status, body["error"]["type"].clone(), body["extra_fields"]["request_type"].clone()),
        (401, json!("virtual_key_required"), json!("mcp")),
        "{body}"
    );
    let (status, _) = rpc(&app, "/mcp", &[("authorization", "Bearer sk-bf-not-a-key")], list.clone()).await;
    assert_eq!(status, 401);
    // The key in each of the contract's headers.
    for header in ["x-api-key", "x-bf-vk"] {
        assert_eq!(rpc(&app, "/mcp", &[(header, key.as_str())], list.clone()).await.0, 200, "{header}");
    }
    // A notification is accepted without an answer; GET offers no stream.
    let (status, _) =
        rpc(&app, "/mcp", &[("authorization", &bearer)], json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    assert_eq!(status, 202);
    let get =
        reqwest::Client::new().get(app.url("/mcp")).bearer_auth(&key).header("accept", "text/event-stream").send().await.expect("sent");
    assert_eq!(get.status().as_u16(), 405);
    // initialize names the gateway. server/discover on a connection that declared an older
    // protocol is "method not found", on which the newest clients fall back to initialize (the
    // Python tests open both ways).
    let init = json!({"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, body) = rpc(&app, "/mcp", &[("authorization", &bearer)], init).await;
    assert_eq!((status, body["result"]["serverInfo"]["name"].clone()), (200, json!("tollgate")), "{body}");
    let (_, body) = rpc(&app, "/mcp", &[("authorization", &bearer)], json!({"jsonrpc": "2.0", "id": 3, "method": "server/discover"})).await;
    assert_eq!(body["error"]["code"], -32601, "{body}");
    let (_, body) = rpc(&app, "/mcp", &[("authorization", &bearer)], json!({"jsonrpc": "2.0", "id": 4, "method": "no/such"})).await;
    assert_eq!(body["error"]["code"], -32601, "{body}");
    // Garbage is a 4xx, never a 5xx.
    let garbage = reqwest::Client::new()
        .post(app.url("/mcp"))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("sent");
    assert!(garbage.status().is_client_error(), "{}", garbage.status());
    // A body over the cap is refused from its declared length, before it is read.
    let flood = reqwest::Client::new()
        .post(app.url("/mcp"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("content-length", (5 * 1024 * 1024).to_string())
        .body(reqwest::Body::wrap_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>()))
        .send()
        .await
        .expect("answered before the body was sent");
    assert_eq!(flood.status().as_u16(), 413);
    // Without a declared length, a body one byte over the cap is refused once the cap is passed,
    // in the envelope (rmcp alone answered that with a 500).
    let chunk = vec![b' '; tollgate_mcp::MAX_MCP_BODY_BYTES / 4];
    let chunks = futures::stream::iter([chunk.clone(), chunk.clone(), chunk.clone(), chunk, vec![b' ']].map(Ok::<_, std::io::Error>));
    let flood = reqwest::Client::new()
        .post(app.url("/mcp"))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("answered");
    let status = flood.status().as_u16();
    let body: Value = flood.json().await.unwrap_or(Value::Null);
    assert_eq!((status, body["error"]["type"].clone()), (413, json!("payload_too_large")), "{body}");
    assert_eq!(body["extra_fields"]["request_type"], "mcp", "{body}");
    // Slugs: a client the key reaches, one it does not, and none at all.
    assert_eq!(listed(&app, "/mcp/docs", &key, &[]).await.len(), 6);
    assert_eq!(rpc(&app, "/mcp/nothing", &[("authorization", &bearer)], list.clone()).await.0, 404);
    let other =
        app.admin().get("/api/mcp/client/docs").await.expect(200)["config"]["connection_string"].as_str().unwrap_or_default().to_owned();
    register_http(&app, "other", &other, json!({})).await;
    let (status, body) = rpc(&app, "/mcp/other", &[("authorization", &bearer)], list.clone()).await;
    assert_eq!((status, body["error"]["message"].clone()), (403, json!("access_denied")), "{body}");

    // A deactivated key, then a deactivated copy: 403 at once, before any JSON-RPC.
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
    let key_id = copies["access_profiles"][0]["virtual_key_ids"][0].as_str().unwrap_or_default().to_owned();
    let profile_id = copies["access_profiles"][0]["parent_profile_id"].as_i64().unwrap_or_default();
    app.admin().put(&format!("/api/governance/virtual-keys/{key_id}"), json!({"is_active": false})).await.expect(200);
    let (status, body) = rpc(&app, "/mcp", &[("authorization", &bearer)], list.clone()).await;
    assert_eq!((status, body["error"]["type"].clone()), (403, json!("virtual_key_blocked")), "{body}");
    assert_eq!(body["extra_fields"]["denial"]["rule"], "key_inactive", "{body}");
    app.admin().put(&format!("/api/governance/virtual-keys/{key_id}"), json!({"is_active": true})).await.expect(200);
    app.admin().put(&format!("/api/governance/users/{user}/access-profiles/{profile_id}"), json!({"is_active": false})).await.expect(200);
    let (status, body) = rpc(&app, "/mcp", &[("authorization", &bearer)], list).await;
    assert_eq!((status, body["error"]["type"].clone()), (403, json!("access_blocked")), "{body}");
    app.stop().await;
    task.abort();
}

mod admission_refuses_in_plain_http_before_any_json_rpc_and_the_protocol_edges_hold {
    use super::admission as scenario;
    scenario_on_both_backends!();
}

/// Budget usage of the user's first copy, once the writer has caught up.
/// The copy's budget usage as the API shows it, polled until it reaches `want` (the usage writer
/// persists settlements a moment after the answers) or ten seconds pass.
async fn spent(app: &TestApp, user: &str, want: f64) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
        let seen = copies["access_profiles"][0]["budgets"][0]["current_usage"].as_f64().unwrap_or(-1.0);
        if seen >= want - 1e-9 || tokio::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn budget(backend: Backend) {
    let profile =
        json!({"name": "Priced", "budgets": [{"max_limit": 0.5, "reset_duration": "1d"}], "mcp_servers": [{"mcp_server_id": "docs"}]});
    let (app, user, key, task) = fixture_app(backend, profile, json!({"tool_pricing": {"echo": 0.01}})).await;
    let bearer = format!("Bearer {key}");
    let calls = (0..100u64).map(|i| {
        let app = &app;
        let bearer = bearer.clone();
        async move { rpc(app, "/mcp", &[("authorization", bearer.as_str())], call(i, "docs-echo", &json!({"text": "x"}))).await }
    });
    let answers = futures::future::join_all(calls).await;
    let ok = answers.iter().filter(|(s, b)| *s == 200 && b["result"]["isError"] != true).count();
    let refused: Vec<&Value> = answers.iter().filter(|(_, b)| b["result"]["isError"] == true).map(|(_, b)| b).collect();
    assert_eq!(ok, 50, "exactly the budget's worth of calls ran");
    assert_eq!(refused.len(), 50);
    assert!(refused[0]["result"]["content"][0]["text"].as_str().unwrap_or_default().contains("udget"), "{}", refused[0]);
    // The refusal's structured fields, as an inference refusal's `extra_fields.denial` has them.
    let denial = &refused[0]["result"]["_meta"]["tollgate/denial"];
    assert_eq!((denial["rule"].clone(), denial["profile_name"].clone()), (json!("budget_exceeded"), json!("Priced")), "{}", refused[0]);
    assert_eq!((denial["lines"][0]["kind"].clone(), denial["lines"][0]["limit"].clone()), (json!("budget"), json!(0.5)), "{denial}");
    assert!((spent(&app, &user, 0.5).await - 0.5).abs() < 1e-9);
    assert_eq!(app.count_reaching("SELECT COUNT(*) FROM mcp_tool_calls WHERE outcome = 'ok'", 50).await, 50);
    assert_eq!(app.count_reaching("SELECT COUNT(*) FROM mcp_tool_calls WHERE outcome = 'budget'", 50).await, 50);
    let row = app.text("SELECT client_id || '|' || tool || '|' || user_id FROM mcp_tool_calls WHERE outcome = 'ok' LIMIT 1").await;
    assert_eq!(row, format!("docs|echo|{user}"));
    // An unpriced tool still runs: it costs nothing.
    let (_, body) = rpc(&app, "/mcp", &[("authorization", &bearer)], call(101, "docs-add", &json!({"a": 1, "b": 2}))).await;
    assert_eq!(body["result"]["content"][0]["text"], "3", "{body}");
    app.stop().await;
    task.abort();
}

mod priced_calls_stop_at_the_budget_exactly_under_a_hundred_concurrent_calls {
    use super::budget as scenario;
    scenario_on_both_backends!();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_count_against_the_request_rate_limit() {
    let profile = json!({"name": "Slowed", "rate_limit": {"request_max_limit": 3, "request_reset_duration": "1h"}, "mcp_servers": [{"mcp_server_id": "docs"}]});
    let (app, _, key, task) = fixture_app(Backend::Sqlite, profile, json!({})).await;
    let bearer = format!("Bearer {key}");
    let mut errors = Vec::new();
    for i in 0..4 {
        let (_, body) = rpc(&app, "/mcp", &[("authorization", &bearer)], call(i, "docs-echo", &json!({"text": "x"}))).await;
        errors.push(body["result"]["isError"] == true);
    }
    assert_eq!(errors, [false, false, false, true]);
    assert_eq!(app.count_reaching("SELECT COUNT(*) FROM mcp_tool_calls WHERE outcome = 'rate_limited'", 1).await, 1);
    app.stop().await;
    task.abort();
}

/// A caller that hangs up while a priced call runs upstream cannot dodge its price: the call was
/// sent, so it is charged (decision 159) and audited, and the budget's reservation is not left
/// held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_hangs_up_during_a_priced_call_is_still_charged() {
    let profile =
        json!({"name": "Leaver", "budgets": [{"max_limit": 10, "reset_duration": "1d"}], "mcp_servers": [{"mcp_server_id": "docs"}]});
    let (app, user, key, task) = fixture_app(Backend::Sqlite, profile, json!({"tool_pricing": {"slow": 0.25}})).await;
    let slow = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "docs-slow", "arguments": {"ms": 1500}}});
    let left = reqwest::Client::new()
        .post(app.url("/mcp"))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .timeout(Duration::from_millis(300))
        .json(&slow)
        .send()
        .await;
    assert!(left.is_err_and(|e| e.is_timeout()), "the caller gave up before the tool answered");
    assert!((spent(&app, &user, 0.25).await - 0.25).abs() < 1e-9, "sent, so charged");
    assert_eq!(app.count_reaching("SELECT COUNT(*) FROM mcp_tool_calls WHERE tool = 'slow' AND cost = 250000", 1).await, 1);
    let quota = app.with_key(&key).get("/api/governance/virtual-keys/quota").await.expect(200).clone();
    let budget = &quota["budgets"][0];
    assert_eq!((budget["current_usage"].clone(), budget["reserved"].clone()), (json!(0.25), json!(0.0)), "{quota}");
    app.stop().await;
    task.abort();
}

/// A plain `tools/call` is answered on the request's own task; one whose headers rmcp must check
/// first (here an `Accept` with weights) goes through rmcp's service. Both answer the same, for a
/// granted call and for a refused one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_answered_in_place_reads_as_the_one_rmcp_answers() {
    let profile = json!({"name": "Both", "mcp_tool_overrides": [{"mcp_client_id": "docs", "tool_name": "echo", "action": "include"}]});
    let (app, _, key, task) = fixture_app(Backend::Sqlite, profile, json!({})).await;
    let bearer = format!("Bearer {key}");
    let weighted = [("authorization", bearer.as_str()), ("accept", "application/json;q=1, text/event-stream;q=0.5")];
    for (name, arguments) in [("docs-echo", json!({"text": "same"})), ("docs-add", json!({"a": 1, "b": 2}))] {
        let direct = rpc(&app, "/mcp", &[("authorization", &bearer)], call(9, name, &arguments)).await;
        let through_rmcp = rpc(&app, "/mcp", &weighted, call(9, name, &arguments)).await;
        assert_eq!(direct.0, 200, "{}", direct.1);
        assert_eq!(direct, through_rmcp, "{name}");
    }
    assert_eq!(app.count_reaching("SELECT COUNT(*) FROM mcp_tool_calls", 4).await, 4, "every call has its row either way");
    app.stop().await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_route_runs_a_call_in_either_format_under_the_same_grant() {
    let profile = json!({"name": "Rest", "mcp_tool_overrides": [{"mcp_client_id": "docs", "tool_name": "echo", "action": "include"}]});
    let (app, _, key, task) = fixture_app(Backend::Sqlite, profile, json!({})).await;
    let chat = json!({"id": "call_1", "type": "function", "function": {"name": "docs-echo", "arguments": "{\"text\":\"hello\"}"}});
    let reply = app.with_key(&key).post("/v1/mcp/tool/execute?format=chat", chat).await;
    assert_eq!(reply.expect(200), &json!({"role": "tool", "tool_call_id": "call_1", "content": "hello"}));
    let responses = json!({"call_id": "c2", "name": "docs-echo", "arguments": {"text": "there"}});
    let reply = app.with_key(&key).post("/v1/mcp/tool/execute?format=responses", responses).await;
    assert_eq!(reply.expect(200), &json!({"type": "function_call_output", "call_id": "c2", "output": "there"}));
    let denied = json!({"id": "c3", "type": "function", "function": {"name": "docs-add", "arguments": "{}"}});
    assert!(app.with_key(&key).post("/v1/mcp/tool/execute", denied.clone()).await.expect_error(403).contains("not available"));
    app.anonymous().post("/v1/mcp/tool/execute", denied).await.expect_error(401);
    let bad = json!({"id": "c4", "type": "function", "function": {"name": "docs-echo", "arguments": "[1]"}});
    app.with_key(&key).post("/v1/mcp/tool/execute", bad).await.expect_error(400);
    app.with_key(&key).post("/v1/mcp/tool/execute?format=xml", json!({})).await.expect_error(400);
    app.with_key(&key).post("/v1/mcp/tool/execute", json!({"function": 3})).await.expect_error(400);
    let long = json!({"id": "c5", "type": "function", "function": {"name": "docs-echo", "arguments": "x".repeat(tollgate_mcp::MAX_MCP_BODY_BYTES)}});
    app.with_key(&key).post("/v1/mcp/tool/execute", long).await.expect_error(413);
    app.stop().await;
    task.abort();
}
