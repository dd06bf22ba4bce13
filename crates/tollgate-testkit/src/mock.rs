//! A mock upstream on port 0 speaking both OpenAI chat completions (`/v1/chat/completions`) and
//! Anthropic Messages (`/v1/messages`), plain and streamed, with scripted usage, tool calls,
//! failures and delays; it counts the calls and records each request it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::stream;
use serde_json::{Value, json};

/// How the mock answers; change it between requests.
#[derive(Debug)]
pub struct Script {
    /// Prompt (input) tokens reported in usage.
    pub prompt_tokens: AtomicU64,
    /// Completion (output) tokens reported (capped by the request's `max_tokens`); also the
    /// number of streamed content chunks, one token each.
    pub completion_tokens: AtomicU64,
    /// Answer with this status instead (0 = succeed).
    pub fail_status: AtomicU16,
    /// Milliseconds between streamed chunks.
    pub chunk_delay_ms: AtomicU64,
    /// Milliseconds before any answer (plain or streamed) starts.
    pub answer_delay_ms: AtomicU64,
    /// Calls whose answer was written out whole (a client that left before misses none of them).
    pub answered: AtomicU64,
    /// 1 = OpenAI streams end with a usage chunk when asked (`stream_options.include_usage`).
    pub stream_usage: AtomicU64,
    /// When the request offers tools, call the first one (with input [`TOOL_INPUT`]) instead of
    /// answering with text.
    pub tool_use: AtomicBool,
    /// Anthropic answers report this many prompt tokens written to / read from the prompt cache
    /// (the `cache_*_input_tokens` members appear only when not zero). OpenAI answers report the
    /// read count as `prompt_tokens_details.cached_tokens`, a part of their `prompt_tokens`.
    pub cache_write_tokens: AtomicU64,
    pub cache_read_tokens: AtomicU64,
    /// Calls received.
    pub calls: AtomicU64,
    /// Every request received, oldest first.
    pub received: Mutex<Vec<Received>>,
}

/// The input the mock passes to a tool it calls.
pub const TOOL_INPUT: &str = r#"{"query":"mock"}"#;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: &'static str,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Received {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
}

/// A running mock upstream.
#[derive(Debug, Clone)]
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub script: Arc<Script>,
}

impl MockUpstream {
    pub async fn start() -> MockUpstream {
        let script = Arc::new(Script {
            prompt_tokens: AtomicU64::new(10),
            completion_tokens: AtomicU64::new(20),
            fail_status: AtomicU16::new(0),
            chunk_delay_ms: AtomicU64::new(0),
            answer_delay_ms: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            stream_usage: AtomicU64::new(1),
            tool_use: AtomicBool::new(false),
            cache_write_tokens: AtomicU64::new(0),
            cache_read_tokens: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .route("/v1/embeddings", post(embeddings))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("mock upstream bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("mock upstream addr: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockUpstream { addr, script }
    }

    /// Base URL to configure as the provider's `base_url` (either kind).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> u64 {
        self.script.calls.load(Ordering::SeqCst)
    }

    /// The latest request received.
    pub fn last_request(&self) -> Option<Received> {
        self.script.received.lock().ok()?.last().cloned()
    }
}

/// What both endpoints do first: record and count the call, and compute the scripted usage.
struct Turn {
    model: String,
    prompt: u64,
    completion: u64,
    /// `completion` was cut by the request's `max_tokens`.
    capped: bool,
    /// The tool to call, when the script says so and the request offers one.
    tool: Option<String>,
    stream: bool,
    delay: Duration,
}

impl Script {
    fn begin(&self, path: &'static str, headers: &HeaderMap, request: &Value) -> Result<Turn, StatusCode> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut received) = self.received.lock() {
            received.push(Received { path, headers: headers.clone(), body: request.clone() });
        }
        let fail = self.fail_status.load(Ordering::SeqCst);
        // A model whose name starts with `down-` is always unavailable (for fallback tests).
        if request["model"].as_str().is_some_and(|m| m.starts_with("down-")) {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        if fail != 0 {
            return Err(StatusCode::from_u16(fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
        }
        let cap = request.get("max_completion_tokens").or_else(|| request.get("max_tokens")).and_then(Value::as_u64).unwrap_or(u64::MAX);
        let wanted = self.completion_tokens.load(Ordering::SeqCst);
        let tool = request.pointer("/tools/0/function/name").or_else(|| request.pointer("/tools/0/name")).and_then(Value::as_str);
        Ok(Turn {
            model: request["model"].as_str().unwrap_or("unknown").to_owned(),
            prompt: self.prompt_tokens.load(Ordering::SeqCst),
            completion: wanted.min(cap),
            capped: wanted > cap,
            tool: tool.filter(|_| self.tool_use.load(Ordering::SeqCst)).map(str::to_owned),
            stream: request["stream"].as_bool() == Some(true),
            delay: Duration::from_millis(self.chunk_delay_ms.load(Ordering::SeqCst)),
        })
    }
}

impl Script {
    /// Waits `answer_delay_ms` before answering.
    async fn pause(&self) {
        let delay = self.answer_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
    }
}

impl Turn {
    fn words(&self) -> String {
        vec!["tok"; usize::try_from(self.completion).unwrap_or(0)].join(" ")
    }
}

/// The tool input split in two, as a model streams it.
fn tool_input_pieces() -> [&'static str; 2] {
    let (head, tail) = TOOL_INPUT.split_at(TOOL_INPUT.len() / 2);
    [head, tail]
}

/// Sends `(event name, data)` pairs as SSE, `delay` apart.
fn sse(events: Vec<(Option<&'static str>, String)>, delay: Duration) -> Response {
    let events = stream::unfold(events.into_iter(), move |mut rest| async move {
        let (name, data) = rest.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let event = Event::default().data(data);
        Some((Ok::<Event, Infallible>(if let Some(name) = name { event.event(name) } else { event }), rest))
    });
    Sse::new(events).into_response()
}

async fn chat(State(script): State<Arc<Script>>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    let turn = match script.begin("/v1/chat/completions", &headers, &request) {
        Ok(turn) => turn,
        Err(status) => return (status, Json(json!({"error": {"message": "scripted failure", "type": "server_error"}}))).into_response(),
    };
    script.pause().await;
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let model = turn.model.clone();
    let (prompt, completion) = (turn.prompt, turn.completion);
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    // OpenAI counts cached prompt tokens inside prompt_tokens and names them apart.
    let cached = script.cache_read_tokens.load(Ordering::SeqCst);
    if cached > 0 {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    let finish = if turn.tool.is_some() { "tool_calls" } else { "stop" };
    if !turn.stream {
        let message = match &turn.tool {
            Some(name) => json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_mock", "type": "function", "function": {"name": name, "arguments": TOOL_INPUT}}
            ]}),
            None => json!({"role": "assistant", "content": turn.words()}),
        };
        return Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage, "upstream_saw_authorization": authorized,
        }))
        .into_response();
    }
    let with_usage =
        script.stream_usage.load(Ordering::SeqCst) == 1 && request.pointer("/stream_options/include_usage") == Some(&json!(true));
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string()
    };
    let mut chunks: Vec<String> = match &turn.tool {
        Some(name) => {
            let start =
                json!({"tool_calls": [{"index": 0, "id": "call_mock", "type": "function", "function": {"name": name, "arguments": ""}}]});
            let mut out = vec![chunk(start, Value::Null)];
            out.extend(
                tool_input_pieces().map(|p| chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}), Value::Null)),
            );
            out
        }
        None => (0..completion).map(|_| chunk(json!({"content": " tok"}), Value::Null)).collect(),
    };
    chunks.push(chunk(json!({}), json!(finish)));
    if with_usage {
        chunks.push(
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}).to_string(),
        );
    }
    chunks.push("[DONE]".to_owned());
    sse(chunks.into_iter().map(|c| (None, c)).collect(), turn.delay)
}

