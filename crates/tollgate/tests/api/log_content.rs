//! Prompts and answers in the request log: kept only for copies whose profile's policy turns
//! `log_content` on (plain answers as the client read them, a stream's text, an embedding's
//! input without its vectors, long ones cut), never otherwise, and no more once turned off and
//! propagated.

use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, key_holder};

fn config(mock: &MockUpstream) -> String {
    format!(
        "[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\nmax_retries = 0\n\n\
         [pricing.models.\"openai/mock\"]\ninput = 0\noutput = 1000\n",
        mock.base_url()
    )
}

fn profile(name: &str, log_content: bool) -> Value {
    json!({"name": name, "log_content": log_content, "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})
}

fn chat(text: &str, stream: bool) -> Value {
    json!({"model": "openai/mock", "max_tokens": 10, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// The log entries of `user`, newest first, once `want` of them are written.
async fn entries(app: &TestApp, user: &str, want: usize) -> Vec<Value> {
    for _ in 0..100 {
        let page = app.admin().get(&format!("/api/logs?user_ids={user}&limit=100")).await.expect(200).clone();
        let logs = page["logs"].as_array().cloned().unwrap_or_default();
        if logs.len() >= want {
            return logs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{user} has fewer than {want} log entries");
}

mod prompts_and_answers_are_logged_only_where_the_profile_turns_it_on {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let app = TestApp::start_with_config(backend, &config(&mock)).await;
        let (kept, kept_key) = key_holder(&app, profile("Audited", true)).await;
        let (plain, plain_key) = key_holder(&app, profile("Private", false)).await;

        app.with_key(&kept_key).post("/v1/chat/completions", chat("the quarterly plan", false)).await.expect(200);
        app.raw_stream(&kept_key, &chat("stream it", true), 100).await;
        let vectors = json!({"model": "openai/mock", "input": "embed this line"});
        app.with_key(&kept_key).post("/v1/embeddings", vectors).await.expect(200);
        let long = "x".repeat(40 * 1024);
        app.with_key(&kept_key).post("/v1/chat/completions", chat(&long, false)).await.expect(200);
        app.with_key(&plain_key).post("/v1/chat/completions", chat("nobody keeps this", false)).await.expect(200);

        let logs = entries(&app, &kept, 4).await;
        let (truncated, embedded, streamed, answered) = (&logs[0], &logs[1], &logs[2], &logs[3]);
        let request = answered["request_content"].as_str().unwrap_or_default();
        assert!(request.contains("the quarterly plan"), "{answered}");
        let answer: Value = serde_json::from_str(answered["response_content"].as_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(answer["choices"][0]["message"]["content"], "tok tok tok tok tok tok tok tok tok tok", "{answered}");
        assert!(streamed["request_content"].as_str().unwrap_or_default().contains("stream it"), "{streamed}");
        assert_eq!(streamed["response_content"], " tok".repeat(10), "a stream's answer is the text it delivered");
        assert!(embedded["request_content"].as_str().unwrap_or_default().contains("embed this line"), "{embedded}");
        assert!(embedded.get("response_content").is_none(), "an embedding's vectors are not kept: {embedded}");
        let cut = truncated["request_content"].as_str().unwrap_or_default();
        assert!(cut.len() < 33 * 1024 && cut.ends_with("bytes in all]"), "cut at 32 KiB: {}", &cut[cut.len().saturating_sub(80)..]);

        let private = entries(&app, &plain, 1).await;
        assert!(private[0].get("request_content").is_none() && private[0].get("response_content").is_none(), "{}", private[0]);
        let stored = app.count("SELECT COUNT(*) AS n FROM request_logs WHERE request_content LIKE '%nobody keeps this%'").await;
        assert_eq!(stored, 0, "not stored at all for a profile that does not keep content");

        // Turned off on the template: its copies keep content until the change is propagated.
        let id = answered["profile_id"].as_i64().unwrap_or_default();
        let off = app.admin().put(&format!("{}/{id}", FAMILIES[0]), json!({"log_content": false})).await.expect(200).clone();
        assert_eq!(off["access_profile"]["log_content"], false, "{off}");
        app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["log_content"]})).await.expect(200);
        app.with_key(&kept_key).post("/v1/chat/completions", chat("after the switch", false)).await.expect(200);
        let after = entries(&app, &kept, 5).await;
        assert!(after[0].get("request_content").is_none(), "{}", after[0]);
        let stored = app.count("SELECT COUNT(*) AS n FROM request_logs WHERE request_content LIKE '%after the switch%'").await;
        assert_eq!(stored, 0);
        app.stop().await;
    }

    scenario_on_both_backends!();
}
