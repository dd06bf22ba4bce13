//! The mock upstream: OpenAI chat completions with usage (plain or streamed as SSE) and embeddings, on axum with TCP_NODELAY.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use serde::Deserialize;
use tokio::net::TcpListener;

/// Prompt and completion tokens every answer reports.
pub const PROMPT_TOKENS: u64 = 12;
pub const COMPLETION_TOKENS: u64 = 5;
/// The streamed content, one chunk per token.
const PIECES: [&str; 5] = ["Hello", " from", " the", " bench", " mock"];

#[derive(Debug)]
struct Answers {
    plain: Bytes,
    embedding: Bytes,
    /// SSE events, each a complete `data: …\n\n`.
    events: Vec<Bytes>,
    chunk_delay: Duration,
}

#[derive(Debug, Deserialize)]
struct Ask {
    #[serde(default)]
    stream: bool,
}

fn usage() -> serde_json::Value {
    serde_json::json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS})
}

fn answers(chunk_delay: Duration) -> Answers {
    let plain = serde_json::json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": PIECES.concat()}, "finish_reason": "stop"}],
        "usage": usage(),
    });
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events: Vec<serde_json::Value> =
        PIECES.iter().map(|p| chunk(serde_json::json!({"content": p}), serde_json::Value::Null)).collect();
    events.push(chunk(serde_json::json!({}), serde_json::json!("stop")));
    events.push(serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench-model",
        "choices": [], "usage": usage()}));
    let mut events: Vec<Bytes> = events.iter().map(|e| Bytes::from(format!("data: {e}\n\n"))).collect();
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let embedding = serde_json::json!({
        "object": "list", "model": "bench-model",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125, 1.0]}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
    });
    Answers { plain: Bytes::from(plain.to_string()), embedding: Bytes::from(embedding.to_string()), events, chunk_delay }
}

/// Serves until the process ends; `announce` gets the bound address.
pub async fn serve(port: u16, chunk_delay_ms: u64, announce: fn(SocketAddr)) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| format!("mock: bind port {port}: {e}"))?;
    announce(listener.local_addr().map_err(|e| e.to_string())?);
    let app = app(Duration::from_millis(chunk_delay_ms));
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.map_err(|e| format!("mock: {e}"))
}

fn app(chunk_delay: Duration) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .with_state(Arc::new(answers(chunk_delay)))
}

fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

async fn embeddings(State(answers): State<Arc<Answers>>) -> Response {
    json(answers.embedding.clone())
}

async fn chat(State(answers): State<Arc<Answers>>, body: Bytes) -> Response {
    let Ok(ask) = serde_json::from_slice::<Ask>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed JSON").into_response();
    };
    if !ask.stream {
        return json(answers.plain.clone());
    }
    let delay = answers.chunk_delay;
    let events = answers.events.clone().into_iter().enumerate();
    let body = futures::stream::unfold(events, move |mut rest| async move {
        let (i, event) = rest.next()?;
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<Bytes, Infallible>(event), rest))
    });
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, Body::from_stream(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn served() -> String {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app(Duration::ZERO)).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn embeddings_answer_with_a_vector_and_the_prompt_tokens_as_usage() {
        let base = served().await;
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{base}/v1/embeddings"))
            .json(&serde_json::json!({"model": "bench-model", "input": "hello"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["usage"]["prompt_tokens"], PROMPT_TOKENS);
        assert_eq!(answer["data"][0]["embedding"].as_array().map(Vec::len), Some(4));
    }

    #[tokio::test]
    async fn a_streamed_chat_ends_with_usage_and_done() {
        let base = served().await;
        let text = reqwest::Client::new()
            .post(format!("{base}/v1/chat/completions"))
            .json(&serde_json::json!({"model": "bench-model", "stream": true, "messages": []}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text.matches("data: ").count(), PIECES.len() + 3);
        assert!(text.contains(&format!("\"completion_tokens\":{COMPLETION_TOKENS}")));
        assert!(text.ends_with("data: [DONE]\n\n"));
    }
}
