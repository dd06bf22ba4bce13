//! A crash loses at most the last second of usage: the real binary is killed with SIGKILL (no
//! drain) and started again on the same SQLite file; every request answered more than a second
//! before the kill is still charged and logged.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use serde_json::json;
use tollgate_testkit::mock::MockUpstream;

use crate::binary;

const EMAIL: &str = "crash@example.com";

/// Prices `openai/mock` at $0.01 per request of 10 output tokens and declares a user whose copy
/// has a $1 budget.
fn config(mock: &MockUpstream) -> String {
    format!(
        r#"
[[providers]]
name = "openai"
base_url = "{}"
api_key = "k"
max_retries = 0

[pricing.models."openai/mock"]
input = 0
output = 1000

[[roles]]
name = "crash"

[[access_profiles]]
name = "Durable"
budgets = [{{ max_limit = 1, reset_duration = "1d" }}]
provider_configs = [{{ provider_name = "openai", allowed_models = ["mock"] }}]
  [[access_profiles.roles]]
  role = "crash"
  default = true
  apply_to_existing = true

[[users]]
name = "Crash"
email = "crash@example.com"
role = "crash"
"#,
        mock.base_url()
    )
}

/// Writes the config into `dir`, starts the binary on a free port and reveals the declared user's
/// key: the running binary, its port and the key.
async fn first_start(mock: &MockUpstream, dir: &Path, http: &reqwest::Client) -> (Child, u16, String) {
    std::fs::write(dir.join("tollgate.toml"), config(mock)).unwrap_or_else(|e| panic!("{e}"));
    let port = binary::free_port();
    let child = binary::start(dir, port, &[]).await;
    (child, port, binary::key_of(http, port, EMAIL).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_at_most_the_last_second_of_usage() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let http = reqwest::Client::new();
    let (mut first, port, key) = first_start(&mock, dir.path(), &http).await;
    for _ in 0..5 {
        let answered = http
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "openai/mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(answered.ok(), Some(200));
    }
    // Past the promised second (with room for a busy machine), then a kill that allows no drain.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill().unwrap_or_else(|e| panic!("SIGKILL: {e}"));
    let _ = first.wait();

    let mut second = binary::start(dir.path(), port, &[]).await;
    let (_, copy_after) = binary::copy_of(&http, port, EMAIL).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(copy_after["budgets"][0]["current_usage"], json!(0.05), "all five charges survived the crash: {copy_after}");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("tollgate.db").display()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let logged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_logs").fetch_one(&pool).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(logged, 5, "every request of more than a second before the crash is in the request log");
}

/// Regression: requests in flight at a `kill -9` were served by the provider and never charged.
/// Ten requests still waiting for their answer when the process dies are charged their
/// reservations (10 output tokens, $0.01 each) at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_a_crash_are_charged_at_the_next_start() {
    let mock = MockUpstream::start().await;
    mock.script.answer_delay_ms.store(30_000, std::sync::atomic::Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let http = reqwest::Client::new();
    let (mut first, port, key) = first_start(&mock, dir.path(), &http).await;
    let in_flight: Vec<_> = (0..10)
        .map(|_| {
            let request = http
                .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&json!({"model": "openai/mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}));
            tokio::spawn(request.send())
        })
        .collect();
    for _ in 0..100 {
        if mock.calls() == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.calls(), 10, "all ten reached the provider");
    // Two flushes (every 500 ms) record a reservation open across both; then a kill, no drain.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill().unwrap_or_else(|e| panic!("SIGKILL: {e}"));
    let _ = first.wait();
    for request in in_flight {
        let _ = request.await;
    }

    let mut second = binary::start(dir.path(), port, &[]).await;
    let (_, copy_after) = binary::copy_of(&http, port, EMAIL).await;
    let _ = second.kill();
    let _ = second.wait();
    let spent = copy_after["budgets"][0]["current_usage"].as_f64().unwrap_or(-1.0);
    assert!((spent - 0.10).abs() < 1e-9, "each of the ten is charged its reservation: {copy_after}");
}
