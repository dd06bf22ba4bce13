//! `POST /anthropic/v1/messages` (also `/v1/messages`): the Anthropic Messages format as the
//! official SDK sends it, governed like every call; forwarded as is to an Anthropic upstream or
//! translated by the adapters for another kind, with every answer and error in Anthropic's shape.

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;

use crate::adapters::{Outgoing, bridge};
use crate::body::RawObject;
use tollgate_core::providers::ProviderKind;
use tollgate_governance::Ask;

use crate::engine::Gateway;
use crate::error::{Failure, GatewayError};
use crate::prompt::Prompt;
use crate::upstream::Exchange;

/// The provider a bare model name (no `provider/` part) belongs to on this route.
pub const DEFAULT_PROVIDER: &str = "anthropic";

/// The dialect this route's clients speak.
pub(crate) const CLIENT: ProviderKind = ProviderKind::Anthropic;

pub async fn messages(State(gw): State<Gateway>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match read_body(body) {
        Ok(body) => serve(&gw, &headers, &body).await.unwrap_or_else(GatewayError::into_anthropic_response),
        Err(e) => e.into_anthropic_response(),
    }
}

/// The body of an Anthropic-format request, or the refusal in a shape the route can answer in:
/// over the limit is Anthropic's 413 `request_too_large`, a body that could not be read a 400.
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, GatewayError> {
    body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            GatewayError::new(
                Failure::RequestTooLarge,
                format!("request body exceeds the limit of {} bytes", crate::MAX_INFERENCE_BODY_BYTES),
            )
        } else {
            GatewayError::bad_request(format!("the request body could not be read: {}", rejection.body_text()))
        }
    })
}

async fn serve(gw: &Gateway, headers: &HeaderMap, body: &Bytes) -> Result<Response, GatewayError> {
    let arrived = std::time::Instant::now();
    let request = RawObject::parse(body)?;
    let full = request.str("model").ok_or_else(|| GatewayError::bad_request("model is required"))?;
    let (provider, model) = full.split_once('/').unwrap_or((DEFAULT_PROVIDER, &full));
    if !request.is_array("messages") {
        return Err(GatewayError::bad_request("messages must be an array"));
    }
    // Read strictly: governance reserves by these, so a value it cannot read is a 400.
    let stream = request.switch("stream")?.unwrap_or(false);
    let given = request.token_count("max_tokens")?;
    let max_out = given.unwrap_or(gw.0.default_max_tokens);
    let ask = Ask { provider, model, max_out, stream, route: "messages", arrived };
    let prompt = Prompt::chat(body, &request);
    let (target, held) = gw.admit(headers, &ask, &prompt, body).await?;
    let output_cap = target.spec.output_cap_member();
    let out = Outgoing { upstream: target.spec.kind, model, max_out, capped: given.is_some(), stream, output_cap };
    // A body the parser refuses for translation (nested deeper than it allows, a number out of
    // range) is refused, never translated as if it were empty; nothing was sent, so nothing is
    // charged.
    let upstream_body = match bridge::upstream_body(CLIENT, &request, body, &out) {
        Ok(upstream_body) => upstream_body,
        Err(e) => {
            held.release(400);
            return Err(GatewayError::bad_request(format!("malformed JSON: {e}")).for_model(provider, model));
        }
    };
    let forwarded = bridge::forwarded(CLIENT, target.spec.kind, headers);
    let exchange = Exchange {
        target,
        held,
        body: Bytes::from(upstream_body),
        client: CLIENT,
        stream,
        include_usage: false,
        estimate: (prompt, max_out),
        forwarded,
    };
    exchange.run(gw).await.map_err(|e| e.for_model(provider, model))
}
