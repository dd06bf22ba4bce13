//! `POST /v1/chat/completions` (OpenAI format): read the request, have it admitted (authorize,
//! reserve), send it to the provider — as is to an OpenAI-compatible one, translated to an
//! Anthropic one — and relay the answer in OpenAI's format, plain or streamed, settling the bill.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::engine::{Ask, Gateway, ProviderKind, prompt_estimate};
use crate::error::GatewayError;
use crate::translate;
use crate::upstream::Exchange;

pub async fn chat_completions(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Result<Response, GatewayError> {
    let mut request: Value = serde_json::from_slice(&body).map_err(|e| GatewayError::bad_request(format!("malformed JSON: {e}")))?;
    let full = request.get("model").and_then(Value::as_str).ok_or_else(|| GatewayError::bad_request("model is required"))?.to_owned();
    let (provider, model) = full
        .split_once('/')
        .ok_or_else(|| GatewayError::bad_request("model must be written as provider/model, e.g. openai/gpt-4o-mini"))?;
    if !request.get("messages").is_some_and(Value::is_array) {
        return Err(GatewayError::bad_request("messages must be an array"));
    }
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let max_out = request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(gw.0.default_max_tokens);
    let ask = Ask { provider, model, prompt: prompt_estimate(&request), max_out, stream };
    let (spec, held) = gw.admit(&headers, &ask)?;
    let include_usage = request.pointer("/stream_options/include_usage") == Some(&json!(true));
    let body = match spec.kind {
        ProviderKind::OpenAi => {
            request["model"] = json!(model);
            if stream {
                // Always asked for, so the bill is exact; passed on to the client as it comes.
                request["stream_options"] = json!({"include_usage": true});
            }
            request
        }
        ProviderKind::Anthropic => translate::chat_to_messages(&request, model, max_out),
    };
    let exchange = Exchange {
        spec,
        held,
        body,
        client: ProviderKind::OpenAi,
        stream,
        include_usage,
        estimate: (ask.prompt, max_out),
        forwarded: Vec::new(),
    };
    exchange.run(&gw.0.http).await.map_err(|e| e.for_model(provider, model))
}
