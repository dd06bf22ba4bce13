//! `GET /metrics`: who may scrape, and an exposition that agrees with the traffic sent (by the
//! official OpenAI SDK and by hand), with the request log and the tool-call audit, carries no user
//! or key, and passes `promtool check metrics`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_testkit::mcp_fixture::{Fixture, serve_http};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;
use crate::mcp::{register_http, rpc, wait_for_tools};
use crate::sdk::run_sdk_script;

/// `Observability:View`, the permission a management API key needs to scrape.
const OBSERVABILITY_VIEW: u64 = 113;
/// `Logs:View`, which is not enough.
const LOGS_VIEW: u64 = 97;

/// $0.001 per output token: a 10-token answer costs $0.01; `openai/unlisted` has no price.
fn config(mock: &MockUpstream, extra: &str) -> String {
    format!(
        "[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\nmax_retries = 0\n\n\
         [pricing.models.\"openai/mock\"]\ninput = 0\noutput = 1000\n\n{extra}",
        mock.base_url()
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

/// The samples of the exposition: (name, labels) → value.
pub(crate) type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

pub(crate) fn samples(text: &str) -> Samples {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample without a value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a value that is not a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned())))
            .collect();
        out.push((name.to_owned(), labels, value));
    }
    out
}

/// The sum of the samples named `name` whose labels include every pair of `labels`, to the
/// nearest whole number (the counts compared are whole).
#[expect(clippy::cast_possible_truncation, reason = "small whole counts")]
pub(crate) fn total(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> i64 {
    let sum: f64 = samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum();
    sum.round() as i64
}

/// Runs `promtool check metrics` on the exposition; a missing promtool fails the test.
fn promtool_accepts(text: &str) {
    let child =
        Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("promtool is required to check the exposition ({e}); install Debian's `prometheus` package (apt-get install -y prometheus)")
    });
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("writing to promtool: {e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("promtool: {e}"));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics refused the exposition:\n{said}\n---\n{text}");
}

