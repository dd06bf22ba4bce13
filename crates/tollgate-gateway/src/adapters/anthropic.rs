//! The Anthropic kind: `/messages` (and `/messages/count_tokens`) with `x-api-key` and
//! `anthropic-version`, usage with its prompt-cache counts, named stream events; `translate`
//! carries its Messages format to and from OpenAI's chat format (requests, answers, streams).

mod translate;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Adapter, Outgoing, Reframe, Seen, Usage};
use crate::body::RawObject;

/// The Anthropic API version sent with every call to an Anthropic upstream.
const VERSION: &str = "2023-06-01";

static FIXED: [(HeaderName, HeaderValue); 1] = [(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(VERSION))];

/// Client headers an Anthropic upstream is given as they came.
static FORWARDED: [HeaderName; 1] = [HeaderName::from_static("anthropic-beta")];

#[derive(Debug)]
pub(super) struct Anthropic;

/// A `usage` object, read without building a tree.
#[derive(Debug, Default, Deserialize)]
struct Wire {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheSplit>,
}

#[derive(Debug, Default, Deserialize)]
struct CacheSplit {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

impl Wire {
    fn usage(&self) -> Option<Usage> {
        let mut out = Usage::plain(self.input_tokens?, self.output_tokens?);
        self.take_cache(&mut out);
        Some(out)
    }

    /// The cache counts into `into`; absent members keep their value (a stream reports them
    /// once at the start and again, cumulatively, at the end). The split wins over the total.
    fn take_cache(&self, into: &mut Usage) {
        match &self.cache_creation {
            Some(split) => {
                into.cache_write = split.ephemeral_5m_input_tokens.unwrap_or(into.cache_write);
                into.cache_write_1h = split.ephemeral_1h_input_tokens.unwrap_or(into.cache_write_1h);
            }
            None => into.cache_write = self.cache_creation_input_tokens.unwrap_or(into.cache_write),
        }
        into.cache_read = self.cache_read_input_tokens.unwrap_or(into.cache_read);
    }
}

/// Takes the cache counts a `usage` object reports into `into`.
fn read_cache(into: &mut Usage, usage: &Value) {
    if let Ok(wire) = Wire::deserialize(usage) {
        wire.take_cache(into);
    }
}

impl Adapter for Anthropic {
    fn chat_path(&self) -> &'static str {
        "/messages"
    }

    fn count_tokens_path(&self) -> Option<&'static str> {
        Some("/messages/count_tokens")
    }

    fn credential(&self, key: &str) -> Option<(HeaderName, HeaderValue)> {
        Some((HeaderName::from_static("x-api-key"), HeaderValue::from_str(key).ok()?))
    }

    fn fixed_headers(&self) -> &'static [(HeaderName, HeaderValue)] {
        &FIXED
    }

    fn forwarded_headers(&self) -> &'static [HeaderName] {
        &FORWARDED
    }

    fn named_events(&self) -> bool {
        true
    }

    fn usage_in(&self, answer: &[u8]) -> Option<Usage> {
        #[derive(Deserialize)]
        struct Answer {
            usage: Option<Wire>,
        }
        serde_json::from_slice::<Answer>(answer).ok()?.usage?.usage()
    }

    fn usage_from(&self, usage: &Value) -> Option<Usage> {
        Wire::deserialize(usage).ok()?.usage()
    }

    fn observe(&self, data: &str, seen: &mut Seen) {
        let Ok(event) = serde_json::from_str::<Value>(data) else { return };
        let tokens = |at: &str| event.pointer(at).and_then(Value::as_u64);
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                seen.input = tokens("/message/usage/input_tokens").or(seen.input);
                if let Some(usage) = event.pointer("/message/usage") {
                    read_cache(&mut seen.cache, usage);
                }
            }
            Some("content_block_delta") => {
                let piece = event.pointer("/delta/text").or_else(|| event.pointer("/delta/partial_json")).and_then(Value::as_str);
                seen.text.push_str(piece.unwrap_or_default());
            }
            Some("message_delta") => {
                if let Some(usage) = event.get("usage") {
                    read_cache(&mut seen.cache, usage);
                }
                seen.input = tokens("/usage/input_tokens").or(seen.input);
                seen.output = tokens("/usage/output_tokens").or(seen.output);
            }
            Some("message_stop") => seen.finished = true,
            _ => {}
        }
    }

    fn rewrite(&self, request: &RawObject<'_>, out: &Outgoing<'_>) -> Vec<u8> {
        let name = serde_json::to_string(out.model).unwrap_or_default();
        let mut changes = vec![("model", Some(name.as_str()))];
        // A request without a limit is sent with the one it was reserved for (an answer can
        // then never cost more than its reservation).
        let cap = out.max_out.to_string();
        if !out.capped {
            changes.push(("max_tokens", Some(cap.as_str())));
        }
        request.encode(&changes)
    }

    fn request_to_openai(&self, request: Value, model: &str) -> Value {
        translate::messages_to_chat(&request, model)
    }

    /// Anthropic requires `max_tokens`: the one reserved for is sent.
    fn request_from_openai(&self, chat: Value, out: &Outgoing<'_>) -> Value {
        translate::chat_to_messages(&chat, out.model, out.max_out)
    }

    fn answer_to_openai(&self, answer: &Value) -> Option<Value> {
        Some(translate::answer::message_to_completion(answer))
    }

    fn answer_from_openai(&self, completion: &Value) -> Option<Value> {
        Some(translate::answer::completion_to_message(completion))
    }

    fn stream_to_openai(&self, include_usage: bool) -> Option<Box<dyn Reframe>> {
        Some(translate::stream::to_openai(include_usage))
    }

    fn stream_from_openai(&self) -> Option<Box<dyn Reframe>> {
        Some(translate::stream::from_openai())
    }

    fn error_body(&self, status: u16, message: String, _upstream: &Value) -> Value {
        json!({"type": "error", "error": {"type": translate::answer::anthropic_error_type(status), "message": message}})
    }
}

#[cfg(test)]
mod tests {
    use tollgate_core::auth::Secret;

    use super::*;

    #[test]
    fn cache_tokens_are_read_apart_from_input() {
        let answer =
            json!({"usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000}});
        let usage = Anthropic.usage_in(answer.to_string().as_bytes());
        assert_eq!(usage, Some(Usage { input: 10, output: 5, cache_write: 200, cache_read: 3000, ..Usage::default() }));
        assert_eq!(usage.map(|u| (u.prompt(), u.tokens())), Some((3210, 3215)));
        let split = json!({"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}});
        let usage = Anthropic.usage_from(&split);
        assert_eq!(usage.map(|u| (u.cache_write, u.cache_write_1h)), Some((10, 20)), "the split wins over the total");
    }

    #[test]
    fn the_key_is_a_sensitive_x_api_key_header_sent_with_the_api_version() {
        let header = Anthropic.auth_header(&Secret::new("sk-provider".to_owned()));
        assert_eq!(header.as_ref().map(|(n, v)| (n.as_str(), v.to_str().ok())), Some(("x-api-key", Some("sk-provider"))));
        assert!(header.is_some_and(|(_, v)| v.is_sensitive()), "kept out of logs");
        let fixed: Vec<(&str, &str)> =
            Anthropic.fixed_headers().iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap_or_default())).collect();
        assert_eq!(fixed, [("anthropic-version", "2023-06-01")]);
    }
}
