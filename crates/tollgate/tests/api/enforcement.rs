//! Enforcement details of the data plane: provider-level lines, several copies, inactive copies,
//! unpriced models, and counters that survive restarts and graceful shutdowns exactly.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, attach_default, create_profile, create_role, create_user, key_holder, reveal_key};

/// $0.001 per output token: a 10-token answer costs $0.01.
fn config(mock: &MockUpstream) -> String {
    format!(
        "[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\nmax_retries = 0\n\n\
         [pricing.models.\"openai/mock\"]\ninput = 0\noutput = 1000\n\n[pricing.models.\"openai/other\"]\ninput = 0\noutput = 1000\n",
        mock.base_url()
    )
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

async fn started(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    mock.script.prompt_tokens.store(0, Ordering::SeqCst);
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

with_mock_upstream! { owned started;
    async fn provider_level_lines_are_enforced_and_named(app, mock) {
        let (_, key) = key_holder(&app, json!({"name": "Provider", "provider_configs": [{
            "provider_name": "openai", "allowed_models": ["mock"],
            "budgets": [{"max_limit": 0.02, "reset_duration": "1M"}],
            "rate_limit": {"token_max_limit": 1000, "token_reset_duration": "1h"}
        }]})).await;
        for _ in 0..2 {
            app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        }
        let refused = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await;
        assert_eq!((refused.status.as_u16(), refused.body["type"].clone()), (402, json!("budget_exceeded")));
        let msg = refused.body["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(msg.contains("provider 'openai' budget") && msg.contains("0.0200"), "{msg}");
        assert_eq!(mock.calls(), 2);
        app
    }

    async fn counters_survive_a_restart_and_a_graceful_shutdown_loses_nothing(app, mock) {
        let (user, key) = key_holder(&app, json!({"name": "Durable", "budgets": [{"max_limit": 0.05, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
        for _ in 0..3 {
            app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        }
        // Restart at once: the writer has not ticked yet, so only the shutdown drain can save these.
        let app = app.restart(&config(mock)).await;
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM request_logs").await, 3, "the drain wrote every log line");
        let spent = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"].clone();
        assert_eq!(spent, 0.03);
        for _ in 0..2 {
            app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        }
        let refused = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await;
        assert_eq!(refused.body["type"], "budget_exceeded", "the rebuilt counter remembers the first three");
        app
    }

    async fn an_unpriced_model_is_refused_only_where_a_budget_must_be_charged(app, mock) {
        let (_, budgeted) = key_holder(&app, json!({"name": "Priced", "budgets": [{"max_limit": 1, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mystery"]}]})).await;
        let refused = app.with_key(&budgeted).post("/v1/chat/completions", chat("openai/mystery")).await;
        assert_eq!((refused.status.as_u16(), refused.body["type"].clone()), (403, json!("model_unpriced")));
        let (_, free) = key_holder(&app, json!({"name": "Unbudgeted", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mystery"]}]})).await;
        app.with_key(&free).post("/v1/chat/completions", chat("openai/mystery")).await.expect(200);
        assert_eq!(mock.calls(), 1);
        app
    }

    async fn with_several_copies_the_oldest_one_granting_the_model_governs(app, mock) {
        let _ = mock;
        let role = create_role(&app, "multi").await;
        let first = create_profile(&app, json!({"name": "First", "budgets": [{"max_limit": 0.01, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
        let second = create_profile(&app, json!({"name": "Second", "budgets": [{"max_limit": 1, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock", "other"]}]})).await;
        let user = create_user(&app, "multi@example.com", Some(role)).await;
        attach_default(&app, first, role).await;
        app.admin().post(&format!("{}/{second}/roles", FAMILIES[0]), json!({"role_ids": [role], "apply_to_existing": true})).await.expect(200);
        let key = reveal_key(&app, &user).await;
        app.with_key(&key).post("/v1/chat/completions", chat("openai/other")).await.expect(200);
        app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        let again = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await;
        assert_eq!(again.body["type"], "budget_exceeded", "'mock' is governed by First, whose $0.01 is spent; Second does not take over");
        app
    }

    async fn an_inactive_key_is_refused_before_its_copy_is_consulted(app, mock) {
        let _ = mock;
        let (_, key) = key_holder(&app, json!({"name": "Frozen", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
        app.sql("UPDATE virtual_keys SET is_active = 0").await;
        app.admin().post(FAMILIES[0], json!({"name": "reload"})).await.expect(201);
        let refused = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await;
        assert_eq!((refused.status.as_u16(), refused.body["type"].clone()), (403, json!("virtual_key_blocked")));
        app
    }

    async fn an_inactive_copy_blocks_its_keys(app, mock) {
        let _ = mock;
        let (user, key) = key_holder(&app, json!({"name": "Paused", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
        app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        app.sql(&format!("UPDATE user_access_profiles SET is_active = 0 WHERE user_id = '{user}'")).await;
        app.admin().post(FAMILIES[0], json!({"name": "any write reloads the snapshot"})).await.expect(201);
        let refused = app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await;
        assert_eq!((refused.status.as_u16(), refused.body["type"].clone()), (403, json!("access_blocked")));
        app
    }
}

with_mock_upstream! { owned started;
    async fn calendar_aligned_windows_start_at_utc_boundaries(app, mock) {
        let _ = mock;
        let (user, key) = key_holder(&app, json!({"name": "Aligned", "calendar_aligned": true,
            "budgets": [{"max_limit": 1, "reset_duration": "1d"}, {"max_limit": 5, "reset_duration": "1M"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
        app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        let copy = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0].clone();
        let now = tollgate_core::clock::now();
        let midnight = now.format("%Y-%m-%dT00:00:00Z").to_string();
        let first_of_month = now.format("%Y-%m-01T00:00:00Z").to_string();
        let starts: Vec<String> = copy["budgets"].as_array().map(|b| b.iter().filter_map(|x| x["last_reset"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
        assert_eq!(starts, [midnight, first_of_month], "aligned windows start at UTC midnight and on the 1st");
        app
    }

    async fn request_logs_older_than_the_retention_are_pruned(app, mock) {
        let (_, key) = key_holder(&app, json!({"name": "Logged", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
        app.with_key(&key).post("/v1/chat/completions", chat("openai/mock")).await.expect(200);
        app.sql("INSERT INTO request_logs (created_at, provider, model, prompt_tokens, completion_tokens, cost, status, latency_ms, streamed) \
                 VALUES ('2001-01-01T00:00:00.000000Z', 'openai', 'mock', 1, 1, 0, 200, 1, 0)").await;
        let config = format!("{}\n[gateway]\nrequest_log_retention_days = 7\n", config(mock));
        let app = app.restart(&config).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM request_logs WHERE created_at < '2002-01-01'").await, 0, "the old line is gone");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM request_logs").await, 1, "this week's line stays");
        app
    }
}
