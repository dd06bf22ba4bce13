//! Translation between the OpenAI chat format and the Anthropic Messages format, so a client of
//! either can use an upstream of either: requests here, plain answers and error types in `answer`,
//! streams in `stream`. Pure functions over `serde_json` values; what has no counterpart is left out.

pub mod answer;
pub mod stream;

use serde_json::{Map, Value, json};

use tollgate_core::providers::ProviderKind;

use crate::adapters::Adapted;

/// (prompt, output) tokens of a parsed answer, or of a stream chunk that reports usage; the
/// prompt includes cached prompt tokens (as OpenAI's `prompt_tokens` does).
pub fn usage_of(kind: ProviderKind, answer: &Value) -> Option<(u64, u64)> {
    kind.adapter().usage_from(answer.get("usage")?).map(|u| (u.prompt(), u.output))
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// The text of OpenAI content (a string or text parts) or Anthropic content (a string or blocks).
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// Copies the members present in `from` to `to` under new names.
fn carry(from: &Value, to: &mut Value, names: &[(&str, &str)]) {
    for (source, target) in names {
        if let Some(value) = from.get(*source).filter(|v| !v.is_null()) {
            to[*target] = value.clone();
        }
    }
}

/// Tool-call arguments (a JSON string) as an Anthropic `input` object.
fn arguments_object(arguments: Option<&Value>) -> Value {
    let parsed = arguments.and_then(Value::as_str).and_then(|a| serde_json::from_str::<Value>(a).ok());
    parsed.filter(Value::is_object).unwrap_or_else(|| Value::Object(Map::new()))
}

/// An OpenAI chat request as an Anthropic Messages request for `model`. Anthropic requires
/// `max_tokens`, so the caller passes the one it reserved for.
pub fn chat_to_messages(request: &Value, model: &str, max_tokens: u64) -> Value {
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for message in request.get("messages").and_then(Value::as_array).into_iter().flatten() {
        match message.get("role").and_then(Value::as_str).unwrap_or("user") {
            "system" | "developer" => system.push(text_of(message.get("content"))),
            "assistant" => push_turn(&mut turns, "assistant", assistant_blocks(message)),
            "tool" => {
                let result = json!({
                    "type": "tool_result",
                    "tool_use_id": message.get("tool_call_id").cloned().unwrap_or(Value::Null),
                    "content": text_of(message.get("content")),
                });
                push_turn(&mut turns, "user", vec![result]);
            }
            _ => push_turn(&mut turns, "user", content_blocks(message.get("content"))),
        }
    }
    let mut out = json!({"model": model, "max_tokens": max_tokens, "messages": turns});
    if !system.is_empty() {
        out["system"] = json!(system.join("\n\n"));
    }
    carry(request, &mut out, &[("temperature", "temperature"), ("top_p", "top_p"), ("stream", "stream")]);
    match request.get("stop") {
        Some(Value::String(stop)) => out["stop_sequences"] = json!([stop]),
        Some(stops @ Value::Array(_)) => out["stop_sequences"] = stops.clone(),
        _ => {}
    }
    let tools: Vec<Value> = request.get("tools").and_then(Value::as_array).into_iter().flatten().filter_map(tool_to_anthropic).collect();
    if !tools.is_empty() {
        let parallel = request.get("parallel_tool_calls").and_then(Value::as_bool);
        if let Some(choice) = tool_choice_to_anthropic(request.get("tool_choice"), parallel) {
            out["tool_choice"] = choice;
        }
        out["tools"] = Value::Array(tools);
    }
    if let Some(user) = request.get("user").and_then(Value::as_str) {
        out["metadata"] = json!({"user_id": user});
    }
    out
}

/// Appends blocks to the conversation, joining a turn of the same role (Anthropic alternates).
fn push_turn(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut().filter(|t| t["role"] == role)
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    turns.push(json!({"role": role, "content": blocks}));
}

/// OpenAI message content (a string or parts) as Anthropic content blocks.
fn content_blocks(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::String(text)) if !text.is_empty() => vec![json!({"type": "text", "text": text})],
        Some(Value::Array(parts)) => parts.iter().filter_map(part_to_block).collect(),
        _ => Vec::new(),
    }
}

