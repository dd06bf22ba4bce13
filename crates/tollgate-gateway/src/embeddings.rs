//! `POST /v1/embeddings` (OpenAI format): the same governance as chat — authorize, reserve the
//! input tokens' price, call the provider, settle with the tokens it reports.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use tollgate_governance::Ask;

use crate::adapters::{Adapted, Usage};
use crate::engine::Gateway;
use crate::error::{Failure, GatewayError, RequestType};
use crate::prompt::Prompt;
use crate::upstream::{json_response, post};

pub async fn embeddings(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Result<Response, GatewayError> {
    serve(&gw, &headers, &body).await.map_err(|e| e.for_request(RequestType::Embedding))
}

async fn serve(gw: &Gateway, headers: &HeaderMap, body: &Bytes) -> Result<Response, GatewayError> {
    let arrived = std::time::Instant::now();
    let mut request: Value = serde_json::from_slice(body).map_err(|e| GatewayError::bad_request(format!("malformed JSON: {e}")))?;
    let full = request.get("model").and_then(Value::as_str).ok_or_else(|| GatewayError::bad_request("model is required"))?.to_owned();
    let (provider, model) = full
        .split_once('/')
        .ok_or_else(|| GatewayError::bad_request("model must be written as provider/model, e.g. openai/text-embedding-3-small"))?;
    let input = request
        .get("input")
        .filter(|i| i.is_string() || i.is_array())
        .ok_or_else(|| GatewayError::bad_request("input must be a string or an array"))?;
    let ask = Ask { provider, model, max_out: 0, stream: false, route: "embeddings", arrived };
    let prompt = Prompt::embeddings(body, input);
    let (target, mut held) = gw.admit(headers, &ask, &prompt, body).await?;
    let room = held.room();
    let adapter = target.spec.kind.adapter();
    let Some(path) = adapter.embeddings_path() else {
        held.release(400);
        return Err(GatewayError::bad_request(format!("provider '{provider}' does not serve embeddings")).for_model(provider, model));
    };
    request["model"] = json!(model);
    let body = Bytes::from(request.to_string());
    // A client that hangs up from here on leaves the guard to charge the reservation: the input
    // an embedding is billed for, as estimated.
    let response = match post(&gw.0.http, &target, path, &body, false, &[], Some(&held)).await {
        Ok(response) => response,
        Err(failed) => return Err(failed.settle(held).for_model(provider, model)),
    };
    let status = response.status().as_u16();
    let Ok(bytes) = response.bytes().await else {
        held.unread(502);
        return Err(GatewayError::new(Failure::UpstreamError, "the provider's answer broke off").for_model(provider, model));
    };
    if !(200..300).contains(&status) {
        // An error's body is kept when the policy keeps content; a success's vectors are not.
        held.keep_answer(&bytes);
        held.upstream_failed(status);
        return Ok(crate::limits::with(json_response(status, bytes), room));
    }
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let used = adapter.embedding_tokens(&parsed).unwrap_or_else(|| prompt.tokens());
    held.answered(Usage::plain(used, 0), status);
    Ok(crate::limits::with(json_response(status, bytes), room))
}
