//! Governed inference end to end: a real mock upstream over HTTP, keys issued through the
//! management API, every check of the contract, exact accounting under concurrency and streams.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;

/// $0.001 per output token, input free: a 20-token answer costs exactly $0.02.
fn config(mock: &MockUpstream) -> String {
    format!(
        r#"
[[providers]]
name = "openai"
base_url = "{}"
api_key = "test-upstream-key"
models = ["mock", "mock-large"]
max_retries = 0

[pricing.models."openai/mock"]
input = 0
output = 1000

[pricing.models."openai/down-model"]
input = 0
output = 1000
"#,
        mock.base_url()
    )
}

/// A user holding a copy of `profile`; returns (user id, key value, copy).
async fn member(app: &TestApp, profile: Value) -> (String, String, Value) {
    let (user, key) = key_holder(app, profile).await;
    let copy = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0].clone();
    (user, key, copy)
}

fn chat(model: &str, max_tokens: u64) -> Value {
    json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
}

fn openai_only(name: &str) -> Value {
    json!({"name": name, "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})
}

async fn gateway_app(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

with_mock_upstream! { gateway_app;
    async fn identity_and_access_checks_follow_the_contract(app, mock) {
        let (_, key, _) = member(app, openai_only("Checked")).await;
        let r = app.anonymous().post("/v1/chat/completions", chat("openai/mock", 5)).await;
        assert_eq!((r.status.as_u16(), r.body["type"].clone()), (401, json!("virtual_key_required")));
        let r = app.with_key("sk-bf-00000000-0000-0000-0000-000000000000").post("/v1/chat/completions", chat("openai/mock", 5)).await;
        assert_eq!((r.status.as_u16(), r.body["type"].clone()), (401, json!("virtual_key_not_found")));
        let r = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock-large", 5)).await;
        assert_eq!((r.status.as_u16(), r.body["type"].clone()), (403, json!("model_blocked")));
        assert_eq!(r.body["extra_fields"]["model_requested"], "mock-large");
        let r = app.with_key(&key).post("/v1/chat/completions", chat("openai/mo\u{0}ck", 5)).await;
        assert_eq!(r.status.as_u16(), 400, "a control character in the model name is refused before it could reach the request log");
        let r = app.with_key(&key).post("/v1/chat/completions", chat("anthropic/claude-3-5-haiku", 5)).await;
        // The key is checked before the provider is looked up (decision 111): this key does not
        // grant `anthropic`, so it learns that, not whether `anthropic` is configured.
        assert_eq!((r.status.as_u16(), r.body["type"].clone()), (403, json!("provider_blocked")), "{}", r.body);
        assert_eq!(mock.calls(), 0, "nothing refused reached the provider");
        for client in [app.with_key(&key), app.with_header("x-bf-vk", &key), app.with_header("x-api-key", &key)] {
            let ok = client.post("/v1/chat/completions", chat("openai/mock", 5)).await;
            assert_eq!(ok.expect(200)["choices"][0]["message"]["role"], "assistant");
            assert_eq!(ok.body["upstream_saw_authorization"], "Bearer test-upstream-key", "the provider key, never the virtual key");
        }
        let models = app.with_key(&key).get("/v1/models").await.expect(200).clone();
        assert_eq!(models["data"], json!([{"id": "openai/mock", "object": "model", "owned_by": "openai"}]));
        let blocked = app.with_key(&key).get("/v1/models?provider=anthropic").await;
        assert_eq!((blocked.status.as_u16(), blocked.body["extra_fields"]["request_type"].clone()), (403, json!("list_models")));
        let refused = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock-large", 5)).await;
        assert_eq!(refused.body["extra_fields"]["request_type"], "chat_completion");
    }

    async fn a_star_in_allowed_models_grants_every_model_and_the_list_names_the_served_ones(app, mock) {
        // Regression: `"*"` was taken as a model named `*`, so it granted no real model and
        // `/v1/models` listed `openai/*`; and a profile allowing every model of an API-managed
        // provider listed none of its models.
        app.admin().post("/api/providers", json!({
            "provider": "acme",
            "custom_provider_config": {"base_provider_type": "openai"},
            "network_config": {"base_url": mock.base_url()},
            "keys": [{"id": "k-acme", "name": "k-acme", "value": "sk-acme-secret-000000001", "models": ["acme-1", "*"]}]
        })).await.expect(200);
        let (_, key, _) = member(app, json!({"name": "Everything", "provider_configs": [
            {"provider_name": "openai", "allowed_models": ["*"]},
            {"provider_name": "acme", "all_models_allowed": true}
        ]})).await;
        for model in ["openai/mock", "openai/mock-large", "acme/acme-1"] {
            let served = app.with_key(&key).post("/v1/chat/completions", chat(model, 5)).await;
            assert_eq!(served.status.as_u16(), 200, "{model}: {}", served.body);
        }
        assert_eq!(mock.calls(), 3);
        let listed = app.with_key(&key).get("/v1/models").await.expect(200)["data"].clone();
        let ids: Vec<&str> = listed.as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
        assert_eq!(ids, ["acme/acme-1", "openai/mock", "openai/mock-large"], "the models each provider serves, never a `*`");
    }

    async fn a_token_count_or_stream_flag_governance_cannot_read_is_refused_before_any_call(app, mock) {
        // Regression: `max_tokens: 1e30` (or 1.5, "16", -1) used to be read as absent, so the
        // request was reserved at the default while a lenient provider honoured its own reading;
        // 0 was reserved as no output at all, whatever a server that accepts it makes of it.
        let (_, key, _) = member(app, openai_only("Strict")).await;
        let messages = json!([{"role": "user", "content": "hi"}]);
        for (member, value, expected) in [
            ("max_tokens", json!(1e30), "max_tokens must be a whole number of tokens (1 or more)"),
            ("max_tokens", json!(1.5), "max_tokens must be a whole number of tokens (1 or more)"),
            ("max_tokens", json!("16"), "max_tokens must be a whole number of tokens (1 or more)"),
            ("max_completion_tokens", json!(-1), "max_completion_tokens must be a whole number of tokens (1 or more)"),
            ("max_tokens", json!(0), "max_tokens must be a whole number of tokens (1 or more)"),
            ("stream", json!("yes"), "stream must be true or false"),
        ] {
            let body = json!({"model": "openai/mock", "messages": messages, member: value});
            let refused = app.with_key(&key).post("/v1/chat/completions", body.clone()).await;
            assert_eq!((refused.status.as_u16(), refused.body["type"].clone()), (400, json!("invalid_request")), "{member}: {}", refused.body);
            assert_eq!(refused.body["error"]["message"], expected);
            if member != "max_completion_tokens" {
                // The Messages route reads the same members (it has no `max_completion_tokens`).
                let refused = app.with_key(&key).post("/anthropic/v1/messages", body).await;
                assert_eq!((refused.status.as_u16(), refused.body["error"]["message"].clone()), (400, json!(expected)), "{}", refused.body);
            }
        }
        assert_eq!(mock.calls(), 0, "nothing unreadable reached the provider");
        let absent = json!({"model": "openai/mock", "messages": messages, "max_tokens": null, "stream": null});
        app.with_key(&key).post("/v1/chat/completions", absent).await.expect(200);
    }

    async fn every_choice_a_request_asks_for_is_reserved(app, mock) {
        // Regression: `n` was ignored, so a request for four choices reserved the output of one.
        let (_, key, _) = member(app, json!({
            "name": "Choices",
            "rate_limit": {"token_max_limit": 100, "token_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        let mut body = chat("openai/mock", 30);
        body["n"] = json!(4);
        let refused = app.with_key(&key).post("/v1/chat/completions", body.clone()).await;
        assert_eq!((refused.status.as_u16(), refused.body["type"].clone()), (429, json!("token_limited")), "4 × 30 output tokens do not fit 100: {}", refused.body);
        for bad in [json!(0), json!(1.5), json!("2")] {
            body["n"] = bad;
            let refused = app.with_key(&key).post("/v1/chat/completions", body.clone()).await;
            assert_eq!((refused.status.as_u16(), refused.body["error"]["message"].clone()), (400, json!("n must be a whole number of choices (1 or more)")));
        }
        assert_eq!(mock.calls(), 0);
        body["n"] = json!(2);
        app.with_key(&key).post("/v1/chat/completions", body).await.expect(200);
    }

    async fn a_management_write_takes_effect_on_the_next_request(app, mock) {
        let (user, key, copy) = member(app, openai_only("Revoked")).await;
        app.with_key(&key).post("/v1/chat/completions", chat("openai/mock", 5)).await.expect(200);
        let profile = copy["parent_profile_id"].as_i64().unwrap_or_default();
        app.admin().delete(&format!("/api/governance/users/{user}/access-profiles/{profile}")).await.expect(200);
        let r = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock", 5)).await;
        assert_eq!((r.status.as_u16(), r.body["type"].clone()), (401, json!("virtual_key_not_found")));
        assert_eq!(mock.calls(), 1);
    }

    async fn a_burst_never_spends_past_the_budget_and_leaves_no_reservation(app, mock) {
        let (user, key, copy) = member(app, json!({
            "name": "Burst",
            "budgets": [{"max_limit": 0.2, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        let client = app.with_key(&key);
        let burst = (0..500).map(|_| client.post("/v1/chat/completions", chat("openai/mock", 20)));
        let statuses: Vec<u16> = join_all(burst).await.into_iter().map(|r| r.status.as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "exactly what fits");
        assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 490);
        assert_eq!(mock.calls(), 10);
        let budget = copy["budgets"][0]["id"].as_str().unwrap_or_default().to_owned();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let spent = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"].clone();
        assert_eq!(spent, 0.2, "spent exactly the budget, persisted within a second");
        let refused = client.post("/v1/chat/completions", chat("openai/mock", 20)).await;
        assert_eq!(refused.body["type"], "budget_exceeded");
        let profile = copy["parent_profile_id"].as_i64().unwrap_or_default();
        app.admin().put(&format!("/api/governance/users/{user}/access-profiles/{profile}/budgets/{budget}/override"), json!({"amount": 0.02, "mode": "forever"})).await.expect(200);
        client.post("/v1/chat/completions", chat("openai/mock", 20)).await.expect(200);
        let logs = app.count("SELECT COUNT(*) AS n FROM request_logs WHERE status = 200").await;
        assert!(logs >= 10, "request log holds the served requests: {logs}");
    }

    // Regression: a propagate with `reset_usage` zeroed the stored usage, but the running
    // counters kept enforcing (and later re-persisted) the old spend.
    async fn a_usage_reset_frees_the_room_on_the_next_request(app, mock) {
        let (user, key, copy) = member(app, json!({
            "name": "Reset",
            "budgets": [{"max_limit": 0.04, "reset_duration": "1M"}],
            "rate_limit": {"request_max_limit": 2, "request_reset_duration": "1d"},
            "calendar_aligned": true,
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        let client = app.with_key(&key);
        for _ in 0..2 {
            client.post("/v1/chat/completions", chat("openai/mock", 20)).await.expect(200);
        }
        assert_eq!(client.post("/v1/chat/completions", chat("openai/mock", 20)).await.status.as_u16(), 429);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let profile = copy["parent_profile_id"].as_i64().unwrap_or_default();
        let reset = json!({"fields": ["budgets", "rate_limit"], "reset_usage": true});
        app.admin().post(&format!("/api/governance/access-profiles/{profile}/propagate"), reset).await.expect(200);
        let view = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0].clone();
        assert_eq!((view["budgets"][0]["current_usage"].clone(), view["rate_limit"]["request_current_usage"].clone()), (json!(0.0), json!(0)));
        client.post("/v1/chat/completions", chat("openai/mock", 20)).await.expect(200);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let view = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0].clone();
        assert_eq!(view["budgets"][0]["current_usage"], 0.02, "only the request after the reset counts, also once persisted");
        assert_eq!(view["rate_limit"]["request_current_usage"], 1);
        assert_eq!(mock.calls(), 3);
    }

    async fn a_request_limit_admits_exactly_its_count(app, mock) {
        let (_, key, _) = member(app, json!({
            "name": "Counted",
            "rate_limit": {"request_max_limit": 7, "request_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        let client = app.with_key(&key);
        let replies = join_all((0..100).map(|_| client.post("/v1/chat/completions", chat("openai/mock", 5)))).await;
        assert_eq!(replies.iter().filter(|r| r.status.as_u16() == 200).count(), 7);
        let refused = replies.iter().find(|r| r.status.as_u16() == 429).map(|r| (r.body["type"].clone(), r.headers.get("retry-after").is_some()));
        assert_eq!(refused, Some((json!("request_limited"), true)));
        assert_eq!(mock.calls(), 7);
    }

    async fn upstream_failures_charge_nothing(app, mock) {
        let (user, key, _) = member(app, json!({
            "name": "Failing",
            "budgets": [{"max_limit": 1, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        mock.script.fail_status.store(500, Ordering::SeqCst);
        let r = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock", 20)).await;
        assert_eq!(r.status.as_u16(), 500, "the provider's answer is passed through");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let spent = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"].clone();
        assert_eq!(spent, 0.0);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM request_logs WHERE status = 500 AND cost = 0").await, 1);
    }

    async fn streams_are_billed_from_usage_or_from_what_was_delivered(app, mock) {
        let (user, key, _) = member(app, json!({
            "name": "Streaming",
            "budgets": [{"max_limit": 10, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        let spent = || async {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"].as_f64().unwrap_or(-1.0)
        };
        let mut body = chat("openai/mock", 20);
        body["stream"] = json!(true);
        let text = app.raw_stream(&key, &body, usize::MAX).await;
        assert!(text.contains("data: [DONE]"), "{text}");
        assert!((spent().await - 0.02).abs() < 1e-9, "billed from the usage chunk");
        mock.script.stream_usage.store(0, Ordering::SeqCst);
        app.raw_stream(&key, &body, usize::MAX).await;
        let after_second = spent().await;
        assert!((after_second - 0.04).abs() < 1e-9, "without a usage chunk the delivered text is counted: {after_second}");
        mock.script.chunk_delay_ms.store(50, Ordering::SeqCst);
        let partial = app.raw_stream(&key, &body, 5).await;
        assert!(!partial.contains("[DONE]"));
        let after_abandon = spent().await;
        let charged = after_abandon - after_second;
        assert!(charged > 0.0 && charged < 0.02, "an abandoned stream pays for what it received: {charged}");
    }
}

with_mock_upstream! { gateway_app;
    async fn embeddings_are_governed_and_billed_by_input_tokens(app, mock) {
        let (_, key, _) = member(app, json!({
            "name": "Embedder",
            "budgets": [{"max_limit": 1, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        mock.script.prompt_tokens.store(8, Ordering::SeqCst);
        let ok = app.with_key(&key).post("/v1/embeddings", json!({"model": "openai/mock", "input": ["alpha", "beta"]})).await;
        assert_eq!(ok.expect(200)["data"][0]["embedding"], json!([0.25, -0.5, 0.125]));
        let refused = app.with_key(&key).post("/v1/embeddings", json!({"model": "openai/other", "input": "x"})).await;
        assert_eq!(refused.body["type"], "model_blocked");
        assert_eq!(refused.body["extra_fields"]["request_type"], "embedding", "an embedding's error says so");
        let missing = app.with_key(&key).post("/v1/embeddings", json!({"model": "openai/mock"})).await;
        assert_eq!((missing.status.as_u16(), missing.body["extra_fields"]["request_type"].clone()), (400, json!("embedding")));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let logs = app.count("SELECT COUNT(*) AS n FROM request_logs WHERE prompt_tokens = 8 AND completion_tokens = 0").await;
        assert_eq!(logs, 1, "charged by the tokens the provider reported");
    }

    async fn fallbacks_are_tried_in_order_each_under_governance(app, mock) {
        let (user, key, _) = member(app, json!({
            "name": "Fallback",
            "budgets": [{"max_limit": 1, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["down-model", "mock"]}]
        })).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        let mut body = chat("openai/down-model", 20);
        body["fallbacks"] = json!(["openai/mock-large", "openai/mock"]);
        let served = app.with_key(&key).post("/v1/chat/completions", body.clone()).await;
        assert_eq!(served.expect(200)["model"], "mock", "the first fallback that passes governance and answers serves");
        assert_eq!(mock.calls(), 2, "down-model failed upstream; mock-large was refused by governance before any call");
        let forwarded = mock.script.received.lock().map(|r| r.last().map(|x| x.body.clone())).ok().flatten().unwrap_or_default();
        assert!(forwarded.get("fallbacks").is_none(), "fallbacks are not forwarded");
        body["fallbacks"] = json!(["openai/mock-large"]);
        let failed = app.with_key(&key).post("/v1/chat/completions", body).await;
        assert_eq!(failed.status.as_u16(), 503, "when all fail, the primary's answer stands");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let spent = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"].clone();
        assert_eq!(spent, 0.02, "only the fallback that served was charged");
    }
}

/// Regression: the prompt used to be tokenized before the key was checked, so anyone could make
/// the gateway tokenize a 32 MiB body. Refusals now come first, and an admitted request is reserved
/// at its prompt's byte length (no count can exceed it); only when that does not fit is the prompt
/// tokenized and tried at its count. Nextest runs each test in its own process, so the
/// tokenized-bytes counter here is this test's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_is_tokenized_only_when_its_byte_bound_does_not_fit_an_admitted_request() {
    let (app, _mock) = gateway_app(Backend::Sqlite).await;
    let mut body = chat("openai/mock", 5);
    body["messages"][0]["content"] = json!("word ".repeat(200_000));
    assert_eq!(app.anonymous().post("/v1/chat/completions", body.clone()).await.status.as_u16(), 401);
    let unknown = app.with_key("sk-bf-00000000-0000-0000-0000-000000000000").post("/v1/chat/completions", body).await;
    assert_eq!(unknown.status.as_u16(), 401);
    assert_eq!(tollgate_gateway::tokenized_bytes(), 0, "nothing was tokenized for callers who were refused");
    let (_, key, _) = member(
        &app,
        json!({
            "name": "Tokenized",
            "rate_limit": {"token_max_limit": 1000, "token_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        }),
    )
    .await;
    app.with_key(&key).post("/v1/chat/completions", chat("openai/mock", 5)).await.expect(200);
    assert_eq!(tollgate_gateway::tokenized_bytes(), 0, "a request with room is reserved at its bound, untokenized");
    let mut long = chat("openai/mock", 5);
    long["messages"][0]["content"] = json!("word ".repeat(400));
    app.with_key(&key).post("/v1/chat/completions", long.clone()).await.expect(200);
    assert!(tollgate_gateway::tokenized_bytes() >= 2000, "2,000 bytes do not fit 1,000 tokens, so the prompt was counted");
    long["messages"][0]["content"] = json!("word ".repeat(1200));
    let refused = app.with_key(&key).post("/v1/chat/completions", long).await;
    assert_eq!(refused.status.as_u16(), 429, "about 1,200 counted tokens do not fit either");
    app.stop().await;
}
