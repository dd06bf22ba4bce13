//! `POST /v1/chat/completions`: authorize, reserve, call the provider, settle — plain answers
//! and streams alike. A stream's usage comes from the provider's usage chunk; a stream the client
//! abandons is charged for the tokens it had received.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use tollgate_core::money::Money;
use tollgate_core::usage::RequestLog;

use crate::authorize::{Estimate, authorize, presented_key};
use crate::engine::{Gateway, Held, count_tokens, refusal};
use crate::error::GatewayError;
use crate::pricing::UnpricedModels;
use crate::upstream;

/// Tokens of the prompt as the provider will count them, approximately (cl100k plus framing).
fn prompt_tokens(request: &Value) -> u64 {
    let messages = request.get("messages").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let text: String = messages.iter().map(|m| m.get("content").map_or(String::new(), ToString::to_string)).collect::<Vec<_>>().join("\n");
    count_tokens(&text) + 4 * u64::try_from(messages.len()).unwrap_or(0) + 3
}

fn usage_of(value: &Value) -> Option<(u64, u64)> {
    let usage = value.get("usage")?;
    Some((usage.get("prompt_tokens")?.as_u64()?, usage.get("completion_tokens")?.as_u64()?))
}

pub async fn chat_completions(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Result<Response, GatewayError> {
    let mut request: Value = serde_json::from_slice(&body).map_err(|e| GatewayError::bad_request(format!("malformed JSON: {e}")))?;
    let full = request.get("model").and_then(Value::as_str).ok_or_else(|| GatewayError::bad_request("model is required"))?.to_owned();
    let (provider, model) = full
        .split_once('/')
        .ok_or_else(|| GatewayError::bad_request("model must be written as provider/model, e.g. openai/gpt-4o-mini"))?;
    if !request.get("messages").is_some_and(Value::is_array) {
        return Err(GatewayError::bad_request("messages must be an array"));
    }
    let spec =
        gw.0.providers
            .get(provider)
            .cloned()
            .ok_or_else(|| GatewayError::bad_request(format!("provider '{provider}' is not configured")))?;
    let now = tollgate_core::clock::now();
    let snapshot = gw.0.snapshot.load();
    let grant = authorize(&snapshot, presented_key(&headers), provider, model, now).map_err(|e| e.for_model(provider, model))?;
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let max_out = request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(gw.0.default_max_tokens);
    let prompt = prompt_tokens(&request);
    let price = gw.0.pricing.price(provider, model);
    if price.is_none() && grant.has_budgets() && gw.0.pricing.unpriced == UnpricedModels::Deny {
        return Err(GatewayError::new(
            StatusCode::FORBIDDEN,
            "model_unpriced",
            format!("no price is known for '{full}', so its budget cannot be charged; add one under [pricing]"),
        )
        .for_model(provider, model));
    }
    let cost = price.map_or(Money::ZERO, |p| p.cost(prompt, max_out));
    let estimate = Estimate { cost_micros: u64::try_from(cost.micros()).unwrap_or(0), tokens: prompt + max_out };
    let claims = grant.claims(&snapshot, estimate, now);
    let reservation = gw.0.counters.reserve(&claims, now).map_err(|d| refusal(&d, now).for_model(provider, model))?;
    let log = RequestLog {
        created_at: now,
        user_id: Some(grant.user_id.clone()),
        virtual_key_id: Some(grant.key_id.clone()),
        provider: provider.to_owned(),
        model: model.to_owned(),
        prompt_tokens: 0,
        completion_tokens: 0,
        cost: Money::ZERO,
        status: 0,
        latency_ms: 0,
        streamed: stream,
    };
    let held = Held::new(gw.clone(), reservation, price, log);
    request["model"] = json!(model);
    if stream {
        request["stream_options"] = json!({"include_usage": true});
    }
    let response =
        upstream::post(&gw.0.http, &spec, "/chat/completions", &request, stream).await.map_err(|e| e.for_model(provider, model))?;
    let status = response.status();
    if !status.is_success() {
        let bytes = response.bytes().await.unwrap_or_default();
        held.finish(None, status.as_u16());
        return Ok(passthrough(status.as_u16(), bytes));
    }
    if stream {
        return Ok(stream_response(response, held, prompt));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|_| GatewayError::new(StatusCode::BAD_GATEWAY, "upstream_error", "the provider's answer broke off"))?;
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    // A successful answer without usage data is charged at the estimate: never less than billed.
    held.finish(Some(usage_of(&parsed).unwrap_or((prompt, max_out))), status.as_u16());
    Ok(passthrough(status.as_u16(), bytes))
}

fn passthrough(status: u16, bytes: Bytes) -> Response {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Watches a stream go by: the usage chunk if the provider sends one, else the text delivered.
struct Tap {
    held: Held,
    usage: Option<(u64, u64)>,
    text: String,
    prompt: u64,
    finished: bool,
}

impl Tap {
    fn observe(&mut self, data: &str) {
        if data.trim() == "[DONE]" {
            self.finished = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else { return };
        if let Some(usage) = usage_of(&chunk) {
            self.usage = Some(usage);
        }
        let deltas = chunk.get("choices").and_then(Value::as_array).into_iter().flatten();
        for delta in deltas.filter_map(|c| c.pointer("/delta/content").and_then(Value::as_str)) {
            self.text.push_str(delta);
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let usage = self.usage.unwrap_or_else(|| (self.prompt, count_tokens(&self.text)));
        self.held.settle_stream(usage, if self.finished { 200 } else { 499 });
    }
}

fn stream_response(response: reqwest::Response, held: Held, prompt: u64) -> Response {
    let tap = Arc::new(Mutex::new(Tap { held, usage: None, text: String::new(), prompt, finished: false }));
    let events = response.bytes_stream().eventsource().map(move |event| {
        let event = event.map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Ok(mut tap) = tap.lock() {
            tap.observe(&event.data);
        }
        Ok::<Event, std::io::Error>(Event::default().data(event.data))
    });
    Sse::new(events).into_response()
}
