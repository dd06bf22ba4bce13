//! Several instances over one database and one Redis: limits hold across them, as one.

use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;

/// Redis keys of this test process (nextest runs each test in its own process).
static PREFIX: LazyLock<String> = LazyLock::new(|| format!("tollgate-test:{}:", uuid::Uuid::new_v4()));

/// A provider on the mock, $0.001 per output token, and counters in the CI Redis under a key
/// prefix of this test's own. Every instance of a test gets the same text.
fn config(mock: &MockUpstream) -> String {
    let prefix = PREFIX.as_str();
    let redis = std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    format!(
        r#"
[gateway]
redis_url = "{redis}"
redis_key_prefix = "{prefix}"

[[providers]]
name = "openai"
base_url = "{}"
api_key = "test-upstream-key"
models = ["mock"]
max_retries = 0

[pricing.models."openai/mock"]
input = 0
output = 1000
"#,
        mock.base_url()
    )
}

fn chat(max_tokens: u64) -> Value {
    json!({"model": "openai/mock", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
}

async fn redis_app(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

with_mock_upstream! { redis_app;
    async fn two_instances_sharing_redis_hold_one_budget_between_them(app, mock) {
        let (user, key) = key_holder(app, json!({
            "name": "Shared",
            "budgets": [{"max_limit": 0.2, "reset_duration": "1d"}],
            "rate_limit": {"request_max_limit": 1000, "request_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        let replica = app.start_replica(&config(mock)).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        let (a, b) = (app.with_key(&key), replica.with_key(&key));
        let burst = (0..100).map(|i| if i % 2 == 0 { a.post("/v1/chat/completions", chat(20)) } else { b.post("/v1/chat/completions", chat(20)) });
        let statuses: Vec<u16> = join_all(burst).await.into_iter().map(|r| r.status.as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "exactly what fits, whichever instance served: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 90);
        assert_eq!(mock.calls(), 10);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for instance in [app, &replica] {
            let copies = instance.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
            assert_eq!(copies["access_profiles"][0]["budgets"][0]["current_usage"], 0.2, "both instances report the shared spend");
            assert_eq!(copies["access_profiles"][0]["rate_limit"]["request_current_usage"], 10);
        }
        let refused = b.post("/v1/chat/completions", chat(20)).await;
        assert_eq!(refused.body["type"], "budget_exceeded", "the replica refuses what the first instance spent");
        replica.stop().await;
    }

    async fn a_reservation_held_by_one_instance_blocks_the_other(app, mock) {
        let (_, key) = key_holder(app, json!({
            "name": "Held",
            "rate_limit": {"request_max_limit": 1, "request_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        let replica = app.start_replica(&config(mock)).await;
        mock.script.chunk_delay_ms.store(100, Ordering::SeqCst);
        let streamed = json!({"model": "openai/mock", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let slow = app.raw_stream(&key, &streamed, usize::MAX);
        let other = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            replica.with_key(&key).post("/v1/chat/completions", chat(5)).await
        };
        let (first, second) = tokio::join!(slow, other);
        assert!(first.contains("[DONE]"), "the stream on the first instance completes: {first}");
        assert_eq!((second.status.as_u16(), second.body["type"].clone()), (429, json!("request_limited")), "the request in flight on the first instance counts on the second");
        replica.stop().await;
    }
}