pub(crate) async fn scrape(app: &TestApp) -> String {
    let response = reqwest::Client::new()
        .get(app.url("/metrics"))
        .basic_auth(tollgate_testkit::ADMIN_USER, Some(tollgate_testkit::ADMIN_PASSWORD))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 200);
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until the usage writer has stored `requests` log lines of admitted requests and `calls`
/// tool-call rows, and has counted them (it counts a batch just after storing it); returns the
/// exposition then.
async fn logged(app: &TestApp, requests: i64, calls: i64) -> String {
    let start = Instant::now();
    loop {
        let admitted = app.count("SELECT COUNT(*) AS n FROM request_logs WHERE denial IS NULL").await;
        let seen = (admitted, app.count("SELECT COUNT(*) AS n FROM mcp_tool_calls").await);
        if seen == (requests, calls) {
            let text = scrape(app).await;
            let s = samples(&text);
            if (total(&s, "tollgate_requests_total", &[]), total(&s, "tollgate_mcp_tool_calls_total", &[])) == seen {
                return text;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the log holds {seen:?} (or the metrics lag it), not ({requests}, {calls})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod the_exposition_agrees_with_the_traffic_and_the_log_and_passes_promtool {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let (tools, fixture) = serve_http(Fixture::default()).await.unwrap_or_else(|e| panic!("fixture: {e}"));
        let app = TestApp::start_with_config(backend, &config(&mock, "")).await;
        register_http(&app, "docs", &tools, json!({})).await;
        let openai = |models: Value| json!([{"provider_name": "openai", "allowed_models": models}]);
        // Two answers fit the budget, the third is refused; the same key calls a tool.
        let (metered_user, metered) = key_holder(
            &app,
            json!({"name": "Metered", "provider_configs": openai(json!(["mock"])),
            "budgets": [{"max_limit": 0.02, "reset_duration": "1d"}], "mcp_servers": [{"mcp_server_id": "docs"}]}),
        )
        .await;
        // One request an hour.
        let (_, limited) = key_holder(
            &app,
            json!({"name": "Limited", "provider_configs": openai(json!(["mock"])),
            "rate_limit": {"request_max_limit": 1, "request_reset_duration": "1h"}}),
        )
        .await;
        // The SDK's key, and an unpriced model the caller names.
        let (sdk_user, free) =
            key_holder(&app, json!({"name": "Free", "provider_configs": openai(json!(["mock", "unlisted-7f3a"]))})).await;
        wait_for_tools(&app, &metered, 1).await;

        for _ in 0..2 {
            app.with_key(&metered).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        }
        assert_eq!(app.with_key(&metered).post("/v1/chat/completions", chat("openai/mock")).await.body["type"], "budget_exceeded");
        app.with_key(&limited).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        assert_eq!(app.with_key(&limited).post("/v1/chat/completions", chat("openai/mock")).await.body["type"], "request_limited");
        app.with_key(&free).post("/v1/chat/completions", chat("openai/unlisted-7f3a")).await.expect(200);
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "docs-echo", "arguments": {"text": "x"}}});
        let (status, body) = rpc(&app, "/mcp", &[("authorization", &format!("Bearer {metered}"))], call).await;
        assert!(status == 200 && body["result"]["isError"] != json!(true), "{status} {body}");
        // Regression: a tool of a client that does not exist put the caller's text in a label.
        let made_up = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "madeup9c1-tool", "arguments": {}}});
        let (_, body) = rpc(&app, "/mcp", &[("authorization", &format!("Bearer {metered}"))], made_up).await;
        assert_eq!(body["result"]["isError"], json!(true), "{body}");
        // The official SDK: one plain answer, one stream, a model it may not use, a bad key.
        let env = [
            ("TOLLGATE_URL", format!("http://{}", app.addr)),
            ("TOLLGATE_KEY", free.clone()),
            ("TOLLGATE_MODEL", "openai/mock".to_owned()),
        ];
        let seen = tokio::task::spawn_blocking(move || run_sdk_script("openai_sdk.py", &env)).await.unwrap_or(Value::Null);
        assert_eq!(seen["stream_text_words"], 20, "{seen}");

        let text = logged(&app, 6, 2).await;
        let s = samples(&text);
        let chat_ok = [("route", "chat_completions"), ("provider", "openai"), ("model", "mock"), ("outcome", "ok")];
        let stored = app.count("SELECT COUNT(*) AS n FROM request_logs WHERE model = 'mock' AND status = 200").await;
        assert_eq!((total(&s, "tollgate_requests_total", &chat_ok), stored), (5, 5), "2 metered, 1 limited, 2 by the SDK");
        let other = [("model", "other"), ("outcome", "ok")];
        assert_eq!(total(&s, "tollgate_requests_total", &other), 1, "an unpriced model is counted as other");
        assert!(!text.contains("unlisted-7f3a"), "a model name the caller chose became a label:\n{text}");
        let sum = |column: &str| format!("SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS n FROM request_logs");
        assert_eq!(total(&s, "tollgate_tokens_total", &[("direction", "in")]), app.count(&sum("prompt_tokens")).await);
        assert_eq!(total(&s, "tollgate_tokens_total", &[("direction", "out")]), app.count(&sum("completion_tokens")).await);
        let cost = total(&s, "tollgate_cost_microdollars_total", &[("provider", "openai")]);
        assert_eq!(cost, app.count(&sum("cost")).await);
        assert!(cost >= 20_000, "the metered key's two answers cost $0.02: {cost}");
        for (rule, n) in [("budget_exceeded", 1), ("request_limited", 1), ("model_blocked", 1), ("key_not_found", 1)] {
            assert_eq!(total(&s, "tollgate_denials_total", &[("route", "chat_completions"), ("type", rule)]), n, "{rule}");
            let logged = app.count_reaching(&format!("SELECT COUNT(*) AS n FROM request_logs WHERE denial = '{rule}'"), n).await;
            assert_eq!(logged, n, "the log holds each refusal the denials counter counted ({rule})");
        }
        assert_eq!(total(&s, "tollgate_mcp_tool_calls_total", &[("client", "docs"), ("outcome", "ok")]), 1);
        assert_eq!(total(&s, "tollgate_mcp_tool_calls_total", &[("client", "unknown"), ("outcome", "denied")]), 1);
        assert!(!text.contains("madeup9c1"), "a client name the caller chose became a label:\n{text}");
        let sent = [("route", "chat_completions")];
        assert_eq!(total(&s, "tollgate_gateway_overhead_seconds_count", &sent), 6, "every request sent upstream");
        assert_eq!(total(&s, "tollgate_upstream_latency_seconds_count", &[("provider", "openai")]), 6);
        let seconds = |name: &str| s.iter().filter(|(n, _, _)| n == name).map(|(_, _, v)| v).sum::<f64>();
        let (overhead, upstream) = (seconds("tollgate_gateway_overhead_seconds_sum"), seconds("tollgate_upstream_latency_seconds_sum"));
        assert!(overhead > 0.0 && overhead < 6.0 && upstream > 0.0 && upstream < 60.0, "overhead {overhead} s, upstream {upstream} s");
        let inf = [("route", "chat_completions"), ("le", "+Inf")];
        assert_eq!(total(&s, "tollgate_gateway_overhead_seconds_bucket", &inf), 6, "the overhead histogram has buckets");
        assert_eq!(total(&s, "tollgate_streams_open", &[]), 0);
        assert_eq!(total(&s, "tollgate_reservations_held", &[]), 0);
        assert!(total(&s, "tollgate_snapshot_reloads_total", &[("scope", "full")]) >= 1, "{text}");
        assert!(total(&s, "tollgate_usage_writer_flush_seconds_count", &[]) >= 1, "{text}");
        assert!(s.iter().any(|(n, _, _)| n == "tollgate_snapshot_age_seconds"), "{text}");
        for private in [&metered_user, &sdk_user, &metered, &free, &limited] {
            assert!(!text.contains(private.as_str()), "the exposition names a user or key ({private})");
        }
        let key_ids = app.text("SELECT COALESCE(MAX(virtual_key_id), '') FROM request_logs").await;
        assert!(key_ids.is_empty() || !text.contains(&key_ids), "the exposition names a key id");
        promtool_accepts(&text);
        fixture.abort();
        app.stop().await;
    }

    scenario_on_both_backends!();
}

