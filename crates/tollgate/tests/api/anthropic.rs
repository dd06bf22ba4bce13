//! Anthropic end to end against the mock upstream: OpenAI-format requests served by an Anthropic
//! provider, and the Anthropic Messages route served by either kind of provider — translations
//! both ways, plain and streamed, tool calls, errors in Anthropic's shape, exact bills.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_testkit::mock::{MockUpstream, Received, TOOL_INPUT};
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;

/// Both providers at the mock; $100 per million input and $1000 per million output tokens, so
/// the mock's default answer (10 input, 20 output tokens) costs exactly [`ONE_CALL`].
fn config(mock: &MockUpstream) -> String {
    format!(
        r#"
[[providers]]
name = "openai"
kind = "openai"
base_url = "{url}"
api_key = "test-upstream-key"
max_retries = 0

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{url}"
api_key = "test-anthropic-key"
max_retries = 0

[pricing.models."anthropic/claude-mock"]
input = 100
output = 1000

[pricing.models."openai/mock"]
input = 100
output = 1000
cached_input = 50
"#,
        url = mock.base_url()
    )
}

/// Dollars charged for one default answer: 10 × $0.0001 + 20 × $0.001.
const ONE_CALL: f64 = 0.021;

/// A profile with a $10 budget that allows `anthropic/claude-mock` and `openai/mock`.
fn both(name: &str) -> Value {
    json!({
        "name": name,
        "budgets": [{"max_limit": 10, "reset_duration": "1d"}],
        "provider_configs": [
            {"provider_name": "anthropic", "allowed_models": ["claude-mock"]},
            {"provider_name": "openai", "allowed_models": ["mock"]}
        ]
    })
}

/// What the user's budget has spent, once the writer has persisted it.
async fn spent(app: &TestApp, user: &str) -> f64 {
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await;
    copies.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"].as_f64().unwrap_or(-1.0)
}

fn assert_dollars(actual: f64, expected: f64, what: &str) {
    assert!((actual - expected).abs() < 1e-9, "{what}: charged {actual}, expected {expected}");
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
}

fn message(model: &str) -> Value {
    json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

/// The latest request the mock received.
fn last(mock: &MockUpstream) -> Received {
    mock.last_request().unwrap_or_else(|| panic!("the mock was not called"))
}

/// The `data:` payloads of an SSE text, as JSON (`[DONE]` as a JSON string).
fn data_of(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap_or_else(|_| json!(data.trim())))
        .collect()
}

/// The `event:` names of an SSE text.
fn events_of(text: &str) -> Vec<String> {
    text.lines().filter_map(|line| line.strip_prefix("event:")).map(|name| name.trim().to_owned()).collect()
}

/// The OpenAI tool definition the tool tests offer.
fn lookup_tool() -> Value {
    json!({"type": "function", "function": {"name": "lookup", "description": "Looks things up", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}})
}

