//! Streams re-framed event by event for the client: Anthropic events as OpenAI
//! `chat.completion.chunk`s, or OpenAI chunks as Anthropic events.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::answer::{created, openai_usage};
use super::{finish_reason, stop_reason};
use crate::adapters::{Reframe, Sse, Usage};
use tollgate_core::providers::ProviderKind;

/// Anthropic events as OpenAI chunks, closed by the usage chunk if `include_usage`.
pub fn to_openai(include_usage: bool) -> Box<dyn Reframe> {
    Box::new(AnthropicToOpenAi { include_usage, ..AnthropicToOpenAi::default() })
}

/// OpenAI chunks as named Anthropic events.
pub fn from_openai() -> Box<dyn Reframe> {
    Box::new(OpenAiToAnthropic::default())
}

/// Anthropic events → OpenAI chunks: text and tool-input deltas as `delta`s, the stop reason as
/// `finish_reason`, then the usage chunk (if the client asked for it) and `[DONE]`.
#[derive(Debug, Default)]
struct AnthropicToOpenAi {
    include_usage: bool,
    id: Value,
    model: Value,
    created: i64,
    input: u64,
    output: u64,
    /// Tool-call index (OpenAI) of each `tool_use` block index (Anthropic).
    tool_of_block: HashMap<u64, usize>,
}

impl AnthropicToOpenAi {
    fn chunk(&self, delta: &Value, finish: Option<&str>) -> Sse {
        let choice = json!({"index": 0, "delta": delta, "finish_reason": finish});
        Sse::data(
            json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": [choice]})
                .to_string(),
        )
    }
}

impl Reframe for AnthropicToOpenAi {
    fn reframe(&mut self, _event: &str, data: &str) -> Vec<Sse> {
        let Ok(event) = serde_json::from_str::<Value>(data) else { return Vec::new() };
        let tokens = |at: &str| event.pointer(at).and_then(Value::as_u64);
        let block = tokens("/index").unwrap_or(0);
        match event.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                self.id = event.pointer("/message/id").cloned().unwrap_or(Value::Null);
                self.model = event.pointer("/message/model").cloned().unwrap_or(Value::Null);
                self.created = created();
                self.input = tokens("/message/usage/input_tokens").unwrap_or(0) + cached(event.pointer("/message/usage"));
                self.output = tokens("/message/usage/output_tokens").unwrap_or(0);
                vec![self.chunk(&json!({"role": "assistant", "content": ""}), None)]
            }
            "content_block_start" if event.pointer("/content_block/type") == Some(&json!("tool_use")) => {
                let index = self.tool_of_block.len();
                self.tool_of_block.insert(block, index);
                let start = json!({
                    "index": index,
                    "id": event.pointer("/content_block/id"),
                    "type": "function",
                    "function": {"name": event.pointer("/content_block/name"), "arguments": ""},
                });
                vec![self.chunk(&json!({"tool_calls": [start]}), None)]
            }
            "content_block_delta" => {
                match (event.pointer("/delta/text"), event.pointer("/delta/partial_json"), self.tool_of_block.get(&block)) {
                    (Some(text), _, _) => vec![self.chunk(&json!({"content": text}), None)],
                    (None, Some(json), Some(index)) => {
                        vec![self.chunk(&json!({"tool_calls": [{"index": index, "function": {"arguments": json}}]}), None)]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                self.input = tokens("/usage/input_tokens").map_or(self.input, |input| input + cached(event.get("usage")));
                self.output = tokens("/usage/output_tokens").unwrap_or(self.output);
                let stop = event.pointer("/delta/stop_reason").and_then(Value::as_str);
                stop.map(|s| self.chunk(&json!({}), Some(finish_reason(s)))).into_iter().collect()
            }
            "message_stop" => {
                let mut out = Vec::new();
                if self.include_usage {
                    let usage = openai_usage((self.input, self.output));
                    let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": [], "usage": usage});
                    out.push(Sse::data(chunk.to_string()));
                }
                out.push(Sse::data("[DONE]"));
                out
            }
            "error" => vec![Sse::data(json!({"error": event.get("error")}).to_string())],
            _ => Vec::new(),
        }
    }
}

/// The content block an OpenAI → Anthropic stream has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// The OpenAI tool-call index.
    Tool(u64),
}

/// OpenAI chunks → Anthropic events: `message_start`, text and tool-use blocks with their
/// deltas, and at `[DONE]` the stop reason and usage in `message_delta`, then `message_stop`.
#[derive(Debug, Default)]
struct OpenAiToAnthropic {
    started: bool,
    done: bool,
    open: Option<Block>,
    /// Blocks opened so far (the open one has index `blocks - 1`).
    blocks: u64,
    stop: Option<&'static str>,
    usage: (u64, u64),
}