mod a_scrape_needs_a_credential_with_observability_view_unless_its_address_is_allowed {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let app = TestApp::start_with_config(backend, &config(&mock, "")).await;
        let refused = app.anonymous().get("/metrics").await;
        let message = refused.expect_error(401).to_owned();
        assert!(message.contains("authentication required"), "{message}");
        let bad = app.basic(tollgate_testkit::ADMIN_USER, "not-the-password").get("/metrics").await;
        bad.expect_error(401);
        for (scopes, status) in [(json!([LOGS_VIEW]), 403), (json!([OBSERVABILITY_VIEW]), 200)] {
            let created = app.admin().post("/api/api-keys", json!({"name": format!("scrape-{status}"), "scopes": scopes})).await;
            let key = created.expect(200)["key"].as_str().unwrap_or_default().to_owned();
            let reply = reqwest::Client::new().get(app.url("/metrics")).bearer_auth(&key).send().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(reply.status().as_u16(), status, "an API key with scopes {scopes}");
        }
        app.stop().await;

        let allowed = TestApp::start_with_config(backend, &config(&mock, "[metrics]\nallow = [\"127.0.0.1/32\", \"::1\"]\n")).await;
        let reply = reqwest::Client::new().get(allowed.url("/metrics")).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.status().as_u16(), 200, "an allow-listed address scrapes without a credential");
        allowed.stop().await;
        let elsewhere = TestApp::start_with_config(backend, &config(&mock, "[metrics]\nallow = [\"10.0.0.0/8\"]\n")).await;
        elsewhere.anonymous().get("/metrics").await.expect_error(401);
        elsewhere.stop().await;
    }

    scenario_on_both_backends!();
}

#[test]
fn a_bad_scrape_address_block_is_a_configuration_problem_naming_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, "[metrics]\nallow = [\"10.0.0.1/8\", \"127.0.0.1\"]\n").unwrap_or_else(|e| panic!("{e}"));
    let resolved = tollgate::Settings::resolve(tollgate::Overrides { config: Some(path), ..tollgate::Overrides::default() });
    let problem = resolved.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(problem.contains("metrics.allow[0]") && !problem.contains("metrics.allow[1]"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_counters_in_redis_each_script_round_trip_is_timed() {
    let mock = MockUpstream::start().await;
    // The replicas tests' settings: the CI Redis under a key prefix of this test process's own.
    let app = TestApp::start_with_config(Backend::Sqlite, &crate::replicas::config(&mock)).await;
    let (_, key) = key_holder(
        &app,
        json!({"name": "Shared", "budgets": [{"max_limit": 1, "reset_duration": "1d"}],
        "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]}),
    )
    .await;
    app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
    let text = logged(&app, 1, 0).await;
    let s = samples(&text);
    assert!(total(&s, "tollgate_redis_latency_seconds_count", &[]) >= 2, "a reservation and its settlement:\n{text}");
    assert_eq!(total(&s, "tollgate_redis_errors_total", &[]), 0);
    promtool_accepts(&text);
    app.stop().await;
}
