//! A mock OpenAI-compatible upstream on port 0: chat completions, plain and streamed, with
//! scripted usage, failures and delays, counting the calls it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
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
    /// Prompt tokens reported in usage.
    pub prompt_tokens: AtomicU64,
    /// Completion tokens reported (capped by the request's `max_tokens`); also the number of
    /// streamed content chunks, one token each.
    pub completion_tokens: AtomicU64,
    /// Answer with this status instead (0 = succeed).
    pub fail_status: AtomicU16,
    /// Milliseconds between streamed chunks.
    pub chunk_delay_ms: AtomicU64,
    /// 1 = streams end with a usage chunk when asked (`stream_options.include_usage`).
    pub stream_usage: AtomicU64,
    /// Calls received.
    pub calls: AtomicU64,
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
            stream_usage: AtomicU64::new(1),
            calls: AtomicU64::new(0),
        });
        let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("mock upstream bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("mock upstream addr: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockUpstream { addr, script }
    }

    /// Base URL to configure as the provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> u64 {
        self.script.calls.load(Ordering::SeqCst)
    }
}

async fn chat(State(script): State<Arc<Script>>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    script.calls.fetch_add(1, Ordering::SeqCst);
    let fail = script.fail_status.load(Ordering::SeqCst);
    if fail != 0 {
        let status = StatusCode::from_u16(fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, Json(json!({"error": {"message": "scripted failure", "type": "server_error"}}))).into_response();
    }
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let model = request["model"].as_str().unwrap_or("unknown").to_owned();
    let cap = request.get("max_completion_tokens").or_else(|| request.get("max_tokens")).and_then(Value::as_u64).unwrap_or(u64::MAX);
    let completion = script.completion_tokens.load(Ordering::SeqCst).min(cap);
    let prompt = script.prompt_tokens.load(Ordering::SeqCst);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    if request["stream"].as_bool() != Some(true) {
        let words = vec!["tok"; usize::try_from(completion).unwrap_or(0)].join(" ");
        return Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": words}, "finish_reason": "stop"}],
            "usage": usage, "upstream_saw_authorization": authorized,
        }))
        .into_response();
    }
    let with_usage =
        script.stream_usage.load(Ordering::SeqCst) == 1 && request.pointer("/stream_options/include_usage") == Some(&json!(true));
    let delay = Duration::from_millis(script.chunk_delay_ms.load(Ordering::SeqCst));
    let mut chunks: Vec<String> = (0..completion)
        .map(|_| json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {"content": " tok"}}]}).to_string())
        .collect();
    if with_usage {
        chunks.push(
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}).to_string(),
        );
    }
    chunks.push("[DONE]".to_owned());
    let events = stream::unfold(chunks.into_iter(), move |mut rest| async move {
        let next = rest.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<Event, Infallible>(Event::default().data(next)), rest))
    });
    Sse::new(events).into_response()
}