impl OpenAiToAnthropic {
    fn start(&mut self, out: &mut Vec<Sse>, chunk: &Value) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": chunk.get("id"), "type": "message", "role": "assistant", "model": chunk.get("model"), "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        out.push(Sse::typed("message_start", json!({"message": message})));
    }

    fn close_block(&mut self, out: &mut Vec<Sse>) {
        if self.open.take().is_some() {
            out.push(Sse::typed("content_block_stop", json!({"index": self.blocks - 1})));
        }
    }

    fn open_block(&mut self, out: &mut Vec<Sse>, block: Block, content: &Value) {
        self.close_block(out);
        out.push(Sse::typed("content_block_start", json!({"index": self.blocks, "content_block": content})));
        self.blocks += 1;
        self.open = Some(block);
    }

    fn delta(&self, delta: &Value) -> Sse {
        Sse::typed("content_block_delta", json!({"index": self.blocks.saturating_sub(1), "delta": delta}))
    }

    fn finish(&mut self) -> Vec<Sse> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let mut out = Vec::new();
        self.start(&mut out, &Value::Null);
        self.close_block(&mut out);
        let (input, output) = self.usage;
        let delta = json!({"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null});
        out.push(Sse::typed("message_delta", json!({"delta": delta, "usage": {"input_tokens": input, "output_tokens": output}})));
        out.push(Sse::typed("message_stop", json!({})));
        out
    }
}

impl Reframe for OpenAiToAnthropic {
    fn reframe(&mut self, _event: &str, data: &str) -> Vec<Sse> {
        if data.trim() == "[DONE]" {
            return self.finish();
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else { return Vec::new() };
        if let Some(error) = chunk.get("error") {
            let message = error.get("message").cloned().unwrap_or_else(|| json!(error.to_string()));
            return vec![Sse::typed("error", json!({"error": {"type": "api_error", "message": message}}))];
        }
        let mut out = Vec::new();
        self.start(&mut out, &chunk);
        if let Some(usage) = super::usage_of(ProviderKind::OpenAi, &chunk) {
            self.usage = usage;
        }
        let Some(choice) = chunk.pointer("/choices/0") else { return out };
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            if self.open != Some(Block::Text) {
                self.open_block(&mut out, Block::Text, &json!({"type": "text", "text": ""}));
            }
            out.push(self.delta(&json!({"type": "text_delta", "text": text})));
        }
        for call in choice.pointer("/delta/tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            if self.open != Some(Block::Tool(index)) {
                let content = json!({"type": "tool_use", "id": call.get("id"), "name": call.pointer("/function/name"), "input": {}});
                self.open_block(&mut out, Block::Tool(index), &content);
            }
            if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                out.push(self.delta(&json!({"type": "input_json_delta", "partial_json": arguments})));
            }
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = Some(stop_reason(finish));
        }
        out
    }
}

/// Cached prompt tokens of an Anthropic `usage` object (an OpenAI client counts them in `prompt_tokens`).
fn cached(usage: Option<&Value>) -> u64 {
    let mut tokens = Usage::default();
    if let Some(usage) = usage {
        crate::adapters::anthropic::read_cache(&mut tokens, usage);
    }
    tokens.prompt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(reframe: &mut dyn Reframe, events: &[(&str, Value)]) -> Vec<Sse> {
        events.iter().flat_map(|(name, data)| reframe.reframe(name, &data.to_string())).collect()
    }

    fn data(out: &[Sse]) -> Vec<Value> {
        out.iter().map(|s| serde_json::from_str(&s.data).unwrap_or_else(|_| json!(s.data))).collect()
    }

    #[test]
    fn anthropic_events_become_openai_chunks_with_usage_and_done() {
        let mut reframe = to_openai(true);
        let out = run(
            reframe.as_mut(),
            &[
                (
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
                ),
                ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})),
                (
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
                ),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}}),
                ),
                ("ping", json!({"type": "ping"})),
                ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}})),
                ("message_stop", json!({"type": "message_stop"})),
            ],
        );
        let chunks = data(&out);
        assert!(out.iter().all(|s| s.event.is_none()));
        assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "hi"}));
        assert_eq!(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(chunks[3]["choices"][0]["delta"]["tool_calls"][0], json!({"index": 0, "function": {"arguments": "{\"a\""}}));
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[5]["usage"], json!({"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}));
        assert_eq!(chunks[6], json!("[DONE]"));
    }

    #[test]
    fn openai_chunks_become_named_anthropic_events() {
        let mut reframe = from_openai();
        let chunk = |delta: Value, finish: Value| json!({"id": "c", "model": "g", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        let out = run(
            reframe.as_mut(),
            &[
                ("message", chunk(json!({"role": "assistant", "content": "he"}), Value::Null)),
                ("message", chunk(json!({"content": "llo"}), Value::Null)),
                (
                    "message",
                    chunk(json!({"tool_calls": [{"index": 0, "id": "call", "function": {"name": "f", "arguments": ""}}]}), Value::Null),
                ),
                ("message", chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}), json!("tool_calls"))),
                ("message", json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})),
            ],
        );
        let mut all = out;
        all.extend(reframe.reframe("message", "[DONE]"));
        let names: Vec<&str> = all.iter().filter_map(|s| s.event.as_deref()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let events = data(&all);
        assert_eq!(events[5]["content_block"], json!({"type": "tool_use", "id": "call", "name": "f", "input": {}}));
        assert_eq!(events[8]["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[8]["usage"], json!({"input_tokens": 3, "output_tokens": 4}));
    }
}
