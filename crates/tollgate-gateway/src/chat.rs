//! `POST /v1/chat/completions` (OpenAI format): read the request, have it admitted (authorize,
//! reserve), send it to the provider — as is to an OpenAI-compatible one, translated to an
//! Anthropic one — and relay the answer in OpenAI's format, plain or streamed, settling the bill.
//! On failure the request's `fallbacks` are tried in order; if all fail the first answer stands.

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
    let request: Value = serde_json::from_slice(&body).map_err(|e| GatewayError::bad_request(format!("malformed JSON: {e}")))?;
    let primary = request.get("model").and_then(Value::as_str).ok_or_else(|| GatewayError::bad_request("model is required"))?.to_owned();
    if !request.get("messages").is_some_and(Value::is_array) {
        return Err(GatewayError::bad_request("messages must be an array"));
    }
    let fallbacks = fallbacks(&request);
    if fallbacks.is_empty() {
        // The common case: one attempt, no copy of the body.
        return attempt(&gw, &headers, request, &primary).await;
    }
    let mut first_failure = None;
    for candidate in std::iter::once(primary).chain(fallbacks) {
        match attempt(&gw, &headers, request.clone(), &candidate).await {
            Ok(response) if response.status().is_success() => return Ok(response),
            failed => {
                if first_failure.is_none() {
                    first_failure = Some(failed);
                }
            }
        }
    }
    first_failure.unwrap_or_else(|| Err(GatewayError::bad_request("model is required")))
}

/// The `fallbacks` of a request, as `provider/model` names (strings or `{provider, model}` objects).
fn fallbacks(request: &Value) -> Vec<String> {
    let items = request.get("fallbacks").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    items
        .iter()
        .filter_map(|f| match f {
            Value::String(name) => Some(name.clone()),
            Value::Object(o) => Some(format!("{}/{}", o.get("provider")?.as_str()?, o.get("model")?.as_str()?)),
            _ => None,
        })
        .collect()
}

/// One governed try at `full` (`provider/model`): admitted, reserved and charged on its own, so a
/// fallback passes governance again and a failed try charges nothing.
async fn attempt(gw: &Gateway, headers: &HeaderMap, mut request: Value, full: &str) -> Result<Response, GatewayError> {
    let (provider, model) = full
        .split_once('/')
        .ok_or_else(|| GatewayError::bad_request("model must be written as provider/model, e.g. openai/gpt-4o-mini"))?;
    if let Some(o) = request.as_object_mut() {
        o.remove("fallbacks");
    }
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let max_out = request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(gw.0.default_max_tokens);
    let ask = Ask { provider, model, max_out, stream };
    let (spec, held, prompt) = gw.admit(headers, &ask, || prompt_estimate(&request))?;
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
        estimate: (prompt, max_out),
        forwarded: Vec::new(),
    };
    exchange.run(&gw.0.http).await.map_err(|e| e.for_model(provider, model))
}