fn part_to_block(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str)? {
        "text" => part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()).map(|text| json!({"type": "text", "text": text})),
        "image_url" => {
            let url = part.pointer("/image_url/url").or_else(|| part.get("image_url")).and_then(Value::as_str)?;
            let source = match url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
                Some((media_type, data)) => json!({"type": "base64", "media_type": media_type, "data": data}),
                None => json!({"type": "url", "url": url}),
            };
            Some(json!({"type": "image", "source": source}))
        }
        _ => None,
    }
}

/// An assistant message: its text, then its tool calls as `tool_use` blocks.
fn assistant_blocks(message: &Value) -> Vec<Value> {
    let mut blocks = content_blocks(message.get("content"));
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        blocks.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or(Value::Null),
            "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
            "input": arguments_object(call.pointer("/function/arguments")),
        }));
    }
    blocks
}

fn tool_to_anthropic(tool: &Value) -> Option<Value> {
    let function = tool.get("function")?;
    let schema = function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let mut out = json!({"name": function.get("name")?, "input_schema": schema});
    carry(function, &mut out, &[("description", "description")]);
    Some(out)
}

fn tool_choice_to_anthropic(choice: Option<&Value>, parallel: Option<bool>) -> Option<Value> {
    let mut out = match choice {
        Some(Value::String(mode)) => match mode.as_str() {
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            _ => json!({"type": "auto"}),
        },
        Some(named) => json!({"type": "tool", "name": named.pointer("/function/name")?}),
        None if parallel == Some(false) => json!({"type": "auto"}),
        None => return None,
    };
    if parallel == Some(false) && out["type"] != "none" {
        out["disable_parallel_tool_use"] = json!(true);
    }
    Some(out)
}