/// Anthropic Messages: a message, or its event stream (`message_start` with the input tokens,
/// `POST /v1/messages/count_tokens`: Anthropic's token count, `{"input_tokens": <prompt tokens>}`.
async fn count_tokens(State(script): State<Arc<Script>>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    match script.begin("/v1/messages/count_tokens", &headers, &request) {
        Ok(turn) => Json(json!({"input_tokens": turn.prompt})).into_response(),
        Err(status) => {
            (status, Json(json!({"type": "error", "error": {"type": "api_error", "message": "scripted failure"}}))).into_response()
        }
    }
}

/// one content block with its deltas, `message_delta` with the stop reason and output tokens,
/// `message_stop`).
async fn messages(State(script): State<Arc<Script>>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    let turn = match script.begin("/v1/messages", &headers, &request) {
        Ok(turn) => turn,
        Err(status) => {
            let body = json!({"type": "error", "error": {"type": "api_error", "message": "scripted failure"}});
            return (status, Json(body)).into_response();
        }
    };
    script.pause().await;
    let (prompt, completion) = (turn.prompt, turn.completion);
    let usage = |output: u64| {
        let mut usage = json!({"input_tokens": prompt, "output_tokens": output});
        for (name, tokens) in
            [("cache_creation_input_tokens", &script.cache_write_tokens), ("cache_read_input_tokens", &script.cache_read_tokens)]
        {
            let tokens = tokens.load(Ordering::SeqCst);
            if tokens > 0 {
                usage[name] = json!(tokens);
            }
        }
        usage
    };
    let stop_reason = match (&turn.tool, turn.capped) {
        (Some(_), _) => "tool_use",
        (None, true) => "max_tokens",
        (None, false) => "end_turn",
    };
    let tool_block = |name: &str, input: Value| json!({"type": "tool_use", "id": "toolu_mock", "name": name, "input": input});
    if !turn.stream {
        let content = match &turn.tool {
            Some(name) => tool_block(name, serde_json::from_str(TOOL_INPUT).unwrap_or_default()),
            None => json!({"type": "text", "text": turn.words()}),
        };
        return Json(json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": turn.model, "content": [content],
            "stop_reason": stop_reason, "stop_sequence": null, "usage": usage(completion),
        }))
        .into_response();
    }
    let message = json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": turn.model, "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": usage(1),
    });
    let (block, deltas): (Value, Vec<Value>) = match &turn.tool {
        Some(name) => {
            (tool_block(name, json!({})), tool_input_pieces().map(|p| json!({"type": "input_json_delta", "partial_json": p})).to_vec())
        }
        None => (json!({"type": "text", "text": ""}), (0..completion).map(|_| json!({"type": "text_delta", "text": " tok"})).collect()),
    };
    let mut events = vec![
        ("message_start", json!({"type": "message_start", "message": message})),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": block})),
        ("ping", json!({"type": "ping"})),
    ];
    events.extend(deltas.into_iter().map(|d| ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": d}))));
    events.extend([
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": completion}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    sse(events.into_iter().map(|(name, data)| (Some(name), data.to_string())).collect(), turn.delay)
}

async fn embeddings(State(script): State<Arc<Script>>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    let turn = match script.begin("/v1/embeddings", &headers, &request) {
        Ok(turn) => turn,
        Err(status) => return (status, Json(json!({"error": {"message": "scripted failure", "type": "server_error"}}))).into_response(),
    };
    script.pause().await;
    Json(json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
        "model": turn.model,
        "usage": {"prompt_tokens": turn.prompt, "total_tokens": turn.prompt},
    }))
    .into_response()
}
