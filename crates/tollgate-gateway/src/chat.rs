//! `POST /v1/chat/completions` (OpenAI format): read the request, have it admitted (authorize,
//! reserve), send it to the provider — as is to an OpenAI-compatible one, translated by the
//! adapters for another kind — and relay the answer in OpenAI's format, plain or streamed,
//! settling the bill. On failure the request's `fallbacks` are tried in order; if all fail the
//! first answer stands.

use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::adapters::{Outgoing, bridge};
use crate::body::{RawObject, elements};
use tollgate_core::providers::ProviderKind;
use tollgate_governance::Ask;

use crate::engine::Gateway;
use crate::error::GatewayError;
use crate::prompt::Prompt;
use crate::upstream::Exchange;

/// The dialect this route's clients speak.
const CLIENT: ProviderKind = ProviderKind::OpenAi;

pub async fn chat_completions(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Result<Response, GatewayError> {
    let arrived = Instant::now();
    let request = RawObject::parse(&body)?;
    let primary = request.str("model").ok_or_else(|| GatewayError::bad_request("model is required"))?;
    if !request.is_array("messages") {
        return Err(GatewayError::bad_request("messages must be an array"));
    }
    let shape = Shape::read(&request, gw.0.default_max_tokens, arrived)?;
    let fallbacks = fallbacks(request.get("fallbacks"), &primary)?;
    if fallbacks.is_empty() {
        return attempt(&gw, &headers, &body, &request, shape, &primary).await;
    }
    let mut first_failure = None;
    for candidate in std::iter::once(primary.into_owned()).chain(fallbacks) {
        match attempt(&gw, &headers, &body, &request, shape, &candidate).await {
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

/// What the request asks of every try: streamed or not, the output tokens it allows per choice
/// (the default when it sets none) and how many choices (`n`). Read strictly, once: a value
/// governance cannot read is a 400, not an estimate at the default while the provider honours
/// something larger.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// When the request arrived (each try's gateway overhead counts from here).
    arrived: Instant,
    stream: bool,
    max_out: u64,
    choices: u64,
    /// The request set its own output limit; otherwise the default one is sent upstream.
    capped: bool,
}

impl Shape {
    fn read(request: &RawObject<'_>, default_max_tokens: u64, arrived: Instant) -> Result<Shape, GatewayError> {
        let stream = request.switch("stream")?.unwrap_or(false);
        let newer = request.token_count("max_completion_tokens")?;
        let older = request.token_count("max_tokens")?;
        let choices = request.positive("n", "a whole number of choices (1 or more)")?.unwrap_or(1);
        let given = newer.or(older);
        Ok(Shape { arrived, stream, max_out: given.unwrap_or(default_max_tokens), choices, capped: given.is_some() })
    }

    /// Output tokens the whole answer may hold: every choice is billed.
    fn total_out(self) -> u64 {
        self.max_out.saturating_mul(self.choices)
    }
}

/// At most this many fallbacks a request (after removing repeats): each is an upstream call.
pub const MAX_FALLBACKS: usize = 5;

/// The `fallbacks` of a request, as `provider/model` names (strings or `{provider, model}`
/// objects), repeats (and the primary) left out; anything else, or more than `MAX_FALLBACKS`, is
/// a 400 rather than an unbounded series of upstream calls.
fn fallbacks(raw: Option<&RawValue>, primary: &str) -> Result<Vec<String>, GatewayError> {
    if raw.is_some_and(|r| r.get() != "null" && !r.get().starts_with('[')) {
        return Err(GatewayError::bad_request("fallbacks must be an array of provider/model names"));
    }
    let mut names: Vec<String> = Vec::new();
    for entry in elements(raw) {
        let name = match serde_json::from_str::<Value>(entry.get()) {
            Ok(Value::String(name)) => Some(name),
            Ok(Value::Object(o)) => match (o.get("provider").and_then(Value::as_str), o.get("model").and_then(Value::as_str)) {
                (Some(provider), Some(model)) => Some(format!("{provider}/{model}")),
                _ => None,
            },
            _ => None,
        };
        let name = name.ok_or_else(|| {
            GatewayError::bad_request("each fallback must be a \"provider/model\" string or a {\"provider\", \"model\"} object")
        })?;
        if name != primary && !names.contains(&name) {
            names.push(name);
        }
    }
    if names.len() > MAX_FALLBACKS {
        return Err(GatewayError::bad_request(format!("at most {MAX_FALLBACKS} different fallbacks may be given, not {}", names.len())));
    }
    Ok(names)
}

/// One governed try at `full` (`provider/model`): admitted, reserved and charged on its own, so a
/// fallback passes governance again and a failed try charges nothing.
async fn attempt(
    gw: &Gateway,
    headers: &HeaderMap,
    body: &Bytes,
    request: &RawObject<'_>,
    shape: Shape,
    full: &str,
) -> Result<Response, GatewayError> {
    let (provider, model) = full
        .split_once('/')
        .ok_or_else(|| GatewayError::bad_request("model must be written as provider/model, e.g. openai/gpt-4o-mini"))?;
    let Shape { stream, max_out, capped, .. } = shape;
    let ask = Ask { provider, model, max_out: shape.total_out(), stream, route: "chat_completions", arrived: shape.arrived };
    let prompt = Prompt::chat(body, request);
    let (target, held) = gw.admit(headers, &ask, &prompt, body).await?;
    let include_usage = request.get("stream_options").is_some_and(|raw| RawObject::of(raw).bool("include_usage") == Some(true));
    let out = Outgoing { upstream: target.spec.kind, model, max_out, capped, stream, output_cap: target.spec.output_cap_member() };
    // A body the parser refuses for translation (nested deeper than it allows) is refused, never
    // translated as if it were empty; nothing was sent, so nothing is charged.
    let upstream_body = match bridge::upstream_body(CLIENT, request, body, &out) {
        Ok(upstream_body) => upstream_body,
        Err(e) => {
            held.release(400);
            return Err(GatewayError::bad_request(format!("malformed JSON: {e}")).for_model(provider, model));
        }
    };
    let exchange = Exchange {
        target,
        held,
        body: Bytes::from(upstream_body),
        client: CLIENT,
        stream,
        include_usage,
        estimate: (prompt, shape.total_out()),
        forwarded: Vec::new(),
    };
    exchange.run(gw).await.map_err(|e| e.for_model(provider, model))
}