/// An Anthropic Messages request as an OpenAI chat request for `model`.
pub fn messages_to_chat(request: &Value, model: &str) -> Value {
    let mut messages = Vec::new();
    let system = text_of(request.get("system"));
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for turn in request.get("messages").and_then(Value::as_array).into_iter().flatten() {
        let role = turn.get("role").and_then(Value::as_str).unwrap_or("user");
        match turn.get("content") {
            Some(Value::Array(blocks)) if role == "assistant" => messages.push(assistant_message(blocks)),
            Some(Value::Array(blocks)) => messages.extend(user_messages(blocks)),
            content => messages.push(json!({"role": role, "content": text_of(content)})),
        }
    }
    let mut out = json!({"model": model, "messages": messages});
    carry(
        request,
        &mut out,
        &[
            ("max_tokens", "max_tokens"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("stop_sequences", "stop"),
            ("stream", "stream"),
        ],
    );
    let tools: Vec<Value> = request.get("tools").and_then(Value::as_array).into_iter().flatten().filter_map(tool_to_openai).collect();
    if !tools.is_empty() {
        if let Some(choice) = request.get("tool_choice") {
            match choice.get("type").and_then(Value::as_str) {
                Some("any") => out["tool_choice"] = json!("required"),
                Some("none") => out["tool_choice"] = json!("none"),
                Some("tool") => out["tool_choice"] = json!({"type": "function", "function": {"name": choice.get("name")}}),
                _ => out["tool_choice"] = json!("auto"),
            }
            if choice.get("disable_parallel_tool_use") == Some(&json!(true)) {
                out["parallel_tool_calls"] = json!(false);
            }
        }
        out["tools"] = Value::Array(tools);
    }
    if let Some(user) = request.pointer("/metadata/user_id").and_then(Value::as_str) {
        out["user"] = json!(user);
    }
    out
}

/// Anthropic assistant content as an OpenAI assistant message: text joined, `tool_use` blocks as
/// `tool_calls` whose `arguments` are the input as a JSON string.
fn assistant_message(blocks: &[Value]) -> Value {
    let text: String = blocks.iter().filter(|b| b["type"] == "text").filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            let arguments = b.get("input").map_or_else(|| "{}".to_owned(), ToString::to_string);
            json!({"id": b.get("id"), "type": "function", "function": {"name": b.get("name"), "arguments": arguments}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// A user turn: its tool results first (one `tool` message each), then the rest as a user message.
fn user_messages(blocks: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| json!({"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": text_of(b.get("content"))}))
        .collect();
    let parts: Vec<Value> = blocks.iter().filter_map(block_to_part).collect();
    if parts.iter().all(|p| p["type"] == "text") {
        let text: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
        if !text.is_empty() {
            out.push(json!({"role": "user", "content": text.join("\n")}));
        }
    } else {
        out.push(json!({"role": "user", "content": parts}));
    }
    out
}

fn block_to_part(block: &Value) -> Option<Value> {
    match block.get("type").and_then(Value::as_str)? {
        "text" => Some(json!({"type": "text", "text": block.get("text")?})),
        "image" => {
            let source = block.get("source")?;
            let url = match source.get("type").and_then(Value::as_str)? {
                "base64" => format!("data:{};base64,{}", source.get("media_type")?.as_str()?, source.get("data")?.as_str()?),
                "url" => source.get("url")?.as_str()?.to_owned(),
                _ => return None,
            };
            Some(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        _ => None,
    }
}

/// A client tool (server tools such as web search have no OpenAI counterpart and are left out).
fn tool_to_openai(tool: &Value) -> Option<Value> {
    if tool.get("type").and_then(Value::as_str).is_some_and(|t| t != "custom") {
        return None;
    }
    let parameters = tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let mut function = json!({"name": tool.get("name")?, "parameters": parameters});
    carry(tool, &mut function, &[("description", "description")]);
    Some(json!({"type": "function", "function": function}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openai_conversation_with_tools_becomes_anthropic_turns() {
        let request = json!({
            "model": "anthropic/claude", "max_tokens": 50, "temperature": 0.5, "stop": "END", "user": "u1",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "weather?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "user", "content": "thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "parallel_tool_calls": false
        });
        let out = chat_to_messages(&request, "claude", 50);
        assert_eq!(out["system"], "be brief");
        assert_eq!(out["max_tokens"], 50);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["metadata"], json!({"user_id": "u1"}));
        assert_eq!(out["messages"][0]["content"][1]["source"], json!({"type": "base64", "media_type": "image/png", "data": "AAA"}));
        assert_eq!(
            out["messages"][1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
        );
        let results = &out["messages"][2]["content"];
        assert_eq!(results[0], json!({"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}));
        assert_eq!(results[1], json!({"type": "text", "text": "thanks"}), "the user turn after a tool result is joined to it");
        assert_eq!(out["tools"], json!([{"name": "weather", "description": "d", "input_schema": {"type": "object"}}]));
        assert_eq!(out["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
    }

    #[test]
    fn an_anthropic_conversation_becomes_openai_messages() {
        let request = json!({
            "model": "x", "max_tokens": 10, "system": [{"type": "text", "text": "sys"}], "stop_sequences": ["S"],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "let me"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "42"}]}, {"type": "text", "text": "so?"}]}
            ],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "tool", "name": "f"}
        });
        let out = messages_to_chat(&request, "gpt");
        let messages = out["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(messages[0], json!({"role": "system", "content": "sys"}));
        assert_eq!(messages[2]["tool_calls"][0]["function"], json!({"name": "f", "arguments": "{\"a\":1}"}));
        assert_eq!(messages[3], json!({"role": "tool", "tool_call_id": "t1", "content": "42"}));
        assert_eq!(messages[4], json!({"role": "user", "content": "so?"}));
        assert_eq!((out["max_tokens"].clone(), out["stop"].clone()), (json!(10), json!(["S"])));
        assert_eq!(out["tools"].as_array().map(Vec::len), Some(1), "the server tool has no OpenAI form");
        assert_eq!(out["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
    }
}
