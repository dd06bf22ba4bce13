//! The rest of the Anthropic surface an SDK reaches for: `GET /anthropic/v1/models` (what the key
//! may use, in Anthropic's list shape) and `POST /anthropic/v1/messages/count_tokens` (asked of an
//! Anthropic upstream, or counted here with cl100k for any other kind). Neither is billed
//! or counted against limits; both need a key that may use the model.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use axum::extract::rejection::BytesRejection;

use crate::adapters::{Adapted, bridge};
use crate::anthropic::{CLIENT, DEFAULT_PROVIDER, read_body};
use crate::body::RawObject;

use crate::engine::Gateway;
use crate::error::GatewayError;
use crate::models::allowed_models;
use crate::prompt::estimate_off_worker;
use crate::upstream::{self, json_response};

/// Anthropic's catalog gives each model a creation time. Tollgate knows it only where the model's
/// id carries its release date (`claude-3-5-sonnet-20241022`, `gpt-4o-2024-08-06`); otherwise it
/// says so with the epoch rather than inventing a date.
const UNKNOWN_CREATED_AT: &str = "1970-01-01T00:00:00Z";

/// The creation time of `id`: the date its name ends with, at midnight UTC, or the epoch.
fn created_at(id: &str) -> String {
    // The last `len` characters, after a hyphen, read as a date in `format`.
    let dated = |len: usize, format: &str| {
        let at = id.len().checked_sub(len).filter(|at| *at > 0 && id.as_bytes()[*at - 1] == b'-')?;
        let suffix = id.get(at..).filter(|s| s.bytes().all(|b| b.is_ascii_digit() || b == b'-'))?;
        chrono::NaiveDate::parse_from_str(suffix, format).ok()
    };
    dated(8, "%Y%m%d")
        .or_else(|| dated(10, "%Y-%m-%d"))
        .map_or_else(|| UNKNOWN_CREATED_AT.to_owned(), |date| format!("{}T00:00:00Z", date.format("%Y-%m-%d")))
}

pub async fn models(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    match allowed_models(&gw, &headers, None) {
        Ok(ids) => {
            // A bare name on this route means an `anthropic/…` model, so those are listed bare.
            let data: Vec<Value> = ids
                .into_iter()
                .map(|(p, m)| if p == DEFAULT_PROVIDER { m } else { format!("{p}/{m}") })
                .map(|id| json!({"type": "model", "created_at": created_at(&id), "display_name": id, "id": id}))
                .collect();
            let (first, last) = (data.first().map(|m| m["id"].clone()), data.last().map(|m| m["id"].clone()));
            Json(json!({"data": data, "has_more": false, "first_id": first, "last_id": last})).into_response()
        }
        Err(e) => e.into_anthropic_response(),
    }
}

pub async fn count_tokens(State(gw): State<Gateway>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match read_body(body) {
        Ok(body) => count(&gw, &headers, &body).await.unwrap_or_else(GatewayError::into_anthropic_response),
        Err(e) => e.into_anthropic_response(),
    }
}

async fn count(gw: &Gateway, headers: &HeaderMap, body: &Bytes) -> Result<Response, GatewayError> {
    let request = RawObject::parse(body)?;
    let full = request.str("model").ok_or_else(|| GatewayError::bad_request("model is required"))?;
    let (provider, model) = full.split_once('/').unwrap_or((DEFAULT_PROVIDER, &full));
    if !request.is_array("messages") {
        return Err(GatewayError::bad_request("messages must be an array"));
    }
    let target = gw.authorized_target(headers, provider, model)?;
    // Asked of an upstream that counts requests in this route's dialect, else counted here.
    let upstream = target.spec.kind;
    let Some(path) = upstream.adapter().count_tokens_path().filter(|_| upstream == CLIENT) else {
        // Up to seconds of a core for the largest bodies: never on a request worker.
        let tokens = estimate_off_worker(body.clone()).await?;
        return Ok(Json(json!({"input_tokens": tokens})).into_response());
    };
    let name = serde_json::to_string(model).unwrap_or_default();
    let forwarded = bridge::forwarded(CLIENT, upstream, headers);
    let upstream_body = Bytes::from(request.encode(&[("model", Some(&name))]));
    let answer = upstream::post(&gw.0.http, &target, path, &upstream_body, false, &forwarded, None).await?;
    let status = answer.status().as_u16();
    let bytes = answer.bytes().await.unwrap_or_default();
    Ok(json_response(status, bytes))
}

#[cfg(test)]
mod tests {
    use super::created_at;

    #[test]
    fn a_model_is_dated_by_the_release_date_its_id_ends_with_or_else_the_epoch() {
        assert_eq!(created_at("claude-3-5-sonnet-20241022"), "2024-10-22T00:00:00Z");
        assert_eq!(created_at("openai/gpt-4o-2024-08-06"), "2024-08-06T00:00:00Z");
        for undated in ["claude-mock", "claude-sonnet-4", "claude-x-20241399", "x20241022", "20241022", "claude-2024-1-1", ""] {
            assert_eq!(created_at(undated), "1970-01-01T00:00:00Z", "{undated}");
        }
    }
}
