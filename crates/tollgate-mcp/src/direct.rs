//! The front of `/mcp` and `/mcp/{slug}`, after admission: the body is read once under the cap
//! (too long → 413, unreadable → 400, in the envelope), a plain `tools/call` is answered on the
//! request's own task, and every other message goes to rmcp's service as it was sent (decision
//! 216).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetMeta, ProtocolVersion, ServerJsonRpcMessage, ServerResult};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;

use crate::call::Caller;
use crate::error::Refusal;
use crate::server::Gate;
use crate::{MAX_MCP_BODY_BYTES, McpSurface};

/// What the front needs: the surface that runs calls, and rmcp's service for the rest.
#[derive(Clone)]
pub struct Front {
    pub surface: McpSurface,
    pub rmcp: StreamableHttpService<Gate, NeverSessionManager>,
}

/// The MCP-Protocol-Version header.
const PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// Serves one admitted request.
pub async fn serve(State(front): State<Front>, request: Request) -> Response {
    if request.method() != Method::POST {
        return front.rmcp.handle(request).await.map(Body::new);
    }
    // A whole body is read before it is parsed: the cap keeps a flood from filling memory, and a
    // declared length over it is refused before anything is read.
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_MCP_BODY_BYTES as u64) {
        return Refusal::TooLarge.into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_MCP_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => return body_refusal(&error).into_response(),
    };
    let caller = parts.extensions.get::<Arc<Caller>>().cloned();
    if let (Some(caller), true) = (caller, plain_call_headers(&parts.headers))
        && let Some((id, call)) = plain_tool_call(&bytes)
    {
        let result = front.surface.call_tool(&caller, call).await;
        // The direct path only takes protocol versions before 2026-07-28, whose peers get results
        // in the older shape, as rmcp's handler writes them.
        let mut result = ServerResult::CallToolResult(result);
        result.strip_result_type_for_legacy_peer();
        result.strip_non_object_output_for_legacy_peer();
        let answer = ServerJsonRpcMessage::response(result, id);
        return json_answer(&answer);
    }
    front.rmcp.handle(Request::from_parts(parts, Body::from(bytes))).await.map(Body::new)
}

/// The refusal of a body that could not be read whole: over the cap, or broken off.
fn body_refusal(error: &axum::Error) -> Refusal {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return Refusal::TooLarge;
        }
        source = error.source();
    }
    Refusal::Invalid("the request body could not be read".into())
}

/// Whether the headers are those of a request rmcp's stateless server would hand straight to
/// its handler: a well-formed Host, JSON sent, JSON and event streams accepted (plainly, no
/// parameters), and no protocol version, or a known one from before per-request metadata and
/// standard headers.
/// Anything else goes to rmcp, which checks it and answers as it does.
fn plain_call_headers(headers: &HeaderMap) -> bool {
    let json_sent = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|value| {
        let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
        essence.trim().eq_ignore_ascii_case("application/json")
    });
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(ACCEPT).iter().map(HeaderValue::to_str) {
        let Ok(value) = value else { return false };
        for entry in value.split(',').map(str::trim) {
            if entry.contains([';', '"']) {
                return false;
            }
            json |= entry.eq_ignore_ascii_case("application/json");
            sse |= entry.eq_ignore_ascii_case("text/event-stream");
        }
    }
    let mut versions = headers.get_all(PROTOCOL_VERSION).iter();
    let version_plain = match (versions.next(), versions.next()) {
        (None, _) => true,
        (Some(value), None) => value.to_str().is_ok_and(|version| {
            version < ProtocolVersion::STANDARD_HEADERS.as_str()
                && ProtocolVersion::KNOWN_VERSIONS.iter().any(|known| known.as_str() == version)
        }),
        (Some(_), Some(_)) => false,
    };
    // rmcp refuses a request without a well-formed Host before anything else (its allow-list is
    // off here, the parse is not).
    let host_plain = headers.get(HOST).and_then(|v| v.to_str().ok()).is_some_and(|host| http::uri::Authority::try_from(host).is_ok());
    json_sent && json && sse && version_plain && host_plain
}

/// The id and parameters of `body` when it is one `tools/call` request without per-request
/// protocol metadata.
fn plain_tool_call(body: &Bytes) -> Option<(rmcp::model::RequestId, rmcp::model::CallToolRequestParams)> {
    let ClientJsonRpcMessage::Request(request) = serde_json::from_slice::<ClientJsonRpcMessage>(body).ok()? else {
        return None;
    };
    if request.request.get_meta().protocol_version().is_some() {
        return None;
    }
    match request.request {
        ClientRequest::CallToolRequest(call) => Some((request.id, call.params)),
        _ => None,
    }
}

/// A JSON-RPC answer as rmcp's JSON mode writes it.
fn json_answer(message: &ServerJsonRpcMessage) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => (StatusCode::OK, [(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "a tool result could not be written as JSON");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const PLAIN: [(&str, &str); 3] =
        [("content-type", "application/json"), ("accept", "application/json, text/event-stream"), ("host", "127.0.0.1:4000")];

    #[test]
    fn only_plain_headers_take_the_direct_path() {
        assert!(plain_call_headers(&headers(&PLAIN)));
        let [json, accept, host] = PLAIN;
        assert!(plain_call_headers(&headers(&[json, accept, host, ("mcp-protocol-version", "2025-06-18")])));
        assert!(!plain_call_headers(&headers(&[json, accept, host, ("mcp-protocol-version", "2026-07-28")])), "standard headers apply");
        assert!(!plain_call_headers(&headers(&[json, accept, host, ("mcp-protocol-version", "1999-01-01")])), "unknown version");
        assert!(!plain_call_headers(&headers(&[json, ("accept", "application/json"), host])), "event streams not accepted");
        assert!(!plain_call_headers(&headers(&[json, ("accept", "application/json;q=0, text/event-stream"), host])), "weights");
        assert!(!plain_call_headers(&headers(&[("content-type", "text/plain"), accept, host])));
        assert!(!plain_call_headers(&headers(&[json, accept])), "no Host");
        assert!(!plain_call_headers(&headers(&[json, accept, ("host", "a b")])), "a malformed Host");
    }

    #[test]
    fn only_a_tools_call_without_request_metadata_is_answered_directly() {
        let call = |text: &str| plain_tool_call(&Bytes::from(text.to_owned())).map(|(_, params)| params.name.to_string());
        assert_eq!(
            call(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fx-echo","arguments":{"a":1}}}"#).as_deref(),
            Some("fx-echo")
        );
        assert_eq!(call(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#), None);
        assert_eq!(call(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), None);
        assert_eq!(
            call(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#
            ),
            None,
            "per-request negotiation stays with rmcp"
        );
        assert_eq!(call("not json"), None);
    }
}
