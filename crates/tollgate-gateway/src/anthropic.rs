//! `POST /anthropic/v1/messages` (also `/v1/messages`): the Anthropic Messages format as the
//! official SDK sends it, governed like every call; forwarded as is to an Anthropic upstream or
//! translated for an OpenAI-compatible one, with every answer and error in Anthropic's shape.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::engine::{Ask, Gateway, ProviderKind, prompt_estimate};
use crate::error::GatewayError;
use crate::translate;
use crate::upstream::Exchange;

/// The provider a bare model name (no `provider/` part) belongs to on this route.
pub const DEFAULT_PROVIDER: &str = "anthropic";

/// Client headers an Anthropic upstream is given as they came.
const FORWARDED: [&str; 1] = ["anthropic-beta"];

pub async fn messages(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    serve(&gw, &headers, &body).await.unwrap_or_else(GatewayError::into_anthropic_response)
}

async fn serve(gw: &Gateway, headers: &HeaderMap, body: &[u8]) -> Result<Response, GatewayError> {
    let mut request: Value = serde_json::from_slice(body).map_err(|e| GatewayError::bad_request(format!("malformed JSON: {e}")))?;
    let full = request.get("model").and_then(Value::as_str).ok_or_else(|| GatewayError::bad_request("model is required"))?.to_owned();
    let (provider, model) = full.split_once('/').unwrap_or((DEFAULT_PROVIDER, &full));
    if !request.get("messages").is_some_and(Value::is_array) {
        return Err(GatewayError::bad_request("messages must be an array"));
    }
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let max_out = request.get("max_tokens").and_then(Value::as_u64).unwrap_or(gw.0.default_max_tokens);
    let ask = Ask { provider, model, max_out, stream };
    let (spec, held, prompt) = gw.admit(headers, &ask, || prompt_estimate(&request))?;
    let (body, forwarded) = match spec.kind {
        ProviderKind::Anthropic => {
            request["model"] = json!(model);
            let forwarded = FORWARDED.iter().filter_map(|name| headers.get(*name).map(|v| (*name, v.clone()))).collect();
            (request, forwarded)
        }
        ProviderKind::OpenAi => {
            let mut chat = translate::messages_to_chat(&request, model);
            if stream {
                chat["stream_options"] = json!({"include_usage": true});
            }
            (chat, Vec::new())
        }
    };
    let exchange = Exchange {
        spec,
        held,
        body,
        client: ProviderKind::Anthropic,
        stream,
        include_usage: false,
        estimate: (prompt, max_out),
        forwarded,
    };
    exchange.run(&gw.0.http).await.map_err(|e| e.for_model(provider, model))
}
