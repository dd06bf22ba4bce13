//! Plain (non-streamed) answers translated between the formats: an Anthropic message as an
//! OpenAI `chat.completion` and back, and Anthropic's error type for a status.

use serde_json::{Value, json};

use super::{arguments_object, assistant_message, finish_reason, stop_reason, text_of, usage_of};
use tollgate_core::providers::ProviderKind;

/// Anthropic's error `type` for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// OpenAI `usage` for (prompt, completion) tokens.
pub fn openai_usage((prompt, completion): (u64, u64)) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// Seconds since the epoch, for `created`.
pub fn created() -> i64 {
    tollgate_core::clock::now().timestamp()
}

/// An Anthropic message as an OpenAI chat completion: text joined, `tool_use` blocks as
/// `tool_calls` with their input as a JSON string.
pub fn message_to_completion(message: &Value) -> Value {
    let blocks = message.get("content").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let reply = assistant_message(blocks);
    let finish = message.get("stop_reason").and_then(Value::as_str).map_or("stop", finish_reason);
    json!({
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created(),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish, "logprobs": null}],
        "usage": openai_usage(usage_of(ProviderKind::Anthropic, message).unwrap_or((0, 0))),
    })
}

/// An OpenAI chat completion (its first choice) as an Anthropic message.
pub fn completion_to_message(completion: &Value) -> Value {
    let choice = completion.pointer("/choices/0").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let text = text_of(choice.pointer("/message/content"));
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in choice.pointer("/message/tool_calls").and_then(Value::as_array).into_iter().flatten() {
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id"),
            "name": call.pointer("/function/name"),
            "input": arguments_object(call.pointer("/function/arguments")),
        }));
    }
    let (input, output) = usage_of(ProviderKind::OpenAi, completion).unwrap_or((0, 0));
    json!({
        "id": completion.get("id"),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": choice.get("finish_reason").and_then(Value::as_str).map_or("end_turn", stop_reason),
        "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_use_message_becomes_tool_calls() {
        let message = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "x"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 7, "output_tokens": 3}
        });
        let out = message_to_completion(&message);
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"], json!({"name": "f", "arguments": "{\"q\":\"x\"}"}));
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["usage"], json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}));
    }

    #[test]
    fn a_completion_becomes_an_anthropic_message() {
        let completion = json!({
            "id": "c1", "model": "gpt", "usage": {"prompt_tokens": 4, "completion_tokens": 2},
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "hello"}}]
        });
        let out = completion_to_message(&completion);
        assert_eq!(out["content"], json!([{"type": "text", "text": "hello"}]));
        assert_eq!(
            (out["stop_reason"].clone(), out["usage"].clone()),
            (json!("max_tokens"), json!({"input_tokens": 4, "output_tokens": 2}))
        );
    }
}
