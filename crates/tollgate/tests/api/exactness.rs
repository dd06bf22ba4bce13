//! No way past a budget or a request limit: an answer is capped at what was reserved, a call the
//! client abandons or that times out is still charged, every upstream attempt (retries and
//! fallbacks, failed or not) takes a request, and `fallbacks` is bounded.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;

/// $0.001 per output token, input free; 100 output tokens assumed without `max_tokens`; a
/// one-second timeout and two retries for `openai`, none for `flaky`.
fn config(mock: &MockUpstream) -> String {
    format!(
        r#"
[gateway]
default_max_tokens = 100

[[providers]]
name = "openai"
base_url = "{url}"
api_key = "test-upstream-key"
timeout_secs = 1
max_retries = 2

[[providers]]
name = "flaky"
base_url = "{url}"
api_key = "test-upstream-key"
max_retries = 0

[pricing.models."openai/mock"]
input = 0
output = 1000

[pricing.models."flaky/mock"]
input = 0
output = 1000
"#,
        url = mock.base_url()
    )
}

async fn exact_app(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

fn profile(name: &str, extra: &Value) -> Value {
    let mut body = json!({"name": name, "provider_configs": [
        {"provider_name": "openai", "allowed_models": ["mock"]},
        {"provider_name": "flaky", "allowed_models": ["mock", "other", "third", "fourth", "fifth", "sixth"]}
    ]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

/// The budget's current usage once the writer has persisted it.
async fn spent(app: &TestApp, user: &str) -> f64 {
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await;
    copies.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"].as_f64().unwrap_or(-1.0)
}

/// The request limit's current usage once persisted.
async fn requests_counted(app: &TestApp, user: &str) -> i64 {
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await;
    copies.expect(200)["access_profiles"][0]["rate_limit"]["request_current_usage"].as_i64().unwrap_or(-1)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

with_mock_upstream! { exact_app;
    async fn a_request_without_max_tokens_is_capped_at_what_it_reserved(app, mock) {
        // Regression: the default output was reserved but not sent, so an upstream writing
        // 20,000 tokens was served and charged 2.4 times a budget the reservation fitted in.
        let (user, key) = key_holder(app, profile("Capped", &json!({"budgets": [{"max_limit": 0.25, "reset_duration": "1d"}]}))).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        mock.script.completion_tokens.store(20_000, Ordering::SeqCst);
        let served = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await;
        served.expect(200);
        let sent = mock.last_request().map(|r| r.body).unwrap_or_default();
        assert_eq!(sent["max_tokens"], 100, "the default output limit goes upstream: {sent}");
        assert!((spent(app, &user).await - 0.1).abs() < 1e-9, "charged the 100 tokens reserved, not 20,000");
        let mut own = chat("openai/mock");
        own["max_completion_tokens"] = json!(7);
        app.with_key(&key).post("/v1/chat/completions", own).await.expect(200);
        let sent = mock.last_request().map(|r| r.body).unwrap_or_default();
        assert_eq!((sent["max_completion_tokens"].clone(), sent.get("max_tokens")), (json!(7), None), "a limit of its own is left as sent");
        let anthropic = app
            .with_key(&key)
            .post("/anthropic/v1/messages", json!({"model": "openai/mock", "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        assert_eq!(anthropic.status.as_u16(), 200, "{}", anthropic.body);
        let sent = mock.last_request().map(|r| r.body).unwrap_or_default();
        assert_eq!(sent["max_tokens"], 100, "the Messages route sends the limit it reserved for too: {sent}");
        assert!((spent(app, &user).await - 0.207).abs() < 1e-9, "0.1 + 0.007 + 0.1");
    }

    async fn a_client_that_hangs_up_still_pays_for_the_answer_and_the_request(app, mock) {
        // Regression: a client leaving before a plain answer came made the call free (budget
        // untouched, logged with 0 tokens) although the provider served and billed it.
        let (user, key) = key_holder(app, profile("Leaving", &json!({
            "budgets": [{"max_limit": 1, "reset_duration": "1d"}],
            "rate_limit": {"request_max_limit": 100, "request_reset_duration": "1h"}
        }))).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        mock.script.answer_delay_ms.store(600, Ordering::SeqCst);
        let impatient = reqwest::Client::builder().timeout(Duration::from_millis(250)).build().unwrap_or_default();
        for _ in 0..3 {
            let gone = impatient
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "flaky/mock", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await;
            assert!(gone.is_err(), "the client gave up before the answer");
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(mock.script.answered.load(Ordering::SeqCst), 3, "the provider served all three");
        assert!((spent(app, &user).await - 0.06).abs() < 1e-9, "each is billed the 20 tokens the provider reported");
        assert_eq!(requests_counted(app, &user).await, 3);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM request_logs WHERE completion_tokens = 20 AND status = 200").await, 3);
    }

    async fn a_call_that_times_out_is_charged_its_reservation(app, mock) {
        // Regression: a timed-out call charged nothing, though the provider may bill it whole.
        let (user, key) = key_holder(app, profile("Slow", &json!({"budgets": [{"max_limit": 1, "reset_duration": "1d"}]}))).await;
        mock.script.answer_delay_ms.store(1500, Ordering::SeqCst);
        let mut body = chat("openai/mock");
        body["max_tokens"] = json!(30);
        let r = app.with_key(&key).post("/v1/chat/completions", body).await;
        assert_eq!((r.status.as_u16(), r.body["type"].clone()), (504, json!("upstream_timeout")), "{}", r.body);
        let charged = spent(app, &user).await;
        assert!((0.03..0.031).contains(&charged), "the reservation (30 output tokens and the prompt's bound) is charged: {charged}");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM request_logs WHERE status = 504 AND completion_tokens = 30").await, 1);
    }

    async fn every_upstream_attempt_takes_a_request_even_a_failed_one(app, mock) {
        // Regression: answers the provider refused charged no request, so a limit of 2 let six
        // requests (and every retry) reach it.
        let (user, key) = key_holder(app, profile("Refused", &json!({
            "rate_limit": {"request_max_limit": 2, "request_reset_duration": "1h"}
        }))).await;
        mock.script.fail_status.store(400, Ordering::SeqCst);
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(app.with_key(&key).post("/v1/chat/completions", chat("flaky/mock")).await.status.as_u16());
        }
        assert_eq!(statuses, [400, 400, 429, 429, 429, 429]);
        assert_eq!(mock.calls(), 2, "only two requests reached the provider");
        assert_eq!(requests_counted(app, &user).await, 2);
    }

    async fn a_retry_takes_a_request_and_none_is_made_past_the_limit(app, mock) {
        let (user, key) = key_holder(app, profile("Retried", &json!({
            "rate_limit": {"request_max_limit": 2, "request_reset_duration": "1h"}
        }))).await;
        mock.script.fail_status.store(503, Ordering::SeqCst);
        let r = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await;
        assert_eq!(r.status.as_u16(), 503, "the provider's last answer is passed on");
        assert_eq!(mock.calls(), 2, "max_retries is 2, but the limit leaves room for one retry only");
        assert_eq!(requests_counted(app, &user).await, 2);
        let r = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await;
        assert_eq!(r.body["type"], "request_limited");
    }

    async fn fallbacks_are_bounded_deduplicated_and_well_formed(app, mock) {
        // Regression: 200 fallbacks made 201 upstream calls.
        let (_, key) = key_holder(app, profile("Falling", &json!({}))).await;
        let many: Vec<String> = (0..200).map(|i| format!("flaky/m{i}")).collect();
        let mut body = chat("flaky/mock");
        body["fallbacks"] = json!(many);
        let r = app.with_key(&key).post("/v1/chat/completions", body.clone()).await;
        assert_eq!((r.status.as_u16(), r.body["error"]["message"].clone()), (400, json!("at most 5 different fallbacks may be given, not 200")));
        body["fallbacks"] = json!([42]);
        let r = app.with_key(&key).post("/v1/chat/completions", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "a fallback that names nothing is refused: {}", r.body);
        assert_eq!(mock.calls(), 0, "nothing refused reached the provider");
        mock.script.fail_status.store(500, Ordering::SeqCst);
        body["fallbacks"] = json!(["flaky/mock", "flaky/other", "flaky/other", {"provider": "flaky", "model": "other"}, "flaky/third"]);
        let r = app.with_key(&key).post("/v1/chat/completions", body).await;
        assert_eq!(r.status.as_u16(), 500);
        assert_eq!(mock.calls(), 3, "the primary, other and third: each model once");
    }
}
