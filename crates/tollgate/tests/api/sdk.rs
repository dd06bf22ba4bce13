//! The official Python SDKs, unmodified, against the real gateway and a mock upstream; the Rust
//! side checks the bills. The interpreter comes from `TOLLGATE_TEST_PYTHON` (set by
//! `scripts/test.sh`, which installs the pinned SDKs) or the repository's `.venv`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TOLLGATE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(venv.exists(), "the SDK tests need Python with the pinned SDKs: run scripts/test.sh (it installs them into .venv)");
    venv
}

/// Runs a script from `tests/sdk` and returns the JSON it printed.
pub fn run_sdk_script(script: &str, env: &[(&str, String)]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk").join(script);
    let mut command = Command::new(python());
    command.arg(&path);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim().lines().last().unwrap_or("{}")).unwrap_or(Value::Null)
}

async fn spent(app: &TestApp, user: &str) -> f64 {
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"]
        .as_f64()
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_works_unmodified_and_is_billed_exactly() {
    let mock = MockUpstream::start().await;
    mock.script.prompt_tokens.store(5, std::sync::atomic::Ordering::SeqCst);
    let config = format!(
        "[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"upstream\"\nmax_retries = 0\n\n[pricing.models.\"openai/mock\"]\ninput = 1000\noutput = 1000\n",
        mock.base_url()
    );
    let app = TestApp::start_with_config(Backend::Sqlite, &config).await;
    let profile = json!({"name": "SDK", "budgets": [{"max_limit": 5, "reset_duration": "1d"}], "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]});
    let (user, key) = key_holder(&app, profile).await;
    let url = format!("http://{}", app.addr);
    let env = [("TOLLGATE_URL", url), ("TOLLGATE_KEY", key), ("TOLLGATE_MODEL", "openai/mock".to_owned())];
    let seen = tokio::task::spawn_blocking(move || run_sdk_script("openai_sdk.py", &env)).await.unwrap_or(Value::Null);
    assert_eq!(seen["plain_content_words"], 20, "{seen}");
    assert_eq!(seen["stream_text_words"], 20);
    assert_eq!(seen["refused_status"], 403);
    assert_eq!(seen["unknown_key_status"], 401);
    // Two answers of 5 prompt + 20 completion tokens at $1000 per million tokens: $0.05.
    let bill = spent(&app, &user).await;
    assert!((bill - 0.05).abs() < 1e-9, "billed {bill}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_sdk_works_unmodified_and_is_billed_exactly() {
    let mock = MockUpstream::start().await;
    mock.script.prompt_tokens.store(5, std::sync::atomic::Ordering::SeqCst);
    let config = format!(
        "[[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"upstream\"\nmax_retries = 0\n\n\
         [pricing.models.\"anthropic/claude-mock\"]\ninput = 1000\noutput = 1000\n",
        mock.base_url()
    );
    let app = TestApp::start_with_config(Backend::Postgres, &config).await;
    let profile = json!({"name": "Claude", "budgets": [{"max_limit": 5, "reset_duration": "1d"}],
        "provider_configs": [{"provider_name": "anthropic", "allowed_models": ["claude-mock"]}]});
    let (user, key) = key_holder(&app, profile).await;
    let env = [("TOLLGATE_URL", format!("http://{}", app.addr)), ("TOLLGATE_KEY", key), ("TOLLGATE_MODEL", "claude-mock".to_owned())];
    let seen = tokio::task::spawn_blocking(move || run_sdk_script("anthropic_sdk.py", &env)).await.unwrap_or(Value::Null);
    assert_eq!(seen["plain_text_words"], 20, "{seen}");
    assert_eq!(seen["stream_text_words"], 20);
    assert_eq!(seen["refused_status"], 403);
    assert_eq!(seen["listed_models"], json!(["claude-mock"]), "models.list() pages through what the key may use");
    assert_eq!(seen["counted_tokens"], 5, "messages.count_tokens() is asked of the upstream, and not billed");
    // Two answers of 5 input + 20 output tokens at $1000 per million tokens: $0.05.
    let bill = spent(&app, &user).await;
    assert!((bill - 0.05).abs() < 1e-9, "billed {bill}");
    app.stop().await;
}
