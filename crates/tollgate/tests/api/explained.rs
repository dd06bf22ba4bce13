//! Explained decisions: a refusal's envelope names its rule, copy and lines; the explain endpoint
//! gives the same numbers without charging; a key's own quota; the rate-limit headers. In memory
//! and with the counters in Redis.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, Reply, TestApp};

use crate::key_holder;

/// $0.001 per output token: a 10-token answer costs $0.01.
fn config(mock: &MockUpstream) -> String {
    format!(
        "[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\nmax_retries = 0\n\n\
         [pricing.models.\"openai/mock\"]\ninput = 0\noutput = 1000\n",
        mock.base_url()
    )
}

fn chat() -> Value {
    json!({"model": "openai/mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

async fn started(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    mock.script.prompt_tokens.store(0, Ordering::SeqCst);
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

async fn in_redis(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    mock.script.prompt_tokens.store(0, Ordering::SeqCst);
    let app = TestApp::start_with_config(backend, &crate::replicas::config(&mock)).await;
    (app, mock)
}

/// A profile with a $0.02 daily budget on `openai/mock`.
fn budgeted(name: &str) -> Value {
    json!({"name": name, "budgets": [{"max_limit": 0.02, "reset_duration": "1d"}],
        "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})
}

async fn explain(app: &TestApp, body: Value) -> Reply {
    app.admin().post("/api/governance/explain", body).await
}

/// The line checks of an explanation.
fn line_checks(explanation: &Value) -> Vec<Value> {
    explanation["checks"].as_array().into_iter().flatten().filter(|c| c["check"] == "line").cloned().collect()
}

fn header(reply: &Reply, name: &str) -> Option<String> {
    reply.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The key id of the user's first copy.
async fn key_id(app: &TestApp, user: &str) -> String {
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await;
    copies.expect(200)["access_profiles"][0]["virtual_key_ids"][0].as_str().unwrap_or_default().to_owned()
}

/// A budget refusal's envelope and the explanation of the same request name the same line with
/// the same numbers, by user and by key.
async fn a_refusal_and_its_explanation_agree(app: &TestApp) {
    let (user, key) = key_holder(app, budgeted("Agree")).await;
    for _ in 0..2 {
        app.with_key(&key).post("/v1/chat/completions", chat()).await.expect(200);
    }
    let refused = app.with_key(&key).post("/v1/chat/completions", chat()).await;
    assert_eq!(refused.status.as_u16(), 402, "{}", refused.body);
    let denial = refused.body["extra_fields"]["denial"].clone();
    assert_eq!(denial["rule"], "budget_exceeded");
    assert_eq!(denial["profile_name"], "Agree");
    assert!(denial["copy_id"].is_i64() && denial["profile_id"].is_i64(), "{denial}");
    let line = denial["lines"][0].clone();
    assert_eq!((line["kind"].clone(), line["scope"].clone()), (json!("budget"), json!("profile")));
    assert_eq!((line["used"].clone(), line["estimate"].clone(), line["limit"].clone()), (json!(0.02), json!(0.01), json!(0.02)));
    let message = refused.body["error"]["message"].as_str().unwrap_or_default();
    let line_id = line["line_id"].as_str().unwrap_or_default();
    let resets_at = line["resets_at"].as_str().unwrap_or_default();
    let resets_at_seconds = resets_at.get(..19).unwrap_or_default();
    assert!(
        message.contains(&format!("budget '{line_id}'")) && message.contains("0.0200") && message.contains(resets_at_seconds),
        "the message names the line, its numbers and its reset: {message} / {line}"
    );
    assert!(message.contains("access profile 'Agree'"), "{message}");
    let kid = key_id(app, &user).await;
    for who in [json!({"user_id": user}), json!({"virtual_key_id": kid})] {
        let mut body = json!({"model": "openai/mock", "max_tokens": 10});
        body.as_object_mut().into_iter().for_each(|o| o.extend(who.as_object().cloned().unwrap_or_default()));
        let explained = explain(app, body).await.expect(200).clone();
        assert_eq!((explained["decision"].clone(), explained["rule"].clone()), (json!("deny"), json!("budget_exceeded")), "{explained}");
        assert_eq!(explained["message"].as_str(), Some(message), "the same message as the refusal");
        let failing: Vec<Value> = line_checks(&explained).into_iter().filter(|c| c["passed"] == false).collect();
        assert_eq!(failing.len(), 1, "{explained}");
        let explained_line = &failing[0]["line"];
        for field in ["line_id", "kind", "scope", "used", "estimate", "limit", "resets_at"] {
            assert_eq!(explained_line[field], line[field], "{field}: {explained_line} vs {line}");
        }
        assert_eq!(explained_line["remaining"], json!(0.0));
        assert_eq!(explained["copy"]["copy_id"], denial["copy_id"]);
    }
    let names: Vec<Value> =
        explain(app, json!({"virtual_key_id": kid, "model": "openai/mock", "max_tokens": 10})).await.expect(200)["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["check"].clone())
            .collect();
    let order =
        json!(["key_known", "key_active", "key_unexpired", "copy_active", "provider_allowed", "model_allowed", "model_priced", "line"]);
    assert_eq!(Value::Array(names), order, "every check, in admission's order");
}

/// Explaining reads the counters and reserves nothing: the room it shows is the room a real
/// request then gets.
async fn explaining_charges_nothing(app: &TestApp) {
    let (user, key) = key_holder(app, budgeted("Free to ask")).await;
    app.with_key(&key).post("/v1/chat/completions", chat()).await.expect(200);
    let ask = json!({"user_id": user, "model": "openai/mock", "max_tokens": 10});
    for _ in 0..5 {
        let explained = explain(app, ask.clone()).await.expect(200).clone();
        assert_eq!(explained["decision"], "allow", "{explained}");
        let line = &line_checks(&explained)[0]["line"];
        assert_eq!((line["used"].clone(), line["remaining"].clone()), (json!(0.01), json!(0.01)), "{line}");
        assert_eq!(explained["estimate"]["cost"], 0.01);
    }
    app.with_key(&key).post("/v1/chat/completions", chat()).await.expect(200);
    let explained = explain(app, ask).await.expect(200).clone();
    assert_eq!((explained["decision"].clone(), line_checks(&explained)[0]["line"]["used"].clone()), (json!("deny"), json!(0.02)));
}

on_both_backends! {
    async fn explain_refuses_what_it_cannot_explain_and_names_a_model_not_granted(app: &TestApp) {
        let (user, _) = key_holder(app, json!({"name": "Narrow", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
        let explained = explain(app, json!({"user_id": user, "model": "openai/other", "max_tokens": 5})).await.expect(200).clone();
        assert_eq!((explained["decision"].clone(), explained["rule"].clone()), (json!("deny"), json!("model_blocked")), "{explained}");
        let last = explained["checks"].as_array().and_then(|c| c.last()).cloned().unwrap_or_default();
        assert_eq!((last["check"].clone(), last["passed"].clone()), (json!("model_allowed"), json!(false)), "{explained}");
        let unknown_user = explain(app, json!({"user_id": "nobody", "model": "openai/mock"})).await;
        assert_eq!(unknown_user.body["error"]["type"], "not_found", "{}", unknown_user.body);
        unknown_user.expect_error(404);
        explain(app, json!({"virtual_key_id": "vk-nope", "model": "openai/mock"})).await.expect_error(404);
        explain(app, json!({"user_id": user, "model": "no-slash"})).await.expect_error(400);
        explain(app, json!({"model": "openai/mock"})).await.expect_error(400);
        app.anonymous().post("/api/governance/explain", json!({"user_id": user, "model": "openai/mock"})).await.expect_error(401);
    }
}

with_mock_upstream! { started;
    async fn a_budget_refusal_and_its_explanation_name_the_same_line_and_numbers(app, mock) {
        let _ = mock;
        a_refusal_and_its_explanation_agree(app).await;
    }

    async fn explaining_reserves_nothing(app, mock) {
        let _ = mock;
        explaining_charges_nothing(app).await;
    }

    async fn the_quota_shows_each_key_its_own_users_lines_and_refuses_as_inference_does(app, mock) {
        let _ = mock;
        let limited = |name: &str, budget: f64, requests: u64| json!({"name": name, "budgets": [{"max_limit": budget, "reset_duration": "1d"}],
            "rate_limit": {"request_max_limit": requests, "request_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]});
        let (_, first) = key_holder(app, limited("Quota One", 1.0, 10)).await;
        let (second_user, second) = key_holder(app, limited("Quota Two", 2.0, 7)).await;
        for _ in 0..2 {
            app.with_key(&first).post("/v1/chat/completions", chat()).await.expect(200);
        }
        app.with_key(&second).post("/v1/chat/completions", chat()).await.expect(200);
        let one = app.with_key(&first).get("/api/governance/virtual-keys/quota").await.expect(200).clone();
        assert_eq!((one["budgets"][0]["max_limit"].clone(), one["budgets"][0]["current_usage"].clone()), (json!(1.0), json!(0.02)), "{one}");
        assert_eq!((one["rate_limit"]["request_max_limit"].clone(), one["rate_limit"]["request_current_usage"].clone()), (json!(10), json!(2)));
        assert_eq!(one["access_profiles"][0]["profile_name"], "Quota One");
        assert_eq!(one["is_active"], true);
        let two = app.with_header("x-api-key", &second).get("/api/governance/virtual-keys/quota").await.expect(200).clone();
        assert_eq!((two["budgets"][0]["max_limit"].clone(), two["budgets"][0]["current_usage"].clone()), (json!(2.0), json!(0.01)), "{two}");
        assert_eq!(two["rate_limit"]["request_current_usage"], 1);
        assert_eq!(two["access_profiles"].as_array().map(Vec::len), Some(1), "only its own user's copies");
        assert_ne!(two["budgets"][0]["id"], one["budgets"][0]["id"]);
        let bearer = app.with_header("authorization", &format!("Bearer {second}")).get("/api/governance/virtual-keys/quota").await;
        assert_eq!(bearer.expect(200)["budgets"], two["budgets"]);

        // Refused exactly as an inference request with the same key is.
        let admin_only = app.admin().get("/api/governance/virtual-keys/quota").await;
        let inference_without = app.anonymous().post("/v1/chat/completions", chat()).await;
        let without = app.anonymous().get("/api/governance/virtual-keys/quota").await;
        let unknown = app.with_key("sk-bf-unknown").get("/api/governance/virtual-keys/quota").await;
        let inference_unknown = app.with_key("sk-bf-unknown").post("/v1/chat/completions", chat()).await;
        app.sql(&format!("UPDATE virtual_keys SET is_active = 0 WHERE user_id = '{second_user}'")).await;
        app.admin().post(crate::FAMILIES[0], json!({"name": "any write reloads"})).await.expect(201);
        let inactive = app.with_key(&second).get("/api/governance/virtual-keys/quota").await;
        let inference_inactive = app.with_key(&second).post("/v1/chat/completions", chat()).await;
        for (quota, inference, status) in
            [(&without, &inference_without, 401), (&admin_only, &inference_without, 401), (&unknown, &inference_unknown, 401), (&inactive, &inference_inactive, 403)]
        {
            assert_eq!(quota.status.as_u16(), status, "{}", quota.body);
            assert_eq!(quota.body["type"], inference.body["type"], "{} vs {}", quota.body, inference.body);
            assert_eq!(quota.body["error"]["type"], inference.body["error"]["type"]);
            assert_eq!(quota.body["extra_fields"]["request_type"], "quota");
        }
        app.with_key(&first).get("/api/governance/virtual-keys/quota").await.expect(200);
    }

    async fn answers_carry_the_rate_limit_headers_of_the_tightest_line(app, mock) {
        let _ = mock;
        rate_limit_headers(app).await;
    }
}

/// After N requests on a request limit of M the answer says M − N remain; the tighter of the
/// provider's and the profile's lines is shown; an answer without a rate line has no headers.
async fn rate_limit_headers(app: &TestApp) {
    let (_, key) = key_holder(app, json!({"name": "Headers", "rate_limit": {"request_max_limit": 9, "request_reset_duration": "1h"},
        "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"],
            "rate_limit": {"request_max_limit": 5, "request_reset_duration": "1h", "token_max_limit": 1000, "token_reset_duration": "1d"}}]}))
    .await;
    for n in 1..=3u64 {
        let reply = app.with_key(&key).post("/v1/chat/completions", chat()).await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
        assert_eq!(header(&reply, "x-ratelimit-limit-requests").as_deref(), Some("5"), "the provider's 5 is tighter than the profile's 9");
        assert_eq!(header(&reply, "x-ratelimit-remaining-requests"), Some((5 - n).to_string()));
        let reset = header(&reply, "x-ratelimit-reset-requests").unwrap_or_default();
        assert!(reset.ends_with('s') && reset.chars().next().is_some_and(|c| c.is_ascii_digit()), "{reset}");
        assert_eq!(header(&reply, "x-ratelimit-limit-tokens").as_deref(), Some("1000"));
        let remaining: u64 = header(&reply, "x-ratelimit-remaining-tokens").and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
        assert!(remaining < 1000 - 10 * (n - 1), "earlier answers' tokens and this request's estimate are taken: {remaining}");
        assert!(header(&reply, "x-ratelimit-reset-tokens").is_some_and(|r| r.contains('h')), "a daily window resets in hours");
    }
    let (_, free) =
        key_holder(app, json!({"name": "No limits", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
    let reply = app.with_key(&free).post("/v1/chat/completions", chat()).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert!(reply.headers.keys().all(|name| !name.as_str().starts_with("x-ratelimit-")), "no rate line, no headers: {:?}", reply.headers);
}

with_mock_upstream! { in_redis;
    async fn with_counters_in_redis_refusals_explanations_quota_and_headers_agree(app, mock) {
        let _ = mock;
        a_refusal_and_its_explanation_agree(app).await;
        explaining_charges_nothing(app).await;
        rate_limit_headers(app).await;
        let (_, key) = key_holder(app, budgeted("Redis quota")).await;
        app.with_key(&key).post("/v1/chat/completions", chat()).await.expect(200);
        // With Redis a request settles in the background, shortly after its answer.
        let mut quota = Value::Null;
        for _ in 0..100 {
            quota = app.with_key(&key).get("/api/governance/virtual-keys/quota").await.expect(200).clone();
            if quota["budgets"][0]["current_usage"] == 0.01 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!((quota["budgets"][0]["current_usage"].clone(), quota["budgets"][0]["reserved"].clone()), (json!(0.01), json!(0.0)), "{quota}");
    }
}
