//! The OpenAI kind (any OpenAI-compatible API): `/chat/completions` and `/embeddings` with a
//! Bearer key, usage as `prompt_tokens` with its cached part, chunks ending in `[DONE]`. Its chat
//! format is the pivot, so it translates nothing.

use axum::http::{HeaderName, HeaderValue, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Adapter, Outgoing, Reframe, Seen, Usage};
use crate::body::RawObject;

/// Always asked of an upstream of this kind when streaming, so the bill is exact; passed on to
/// the client as it comes only if the client asked for it too.
const INCLUDE_USAGE: &str = r#"{"include_usage":true}"#;

#[derive(Debug)]
pub(super) struct OpenAi;

/// A `usage` object, read without building a tree.
#[derive(Debug, Deserialize)]
struct Wire {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

impl Wire {
    /// `prompt_tokens` already counts the cached ones; never more cached than sent.
    fn usage(&self) -> Option<Usage> {
        let prompt = self.prompt_tokens?;
        let cached = self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0).min(prompt);
        Some(Usage { input: prompt - cached, output: self.completion_tokens?, cached_input: cached, ..Usage::default() })
    }
}

impl Adapter for OpenAi {
    fn chat_path(&self) -> &'static str {
        "/chat/completions"
    }

    fn embeddings_path(&self) -> Option<&'static str> {
        Some("/embeddings")
    }

    fn credential(&self, key: &str) -> Option<(HeaderName, HeaderValue)> {
        Some((header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {key}")).ok()?))
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

    fn embedding_tokens(&self, answer: &Value) -> Option<u64> {
        answer.pointer("/usage/prompt_tokens").and_then(Value::as_u64)
    }

    fn observe(&self, data: &str, seen: &mut Seen) {
        if data.trim() == "[DONE]" {
            seen.finished = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else { return };
        if let Some(usage) = chunk.get("usage").and_then(|u| self.usage_from(u)) {
            (seen.input, seen.output) = (Some(usage.input), Some(usage.output));
            seen.cache.cached_input = usage.cached_input;
        }
        for delta in chunk.get("choices").and_then(Value::as_array).into_iter().flatten().filter_map(|c| c.get("delta")) {
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                seen.text.push_str(text);
            }
            let calls = delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten();
            for arguments in calls.filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str)) {
                seen.text.push_str(arguments);
            }
        }
    }

    fn rewrite(&self, request: &RawObject<'_>, out: &Outgoing<'_>) -> Vec<u8> {
        let name = serde_json::to_string(out.model).unwrap_or_default();
        let mut changes = vec![("model", Some(name.as_str())), ("fallbacks", None)];
        if out.stream {
            changes.push(("stream_options", Some(INCLUDE_USAGE)));
        }
        // Without a limit of its own the request is held to the output it was reserved for, so
        // no answer can cost more than its reservation.
        let cap = out.max_out.to_string();
        if !out.capped {
            changes.push((out.output_cap, Some(cap.as_str())));
        }
        request.encode(&changes)
    }

    fn request_to_openai(&self, mut request: Value, _model: &str) -> Value {
        if let Some(o) = request.as_object_mut() {
            o.remove("fallbacks");
        }
        request
    }

    fn request_from_openai(&self, mut chat: Value, out: &Outgoing<'_>) -> Value {
        chat["model"] = json!(out.model);
        if let Some(o) = chat.as_object_mut() {
            o.remove("fallbacks");
        }
        if !out.capped {
            chat[out.output_cap] = Value::from(out.max_out);
        }
        if out.stream {
            chat["stream_options"] = serde_json::from_str(INCLUDE_USAGE).unwrap_or(Value::Null);
        }
        chat
    }

    fn answer_to_openai(&self, _answer: &Value) -> Option<Value> {
        None
    }

    fn answer_from_openai(&self, _completion: &Value) -> Option<Value> {
        None
    }

    fn stream_to_openai(&self, _include_usage: bool) -> Option<Box<dyn Reframe>> {
        None
    }

    fn stream_from_openai(&self) -> Option<Box<dyn Reframe>> {
        None
    }

    fn error_body(&self, _status: u16, message: String, upstream: &Value) -> Value {
        let kind = upstream.pointer("/error/type").and_then(Value::as_str).unwrap_or("upstream_error");
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
    }
}

#[cfg(test)]
mod tests {
    use tollgate_core::auth::Secret;

    use super::*;

    #[test]
    fn cached_prompt_tokens_are_a_part_of_the_prompt_and_missing_usage_is_none() {
        let answer = json!({"usage": {"prompt_tokens": 7, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}});
        let usage = OpenAi.usage_in(answer.to_string().as_bytes());
        assert_eq!(usage, Some(Usage { input: 3, output: 2, cached_input: 4, ..Usage::default() }));
        assert_eq!(usage.map(|u| u.prompt()), Some(7), "prompt_tokens already counts the cached ones");
        let odd = json!({"prompt_tokens": 2, "completion_tokens": 0, "prompt_tokens_details": {"cached_tokens": 9}});
        assert_eq!(OpenAi.usage_from(&odd).map(|u| (u.input, u.cached_input)), Some((0, 2)), "never more cached than sent");
        assert_eq!(OpenAi.usage_in(b"{\"id\": 1}"), None);
    }

    #[test]
    fn the_key_is_a_sensitive_bearer_header_or_none_if_it_cannot_be_one() {
        let header = OpenAi.auth_header(&Secret::new("sk-provider".to_owned()));
        assert_eq!(header.as_ref().map(|(n, v)| (n.as_str(), v.to_str().ok())), Some(("authorization", Some("Bearer sk-provider"))));
        assert!(header.is_some_and(|(_, v)| v.is_sensitive()), "kept out of logs");
        assert!(OpenAi.auth_header(&Secret::new("line\nbreak".to_owned())).is_none());
    }
}
