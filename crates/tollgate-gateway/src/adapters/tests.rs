//! What every provider kind's adapter must do, checked for each kind of `ProviderKind::ALL`: a
//! new kind is held to it without a line of test code of its own.

use serde_json::{Value, json};
use tollgate_core::auth::Secret;
use tollgate_core::providers::ProviderKind;

use super::{Adapted, Outgoing, Reframe, Seen};

/// A completion in the pivot format: "hello", 7 prompt tokens and 2 output.
fn completion() -> Value {
    json!({
        "id": "c1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    })
}

/// The same answer as pivot stream chunks.
fn chunks() -> Vec<String> {
    let chunk =
        |delta: Value, finish: Value| json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let usage = json!({"id": "c1", "model": "m", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}});
    let mut out: Vec<String> =
        [chunk(json!({"role": "assistant", "content": "hel"}), Value::Null), chunk(json!({"content": "lo"}), json!("stop")), usage]
            .iter()
            .map(Value::to_string)
            .collect();
    out.push("[DONE]".to_owned());
    out
}

#[test]
fn every_kind_has_an_endpoint_and_sends_its_key_as_a_sensitive_header() {
    for kind in ProviderKind::ALL {
        let adapter = kind.adapter();
        let paths = [Some(adapter.chat_path()), adapter.embeddings_path(), adapter.count_tokens_path()];
        assert!(paths.into_iter().flatten().all(|p| p.starts_with('/')), "{}", kind.name());
        let header = adapter.auth_header(&Secret::new("sk-provider".to_owned()));
        assert!(header.is_some_and(|(_, v)| v.is_sensitive()), "{}: the key header is kept out of logs", kind.name());
        assert!(adapter.auth_header(&Secret::new("line\nbreak".to_owned())).is_none(), "{}", kind.name());
    }
}

#[test]
fn every_kind_reads_the_usage_of_an_answer_in_its_own_dialect() {
    let pivot = completion();
    for kind in ProviderKind::ALL {
        let adapter = kind.adapter();
        let own = adapter.answer_from_openai(&pivot).unwrap_or_else(|| pivot.clone());
        let usage = adapter.usage_in(own.to_string().as_bytes());
        assert_eq!(usage.map(|u| (u.prompt(), u.output)), Some((7, 2)), "{}: {own}", kind.name());
        assert_eq!(adapter.usage_in(br#"{"id": "x"}"#), None, "{}: no usage is none", kind.name());
        let back = adapter.answer_to_openai(&own).unwrap_or(own);
        assert_eq!(back.pointer("/choices/0/message/content"), Some(&json!("hello")), "{}", kind.name());
        assert_eq!(back["usage"]["prompt_tokens"], 7, "{}", kind.name());
    }
}

#[test]
fn every_kind_reads_the_usage_and_the_end_of_a_stream_in_its_own_dialect() {
    for kind in ProviderKind::ALL {
        let adapter = kind.adapter();
        let mut reframe: Option<Box<dyn Reframe>> = adapter.stream_from_openai();
        let mut seen = Seen::default();
        for data in chunks() {
            let events = match reframe.as_mut() {
                Some(r) => r.reframe("message", &data).into_iter().map(|e| e.data).collect(),
                None => vec![data],
            };
            for event in &events {
                adapter.observe(event, &mut seen);
            }
        }
        assert_eq!((seen.input, seen.output, seen.finished), (Some(7), Some(2), true), "{}", kind.name());
    }
}

#[test]
fn every_kind_carries_a_request_to_its_dialect_and_back_without_gateway_members() {
    let request = json!({"model": "p/m", "messages": [{"role": "user", "content": "hi"}], "fallbacks": ["q/n"], "stream": true});
    for kind in ProviderKind::ALL {
        let adapter = kind.adapter();
        let out = Outgoing { upstream: kind, model: "m", max_out: 64, capped: false, stream: true, output_cap: "max_tokens" };
        let own = adapter.request_from_openai(request.clone(), &out);
        assert_eq!(own["model"], "m", "{}: {own}", kind.name());
        assert!(own.get("fallbacks").is_none(), "{}: {own}", kind.name());
        let back = adapter.request_to_openai(own, "m");
        assert_eq!(back.pointer("/messages/0/role"), Some(&json!("user")), "{}: {back}", kind.name());
        let text = back.pointer("/messages/0/content").map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned));
        assert!(text.is_some_and(|t| t.contains("hi")), "{}: {back}", kind.name());
        assert_eq!(back["stream"], true, "{}", kind.name());
    }
}