async fn anthropic_app(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

with_mock_upstream! { anthropic_app;
    async fn an_openai_request_to_an_anthropic_model_is_translated_and_billed_exactly(app, mock) {
        let (user, key) = key_holder(app, both("Translated")).await;
        let mut body = chat("anthropic/claude-mock");
        body["messages"] = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]);
        body["temperature"] = json!(0.25);
        body["stop"] = json!(["END"]);
        let reply = app.with_key(&key).post("/v1/chat/completions", body).await;
        let answer = reply.expect(200);
        assert_eq!(answer["object"], "chat.completion");
        assert_eq!(answer["choices"][0]["message"], json!({"role": "assistant", "content": vec!["tok"; 20].join(" ")}));
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
        assert_eq!(answer["usage"], json!({"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}));
        let upstream = last(mock);
        assert_eq!(upstream.path, "/v1/messages");
        assert_eq!(upstream.header("x-api-key"), "test-anthropic-key", "the provider key, never the virtual key");
        assert_eq!(upstream.header("anthropic-version"), "2023-06-01");
        assert_eq!(upstream.header("authorization"), "");
        assert_eq!(upstream.body, json!({
            "model": "claude-mock", "max_tokens": 50, "system": "be brief", "temperature": 0.25, "stop_sequences": ["END"],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        }));
        assert_dollars(spent(app, &user).await, ONE_CALL, "input and output tokens at the model's price");
    }

    async fn a_streamed_openai_request_to_an_anthropic_model_gets_chunks_and_usage(app, mock) {
        let (user, key) = key_holder(app, both("Chunked")).await;
        let mut body = streamed(chat("anthropic/claude-mock"));
        body["stream_options"] = json!({"include_usage": true});
        let text = app.raw_stream(&key, &body, usize::MAX).await;
        let chunks = data_of(&text);
        assert_eq!(chunks.last(), Some(&json!("[DONE]")), "{text}");
        assert!(chunks.iter().filter(|c| c.is_object()).all(|c| c["object"] == "chat.completion.chunk"), "{text}");
        let content: String = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
        assert_eq!(content, " tok".repeat(20));
        assert!(chunks.iter().any(|c| c.pointer("/choices/0/finish_reason") == Some(&json!("stop"))), "{text}");
        let usage = &chunks[chunks.len() - 2];
        assert_eq!((usage["choices"].clone(), usage["usage"].clone()), (json!([]), json!({"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30})));
        let upstream = last(mock);
        assert_eq!((upstream.body["stream"].clone(), upstream.body.get("stream_options")), (json!(true), None));
        assert_dollars(spent(app, &user).await, ONE_CALL, "billed from message_start and message_delta");
        body["stream_options"] = json!({"include_usage": false});
        let text = app.raw_stream(&key, &body, usize::MAX).await;
        assert!(data_of(&text).iter().all(|c| c.get("usage").is_none()), "no usage chunk unless asked: {text}");
        assert!(text.contains("data: [DONE]"));
        assert_dollars(spent(app, &user).await, 2.0 * ONE_CALL, "usage is tapped either way");
    }

    async fn tool_calls_round_trip_through_an_anthropic_upstream(app, mock) {
        let (user, key) = key_holder(app, both("Tooled")).await;
        mock.script.tool_use.store(true, Ordering::SeqCst);
        let body = json!({
            "model": "anthropic/claude-mock", "max_tokens": 50,
            "tools": [lookup_tool()], "tool_choice": {"type": "function", "function": {"name": "lookup"}},
            "messages": [
                {"role": "user", "content": "find it"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"query\":\"earlier\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "found"},
                {"role": "user", "content": "again"}
            ]
        });
        let reply = app.with_key(&key).post("/v1/chat/completions", body.clone()).await;
        let choice = reply.expect(200)["choices"][0].clone();
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!((call["id"].clone(), call["type"].clone(), call["function"]["name"].clone()), (json!("toolu_mock"), json!("function"), json!("lookup")));
        let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(arguments, serde_json::from_str::<Value>(TOOL_INPUT).unwrap_or_default(), "arguments are a JSON string");
        let upstream = last(mock).body;
        assert_eq!(upstream["tools"], json!([{"name": "lookup", "description": "Looks things up", "input_schema": lookup_tool()["function"]["parameters"]}]));
        assert_eq!(upstream["tool_choice"], json!({"type": "tool", "name": "lookup"}));
        assert_eq!(upstream["messages"][1], json!({"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"query": "earlier"}}]}));
        assert_eq!(upstream["messages"][2], json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "found"}, {"type": "text", "text": "again"}
        ]}));
        let text = app.raw_stream(&key, &streamed(body), usize::MAX).await;
        let chunks = data_of(&text);
        let calls: Vec<&Value> = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0")).collect();
        assert_eq!(calls[0]["function"]["name"], "lookup", "{text}");
        let streamed_arguments: String = calls.iter().filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str)).collect();
        assert_eq!(streamed_arguments, TOOL_INPUT);
        assert!(chunks.iter().any(|c| c.pointer("/choices/0/finish_reason") == Some(&json!("tool_calls"))), "{text}");
        assert_dollars(spent(app, &user).await, 2.0 * ONE_CALL, "tool answers are billed like any other");
    }

    async fn the_anthropic_route_serves_the_messages_format_and_bills_exactly(app, mock) {
        let (user, key) = key_holder(app, both("Native")).await;
        let mut body = message("claude-mock");
        body["system"] = json!([{"type": "text", "text": "be brief"}]);
        body["top_k"] = json!(5);
        let reply = app.with_header("x-api-key", &key).post("/anthropic/v1/messages", body.clone()).await;
        let answer = reply.expect(200);
        assert_eq!((answer["type"].clone(), answer["role"].clone(), answer["stop_reason"].clone()), (json!("message"), json!("assistant"), json!("end_turn")));
        assert_eq!(answer["content"], json!([{"type": "text", "text": vec!["tok"; 20].join(" ")}]));
        assert_eq!(answer["usage"], json!({"input_tokens": 10, "output_tokens": 20}));
        let upstream = last(mock);
        assert_eq!(upstream.path, "/v1/messages");
        assert_eq!(upstream.body, body, "forwarded as it came");
        assert_eq!(upstream.header("x-api-key"), "test-anthropic-key", "the provider key, never the virtual key");
        assert_eq!(upstream.header("anthropic-version"), "2023-06-01");
        app.with_key(&key).post("/v1/messages", message("anthropic/claude-mock")).await.expect(200);
        assert_eq!(last(mock).body["model"], "claude-mock", "the provider part is cut off");
        assert_dollars(spent(app, &user).await, 2.0 * ONE_CALL, "input_tokens and output_tokens at the model's price");
    }

    async fn prompt_cache_tokens_are_billed_at_their_rates_plain_streamed_and_translated(app, mock) {
        let (user, key) = key_holder(app, both("Cached")).await;
        mock.script.cache_write_tokens.store(100, Ordering::SeqCst);
        mock.script.cache_read_tokens.store(1000, Ordering::SeqCst);
        // 10 input and 20 output tokens as usual, 100 written to the cache at 1.25× the input price,
        // 1000 read from it at 0.1×: $0.001 + $0.02 + $0.0125 + $0.01.
        let one = 0.0435;
        let answer = app.with_header("x-api-key", &key).post("/anthropic/v1/messages", message("claude-mock")).await.expect(200).clone();
        assert_eq!(answer["usage"]["cache_read_input_tokens"], 1000, "the client sees the provider's usage");
        assert_dollars(spent(app, &user).await, one, "cache tokens are charged, at their own rates");
        app.read_stream("/anthropic/v1/messages", ("x-api-key", &key), &streamed(message("claude-mock")), usize::MAX).await;
        assert_dollars(spent(app, &user).await, 2.0 * one, "a stream reports them in message_start");
        let translated = app.with_key(&key).post("/v1/chat/completions", json!({"model": "anthropic/claude-mock", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})).await.expect(200).clone();
        assert_eq!(translated["usage"]["prompt_tokens"], 1110, "an OpenAI client counts cached prompt tokens in prompt_tokens");
        assert_dollars(spent(app, &user).await, 3.0 * one, "and pays for them the same");
    }

    async fn openai_cached_prompt_tokens_are_billed_at_the_cached_price_plain_streamed_and_translated(app, mock) {
        let (user, key) = key_holder(app, both("OpenAiCached")).await;
        mock.script.prompt_tokens.store(1010, Ordering::SeqCst);
        mock.script.cache_read_tokens.store(1000, Ordering::SeqCst);
        // 1010 prompt tokens of which 1000 came from the cache at $50 per million, 10 at $100,
        // and 20 output at $1000: $0.05 + $0.001 + $0.02.
        let one = 0.071;
        let body = json!({"model": "openai/mock", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
        let answer = app.with_key(&key).post("/v1/chat/completions", body.clone()).await.expect(200).clone();
        assert_eq!(answer["usage"]["prompt_tokens_details"]["cached_tokens"], 1000, "the client sees the provider's usage");
        assert_dollars(spent(app, &user).await, one, "cached prompt tokens cost the cached-input price");
        let mut streamed_body = body.clone();
        streamed_body["stream"] = json!(true);
        app.read_stream("/v1/chat/completions", ("x-bf-vk", &key), &streamed_body, usize::MAX).await;
        assert_dollars(spent(app, &user).await, 2.0 * one, "the stream's usage chunk carries them too");
        let translated = app.with_header("x-api-key", &key).post("/anthropic/v1/messages", message("openai/mock")).await.expect(200).clone();
        assert_eq!(translated["usage"]["input_tokens"], 1010, "an Anthropic client sees the whole prompt");
        assert_dollars(spent(app, &user).await, 3.0 * one, "and pays for it the same");
    }

    async fn the_anthropic_sdk_extras_list_models_and_count_tokens_without_billing(app, mock) {
        let (user, key) = key_holder(app, both("Extras")).await;
        let client = app.with_header("x-api-key", &key);
        let listed = client.get("/anthropic/v1/models").await.expect(200).clone();
        let ids: Vec<Value> = listed["data"].as_array().cloned().unwrap_or_default().iter().map(|m| m["id"].clone()).collect();
        assert_eq!(ids, vec![json!("claude-mock"), json!("openai/mock")], "anthropic models bare, others as provider/model");
        assert_eq!((listed["data"][0]["type"].clone(), listed["has_more"].clone()), (json!("model"), json!(false)));
        let counted = client.post("/anthropic/v1/messages/count_tokens", message("claude-mock")).await.expect(200).clone();
        assert_eq!(counted, json!({"input_tokens": 10}), "asked of the Anthropic upstream");
        let asked = last(mock);
        assert_eq!((asked.path, asked.header("x-api-key")), ("/v1/messages/count_tokens", "test-anthropic-key".to_owned()));
        assert_eq!(asked.body["model"], "claude-mock");
        let calls = mock.calls();
        let local = client.post("/anthropic/v1/messages/count_tokens", message("openai/mock")).await.expect(200).clone();
        assert!(local["input_tokens"].as_u64().is_some_and(|n| n > 0), "counted here for an OpenAI-compatible provider: {local}");
        assert_eq!(mock.calls(), calls);
        let blocked = client.post("/anthropic/v1/messages/count_tokens", message("claude-other")).await;
        assert_eq!((blocked.status.as_u16(), blocked.body["error"]["type"].clone()), (403, json!("model_blocked")), "{}", blocked.body);
        assert_eq!(app.anonymous().get("/anthropic/v1/models").await.status.as_u16(), 401);
        assert_dollars(spent(app, &user).await, 0.0, "neither is billed");
    }

    async fn the_anthropic_route_streams_events_as_they_come_and_bills_exactly(app, mock) {
        let (user, key) = key_holder(app, both("NativeStream")).await;
        let text = app.read_stream("/anthropic/v1/messages", ("x-api-key", &key), &streamed(message("claude-mock")), usize::MAX).await;
        let names = events_of(&text);
        assert_eq!(names.first().map(String::as_str), Some("message_start"), "{text}");
        assert_eq!(names.last().map(String::as_str), Some("message_stop"));
        assert_eq!(names.iter().filter(|n| *n == "content_block_delta").count(), 20);
        let events = data_of(&text);
        assert_eq!(events.len(), names.len(), "every event is named: {text}");
        let delta = events.iter().find(|e| e["type"] == "message_delta").cloned().unwrap_or_default();
        assert_eq!((delta["delta"]["stop_reason"].clone(), delta["usage"]["output_tokens"].clone()), (json!("end_turn"), json!(20)));
        assert_eq!(last(mock).header("x-api-key"), "test-anthropic-key");
        assert_dollars(spent(app, &user).await, ONE_CALL, "billed from message_start and message_delta");
    }

    async fn the_anthropic_route_translates_for_an_openai_provider(app, mock) {
        let (user, key) = key_holder(app, both("Bridged")).await;
        let client = app.with_header("x-api-key", &key);
        let mut body = message("openai/mock");
        body["system"] = json!("be brief");
        body["stop_sequences"] = json!(["END"]);
        let answer = client.post("/anthropic/v1/messages", body.clone()).await.expect(200).clone();
        assert_eq!(answer["content"], json!([{"type": "text", "text": vec!["tok"; 20].join(" ")}]));
        assert_eq!((answer["stop_reason"].clone(), answer["usage"].clone()), (json!("end_turn"), json!({"input_tokens": 10, "output_tokens": 20})));
        let upstream = last(mock);
        assert_eq!(upstream.path, "/v1/chat/completions");
        assert_eq!(upstream.header("authorization"), "Bearer test-upstream-key");
        assert_eq!(upstream.body, json!({
            "model": "mock", "max_tokens": 50, "stop": ["END"],
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        }));
        let text = app.read_stream("/anthropic/v1/messages", ("x-api-key", &key), &streamed(body), usize::MAX).await;
        let names = events_of(&text);
        assert_eq!(names.first().map(String::as_str), Some("message_start"), "{text}");
        assert_eq!(names.last().map(String::as_str), Some("message_stop"));
        let events = data_of(&text);
        let streamed_text: String = events.iter().filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str)).collect();
        assert_eq!(streamed_text, " tok".repeat(20));
        let delta = events.iter().find(|e| e["type"] == "message_delta").cloned().unwrap_or_default();
        assert_eq!(delta["usage"], json!({"input_tokens": 10, "output_tokens": 20}), "{text}");
        mock.script.tool_use.store(true, Ordering::SeqCst);
        let mut with_tools = message("openai/mock");
        with_tools["tools"] = json!([{"name": "lookup", "input_schema": {"type": "object"}}]);
        with_tools["tool_choice"] = json!({"type": "any"});
        let answer = client.post("/anthropic/v1/messages", with_tools).await.expect(200).clone();
        assert_eq!(answer["stop_reason"], "tool_use");
        assert_eq!(answer["content"][0], json!({"type": "tool_use", "id": "call_mock", "name": "lookup", "input": {"query": "mock"}}));
        let upstream = last(mock).body;
        assert_eq!(upstream["tools"], json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]));
        assert_eq!(upstream["tool_choice"], "required");
        assert_dollars(spent(app, &user).await, 3.0 * ONE_CALL, "prompt_tokens and completion_tokens at the model's price");
    }

    async fn an_anthropic_body_nested_deeper_than_the_parser_allows_is_refused_not_sent_empty(app, mock) {
        let (user, key) = key_holder(app, both("Deep")).await;
        let nested = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let body = format!(r#"{{"model":"openai/mock","max_tokens":50,"messages":[{{"role":"user","content":"hi"}}],"metadata":{nested}}}"#);
        let r = app.with_header("x-api-key", &key).raw(reqwest::Method::POST, "/anthropic/v1/messages", "application/json", body.into_bytes()).await;
        assert_eq!((r.status.as_u16(), r.body["type"].clone(), r.body["error"]["type"].clone()), (400, json!("error"), json!("invalid_request_error")), "{}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("recursion limit")), "{}", r.body);
        assert_eq!(mock.calls(), 0, "nothing was sent upstream");
        assert_dollars(spent(app, &user).await, 0.0, "nothing is charged");
    }

    async fn a_chat_body_nested_deeper_than_the_parser_allows_is_refused_before_translation(app, mock) {
        // Regression: a chat request for an Anthropic provider was translated from an empty tree
        // when the parser refused the body, and sent.
        let (user, key) = key_holder(app, both("DeepChat")).await;
        let nested = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let body = format!(r#"{{"model":"anthropic/claude-mock","max_tokens":50,"messages":[{{"role":"user","content":"hi"}}],"metadata":{nested}}}"#);
        let r = app.with_key(&key).raw(reqwest::Method::POST, "/v1/chat/completions", "application/json", body.into_bytes()).await;
        assert_eq!((r.status.as_u16(), r.body["type"].clone()), (400, json!("invalid_request")), "{}", r.body);
        assert_eq!(mock.calls(), 0, "nothing was sent upstream");
        assert_dollars(spent(app, &user).await, 0.0, "nothing is charged");
    }

    async fn governance_refusals_on_the_anthropic_route_have_the_anthropic_shape(app, mock) {
        let (_, key) = key_holder(app, json!({
            "name": "Limited",
            "rate_limit": {"request_max_limit": 1, "request_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "anthropic", "allowed_models": ["claude-mock"]}]
        })).await;
        let (_, poor) = key_holder(app, json!({
            "name": "Poor",
            "budgets": [{"max_limit": 0.001, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "anthropic", "allowed_models": ["claude-mock"]}]
        })).await;
        let shape = |r: &tollgate_testkit::Reply| (r.status.as_u16(), r.body["type"].clone(), r.body["error"]["type"].clone());
        let r = app.anonymous().post("/anthropic/v1/messages", message("claude-mock")).await;
        assert_eq!(shape(&r), (401, json!("error"), json!("virtual_key_required")), "{}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        let r = app.with_header("x-api-key", &key).post("/anthropic/v1/messages", message("claude-other")).await;
        assert_eq!(shape(&r), (403, json!("error"), json!("model_blocked")), "{}", r.body);
        let r = app.with_header("x-api-key", &key).post("/anthropic/v1/messages", json!({"max_tokens": 5})).await;
        assert_eq!(shape(&r), (400, json!("error"), json!("invalid_request_error")), "{}", r.body);
        let r = app.with_header("x-api-key", &poor).post("/anthropic/v1/messages", message("claude-mock")).await;
        assert_eq!(shape(&r), (402, json!("error"), json!("budget_exceeded")), "{}", r.body);
        let refused = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(refused.starts_with("Budget exceeded"), "{refused}");
        // The estimate that did not fit is part of the sum shown, not just what was spent (0).
        assert!(!refused.contains("0.0000 >= 0.0010") && refused.contains("estimated for this request"), "{refused}");
        assert_eq!(mock.calls(), 0, "nothing refused reached the provider");
        app.with_header("x-api-key", &key).post("/anthropic/v1/messages", message("claude-mock")).await.expect(200);
        let r = app.with_header("x-api-key", &key).post("/anthropic/v1/messages", message("claude-mock")).await;
        assert_eq!(shape(&r), (429, json!("error"), json!("request_limited")), "{}", r.body);
        assert!(r.headers.get("retry-after").is_some(), "Retry-After is kept");
        assert_eq!(r.body.as_object().map(serde_json::Map::len), Some(2), "nothing but type and error: {}", r.body);
        mock.script.fail_status.store(529, Ordering::SeqCst);
        let (_, other) = key_holder(app, both("Overloaded")).await;
        let r = app.with_header("x-api-key", &other).post("/anthropic/v1/messages", message("openai/mock")).await;
        assert_eq!(shape(&r), (529, json!("error"), json!("overloaded_error")), "an OpenAI provider's error, re-shaped: {}", r.body);
    }

    async fn an_abandoned_anthropic_stream_pays_for_what_it_received(app, mock) {
        let (user, key) = key_holder(app, both("Abandoned")).await;
        mock.script.chunk_delay_ms.store(50, Ordering::SeqCst);
        let partial = app.read_stream("/anthropic/v1/messages", ("x-api-key", &key), &streamed(message("claude-mock")), 6).await;
        assert!(partial.contains("message_start") && !partial.contains("message_stop"), "{partial}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let charged = spent(app, &user).await;
        assert!(charged > 0.0 && charged < ONE_CALL, "an abandoned stream pays for what it received: {charged}");
        let partial = app.raw_stream(&key, &streamed(chat("anthropic/claude-mock")), 6).await;
        assert!(!partial.contains("[DONE]"), "{partial}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = spent(app, &user).await - charged;
        assert!(second > 0.0 && second < ONE_CALL, "also when translated for an OpenAI client: {second}");
    }
}
