//! The request log, queryable: `GET /api/logs` filters, pages and sums what the official SDK and
//! plain clients sent, refusals included with the rule that refused them; `GET
//! /api/logs/filterdata`; and spend reports that agree with the budgets to the micro-dollar.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_testkit::mcp_fixture::{Fixture, serve_http};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::mcp::{register_http, rpc, wait_for_tools};
use crate::metrics::{samples, scrape, total};
use crate::sdk::run_sdk_script;
use crate::{create_profile, key_holder};

/// `Logs:View` and `Observability:View` (which does not open the log).
const LOGS_VIEW: u64 = 97;
const OBSERVABILITY_VIEW: u64 = 113;

/// $0.001 per output token: a 10-token answer costs $0.01, the SDK's 20-token ones $0.02.
fn config(mock: &MockUpstream) -> String {
    format!(
        "[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\nmax_retries = 0\n\n\
         [pricing.models.\"openai/mock\"]\ninput = 0\noutput = 1000\n",
        mock.base_url()
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

fn openai() -> Value {
    json!([{"provider_name": "openai", "allowed_models": ["mock"]}])
}

async fn logs(app: &TestApp, query: &str) -> Value {
    app.admin().get(&format!("/api/logs{query}")).await.expect(200).clone()
}

fn ids(page: &Value) -> usize {
    page["logs"].as_array().map_or(0, Vec::len)
}

mod the_log_api_filters_pages_and_sums_what_was_sent_refusals_included {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let app = TestApp::start_with_config(backend, &config(&mock)).await;
        // Alice: two answers fit her budget, the third is refused.
        let (alice, alice_key) = key_holder(
            &app,
            json!({"name": "Team A", "provider_configs": openai(), "budgets": [{"max_limit": 0.02, "reset_duration": "1d"}]}),
        )
        .await;
        for _ in 0..2 {
            app.with_key(&alice_key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        }
        let refused = app.with_key(&alice_key).post("/v1/chat/completions", chat("openai/mock")).await;
        assert_eq!(refused.body["type"], "budget_exceeded");
        let refusal_message = refused.body["error"]["message"].as_str().unwrap_or_default().to_owned();
        // Bob through the official SDK: a plain answer, a stream, a model he may not use, a bad key.
        let (bob, bob_key) = key_holder(&app, json!({"name": "Team B", "provider_configs": openai()})).await;
        let env = [
            ("TOLLGATE_URL", format!("http://{}", app.addr)),
            ("TOLLGATE_KEY", bob_key.clone()),
            ("TOLLGATE_MODEL", "openai/mock".to_owned()),
        ];
        let seen = tokio::task::spawn_blocking(move || run_sdk_script("openai_sdk.py", &env)).await.unwrap_or(Value::Null);
        assert_eq!(seen["refused_status"], 403, "{seen}");
        assert_eq!(app.count_reaching("SELECT COUNT(*) AS n FROM request_logs", 7).await, 7, "every request, refused or not, is logged");

        let all = logs(&app, "").await;
        assert_eq!((ids(&all), all["pagination"]["total_count"].as_u64(), all["has_logs"].as_bool()), (7, Some(7), Some(true)), "{all}");
        let stats = &all["stats"];
        assert_eq!(stats["total_requests"], 7);
        assert_eq!(stats["total_cost_micros"], 60_000, "2 × $0.01 + 2 × $0.02: {stats}");
        let rate = stats["success_rate"].as_f64().unwrap_or_default();
        assert!((rate - 400.0 / 7.0).abs() < 1e-9, "4 of 7 answered: {rate}");
        let tokens: u64 = all["logs"].as_array().into_iter().flatten().filter_map(|l| l["token_usage"]["total_tokens"].as_u64()).sum();
        assert_eq!(stats["total_tokens"].as_u64(), Some(tokens));
        let newest_first: Vec<&str> = all["logs"].as_array().into_iter().flatten().filter_map(|l| l["timestamp"].as_str()).collect();
        assert!(newest_first.windows(2).all(|w| w[0] >= w[1]), "newest first by default: {newest_first:?}");

        let budget = logs(&app, "?denial_types=budget_exceeded").await;
        assert_eq!(ids(&budget), 1);
        let row = &budget["logs"][0];
        assert_eq!(
            (row["status"].as_str(), row["status_code"].as_u64(), row["user_id"].as_str()),
            (Some("error"), Some(402), Some(alice.as_str()))
        );
        assert_eq!(row["denial"]["message"].as_str(), Some(refusal_message.as_str()), "the log keeps the refusal as the caller read it");
        assert!(row["copy_id"].is_i64() && row["profile_id"].is_i64(), "the governing copy and template are named: {row}");
        let profile = row["profile_id"].as_i64().unwrap_or_default();
        assert_eq!(ids(&logs(&app, &format!("?profile_ids={profile}")).await), 3, "alice's three requests ran under Team A");
        assert_eq!(ids(&logs(&app, "?denial_types=any").await), 3, "budget, model and key refusals");
        let blocked = logs(&app, "?denial_types=model_blocked").await;
        assert_eq!(
            (blocked["logs"][0]["user_id"].as_str(), blocked["logs"][0]["model"].as_str()),
            (Some(bob.as_str()), Some("not-allowed"))
        );
        let unknown = logs(&app, "?denial_types=key_not_found").await;
        assert_eq!((ids(&unknown), unknown["logs"][0]["user_id"].clone()), (1, Value::Null), "a bad key is logged without a user");
        assert_eq!(ids(&logs(&app, &format!("?user_ids={alice}")).await), 3);
        assert_eq!(ids(&logs(&app, "?status=success&providers=openai&models=mock").await), 4);
        assert_eq!(ids(&logs(&app, "?status=error").await), 3);
        assert_eq!(ids(&logs(&app, "?min_cost=0.015").await), 2, "the SDK's two answers cost $0.02 each");
        let streamed: Vec<Value> = logs(&app, "?status=success").await["logs"].as_array().cloned().unwrap_or_default();
        assert_eq!(streamed.iter().filter(|l| l["stream"] == true).count(), 1, "the SDK's stream is marked");
        let key_id = row["virtual_key_id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(ids(&logs(&app, &format!("?virtual_key_ids={key_id}")).await), 3);
        let future = logs(&app, "?start_time=2999-01-01T00:00:00Z").await;
        assert_eq!((ids(&future), future["has_logs"].as_bool(), future["stats"]["total_requests"].as_u64()), (0, Some(true), Some(0)));

        let by_cost = logs(&app, "?sort_by=cost&order=asc&limit=2&offset=5").await;
        let costs: Vec<i64> = by_cost["logs"].as_array().into_iter().flatten().filter_map(|l| l["cost_micros"].as_i64()).collect();
        assert_eq!(costs, vec![20_000, 20_000], "the two dearest, cheapest first, on the last page");
        assert_eq!((by_cost["pagination"]["total_count"].as_u64(), by_cost["pagination"]["sort_by"].as_str()), (Some(7), Some("cost")));

        for (query, param) in [
            ("?start_time=yesterday", "start_time"),
            ("?limit=5000", "limit"),
            ("?status=processing", "status"),
            ("?sort_by=name", "sort_by"),
        ] {
            let reply = app.admin().get(&format!("/api/logs{query}")).await;
            reply.expect_error(400);
            assert_eq!(reply.body["error"]["param"], param, "{query}: {}", reply.body);
        }

        let data = app.admin().get("/api/logs/filterdata").await.expect(200).clone();
        assert_eq!(data["providers"], json!(["openai"]), "{data}");
        assert!(data["models"].as_array().is_some_and(|m| m.contains(&json!("mock"))), "{data}");
        let users: Vec<Value> = data["users"].as_array().cloned().unwrap_or_default();
        assert_eq!(users.len(), 2, "{data}");
        for user in [&alice, &bob] {
            assert!(users.iter().any(|u| u["id"] == json!(user) && u["name"].is_string()), "{user} is offered with a name: {data}");
        }
        let mut rules: Vec<String> =
            data["denial_types"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        rules.sort();
        assert_eq!(rules, ["budget_exceeded", "key_not_found", "model_blocked"]);
        assert!(data["profiles"].as_array().is_some_and(|p| p.iter().any(|x| x["name"] == "Team A")), "{data}");

        for (scopes, status) in [(json!([OBSERVABILITY_VIEW]), 403), (json!([LOGS_VIEW]), 200)] {
            let created = app.admin().post("/api/api-keys", json!({"name": format!("logs-{status}"), "scopes": scopes})).await;
            let key = created.expect(200)["key"].as_str().unwrap_or_default().to_owned();
            let reply = reqwest::Client::new().get(app.url("/api/logs")).bearer_auth(&key).send().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(reply.status().as_u16(), status, "an API key with scopes {scopes}");
        }
        app.anonymous().get("/api/logs").await.expect_error(401);
        app.stop().await;
    }

    scenario_on_both_backends!();
}

/// The current usage of a user's first copy's first budget, in micro-dollars.
async fn budget_usage(app: &TestApp, user: &str) -> i64 {
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
    let dollars = copies["access_profiles"][0]["budgets"][0]["current_usage"].as_f64().unwrap_or(-1.0);
    #[expect(clippy::cast_possible_truncation, reason = "a few dollars in micro-dollars")]
    let micros = (dollars * 1_000_000.0).round() as i64;
    micros
}

mod a_monthly_spend_report_per_user_equals_what_their_budgets_were_charged {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let (tools, fixture) = serve_http(Fixture::default()).await.unwrap_or_else(|e| panic!("fixture: {e}"));
        let app = TestApp::start_with_config(backend, &config(&mock)).await;
        register_http(&app, "docs", &tools, json!({"tool_pricing": {"echo": 0.005}})).await;
        let monthly = json!([{"max_limit": 0.035, "reset_duration": "1M"}]);
        let (carol, carol_key) = key_holder(
            &app,
            json!({"name": "Finance", "calendar_aligned": true, "provider_configs": openai(), "budgets": monthly, "mcp_servers": [{"mcp_server_id": "docs"}]}),
        )
        .await;
        let (dave, dave_key) =
            key_holder(&app, json!({"name": "Research", "calendar_aligned": true, "provider_configs": openai(), "budgets": monthly})).await;
        let _unused = create_profile(&app, json!({"name": "Unused"})).await;
        wait_for_tools(&app, &carol_key, 1).await;
        // Carol: three answers ($0.03) and a tool call ($0.005) fill her budget; a fourth answer is refused.
        for _ in 0..3 {
            app.with_key(&carol_key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        }
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "docs-echo", "arguments": {"text": "x"}}});
        let (status, body) = rpc(&app, "/mcp", &[("authorization", &format!("Bearer {carol_key}"))], call).await;
        assert!(status == 200 && body["result"]["isError"] != json!(true), "{status} {body}");
        assert_eq!(app.with_key(&carol_key).post("/v1/chat/completions", chat("openai/mock")).await.body["type"], "budget_exceeded");
        app.with_key(&dave_key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        app.count_reaching("SELECT COUNT(*) AS n FROM request_logs", 5).await;
        app.count_reaching("SELECT COUNT(*) AS n FROM mcp_tool_calls", 1).await;

        let report = app.admin().get("/api/governance/usage/report?group_by=user&interval=month").await.expect(200).clone();
        assert_eq!((report["interval"].as_str(), report["group_by"].clone()), (Some("month"), json!(["user"])));
        let rows: Vec<Value> = report["rows"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 2, "{report}");
        for (user, requests, denied) in [(&carol, 4, 1), (&dave, 1, 0)] {
            let row = rows.iter().find(|r| r["user_id"] == json!(user)).unwrap_or_else(|| panic!("no row for {user}: {report}"));
            assert_eq!(
                row["cost_micros"].as_i64(),
                Some(budget_usage(&app, user).await),
                "{user}'s month equals her budget's usage: {row}"
            );
            assert_eq!((row["requests"].as_u64(), row["denied_requests"].as_u64()), (Some(requests), Some(denied)), "{row}");
            assert!(row["period_start"].as_str().is_some_and(|d| d.ends_with("-01")), "a month starts on the 1st: {row}");
        }
        assert_eq!(report["totals"]["cost_micros"], 45_000, "{report}");
        assert_eq!(report["totals"]["cost"], "0.045000");

        let detail = app.admin().get("/api/governance/usage/report?group_by=role,profile,provider,model").await.expect(200).clone();
        let tool = detail["rows"].as_array().into_iter().flatten().find(|r| r["provider"] == "mcp").cloned().unwrap_or_default();
        assert_eq!(
            (tool["model"].as_str(), tool["cost_micros"].as_i64(), tool["profile_name"].as_str()),
            (Some("docs/echo"), Some(5_000), Some("Finance")),
            "{detail}"
        );
        assert!(tool["role_name"].is_string() && tool.get("user_id").is_none(), "grouped by role, not by user: {tool}");

        let csv = reqwest::Client::new()
            .get(app.url("/api/governance/usage/report?group_by=user,model&format=csv"))
            .basic_auth(tollgate_testkit::ADMIN_USER, Some(tollgate_testkit::ADMIN_PASSWORD))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(csv.status().as_u16(), 200);
        let kind = csv.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let disposition = csv.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(kind.starts_with("text/csv") && disposition.starts_with("attachment; filename=\"tollgate-spend-"), "{kind} {disposition}");
        let text = csv.text().await.unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "period_start,user_id,user_name,model,requests,denied_requests,prompt_tokens,completion_tokens,total_tokens,cost_usd"
        );
        assert_eq!(lines.len(), 4, "carol's answers, carol's tool, dave's answers:\n{text}");
        assert!(lines.iter().any(|l| l.contains(&carol) && l.contains("docs/echo") && l.ends_with(",0.005000")), "{text}");

        for query in ["?group_by=team", "?interval=hour", "?format=xml", "?start_time=2026-02-01T00:00:00Z&end_time=2026-01-01T00:00:00Z"] {
            app.admin().get(&format!("/api/governance/usage/report{query}")).await.expect_error(400);
        }
        fixture.abort();
        app.stop().await;
    }

    scenario_on_both_backends!();
}

/// A flood of requests with made-up keys is logged at most so many a second; every refusal not
/// logged is counted, so the two add up to what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_unknown_keys_are_logged_at_a_bounded_rate_and_the_rest_counted() {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(Backend::Sqlite, &config(&mock)).await;
    let sent = 300;
    let start = std::time::Instant::now();
    for i in 0..sent {
        app.with_key(&format!("sk-bf-made-up-{i}")).post("/v1/chat/completions", chat("openai/mock")).await.expect_error(401);
    }
    // The cap counts per clock second: a run of d seconds touches at most floor(d) + 2 of them.
    let seconds = i64::try_from(start.elapsed().as_secs()).unwrap_or(i64::MAX) + 2;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (logged, dropped) = loop {
        let logged = app.count("SELECT COUNT(*) AS n FROM request_logs WHERE denial = 'key_not_found'").await;
        let dropped = total(&samples(&scrape(&app).await), "tollgate_refusals_not_logged_total", &[]);
        if logged + dropped == sent || std::time::Instant::now() > deadline {
            break (logged, dropped);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(logged + dropped, sent, "every refusal is either logged or counted as not logged");
    assert!(logged >= 1 && logged <= 50 * seconds, "at most 50 a second: {logged} of {sent} in {seconds} s");
    app.stop().await;
}
