//! A client's dialect joined to an upstream's: as it is when both speak one (the request
//! rewritten member by member, answers and streams passed on), otherwise through OpenAI's chat
//! format — the client's adapter to it, the upstream's adapter from it, and back for the answer.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use tollgate_core::providers::ProviderKind;

use super::{Adapted, Outgoing, Reframe, Sse};
use crate::body::RawObject;

/// The body to send upstream for a `client` request (`request` read over the raw `body`). Only a
/// translation builds a tree; a body the parser refuses is the caller's to refuse.
pub(crate) fn upstream_body(client: ProviderKind, request: &RawObject<'_>, body: &[u8], out: &Outgoing<'_>) -> serde_json::Result<Vec<u8>> {
    let upstream = out.upstream;
    if upstream == client {
        return Ok(upstream.adapter().rewrite(request, out));
    }
    let tree: Value = serde_json::from_slice(body)?;
    let chat = client.adapter().request_to_openai(tree, out.model);
    Ok(upstream.adapter().request_from_openai(chat, out).to_string().into_bytes())
}

/// The client's headers that an upstream of its own dialect takes as they came.
pub(crate) fn forwarded(client: ProviderKind, upstream: ProviderKind, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    if client != upstream {
        return Vec::new();
    }
    let names = upstream.adapter().forwarded_headers();
    names.iter().filter_map(|name| headers.get(name).map(|v| (name.clone(), v.clone()))).collect()
}

/// An upstream's plain answer for a client of another dialect.
pub(crate) fn answer(upstream: ProviderKind, client: ProviderKind, answer: &Value) -> Value {
    let pivot = upstream.adapter().answer_to_openai(answer).map_or(Cow::Borrowed(answer), Cow::Owned);
    client.adapter().answer_from_openai(&pivot).unwrap_or_else(|| pivot.into_owned())
}

/// An upstream's error body in the client's error shape. Every dialect keeps the message at
/// `error.message`; a body without one is quoted as text.
pub(crate) fn error_body(client: ProviderKind, status: u16, upstream: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(upstream).unwrap_or(Value::Null);
    let message = match parsed.pointer("/error/message").and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        None if upstream.is_empty() => format!("the provider answered with status {status}"),
        None => String::from_utf8_lossy(upstream).into_owned(),
    };
    client.adapter().error_body(status, message, &parsed)
}

/// The reframer from the upstream's stream to the client's. Through the pivot, the first stage
/// keeps the usage chunk whenever a second stage needs it.
pub(crate) fn reframe(upstream: ProviderKind, client: ProviderKind, include_usage: bool) -> Box<dyn Reframe> {
    let verbatim = || -> Box<dyn Reframe> { Box::new(Verbatim { named: client.adapter().named_events() }) };
    if upstream == client {
        return verbatim();
    }
    let from = client.adapter().stream_from_openai();
    let to = upstream.adapter().stream_to_openai(include_usage || from.is_some());
    match (to, from) {
        (Some(to), Some(from)) => Box::new(Chain(to, from)),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => verbatim(),
    }
}

/// Passes events on unchanged, with their names for a dialect that names them.
#[derive(Debug)]
struct Verbatim {
    named: bool,
}

impl Reframe for Verbatim {
    fn reframe(&mut self, event: &str, data: &str) -> Vec<Sse> {
        let event = (self.named && !event.is_empty() && event != "message").then(|| event.to_owned());
        vec![Sse { event, data: data.to_owned() }]
    }
}

/// Two reframers in a row: the upstream's to the pivot, then the pivot to the client's.
struct Chain(Box<dyn Reframe>, Box<dyn Reframe>);

impl Reframe for Chain {
    fn reframe(&mut self, event: &str, data: &str) -> Vec<Sse> {
        let Chain(first, second) = self;
        first.reframe(event, data).into_iter().flat_map(|sse| second.reframe(sse.event.as_deref().unwrap_or_default(), &sse.data)).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn same_dialect_streams_pass_verbatim_named_where_the_dialect_names_them() {
        let mut anthropic = reframe(ProviderKind::Anthropic, ProviderKind::Anthropic, false);
        assert_eq!(anthropic.reframe("ping", "{}"), vec![Sse { event: Some("ping".into()), data: "{}".into() }]);
        let mut openai = reframe(ProviderKind::OpenAi, ProviderKind::OpenAi, false);
        assert_eq!(openai.reframe("message", "[DONE]"), vec![Sse::data("[DONE]")]);
    }

    #[test]
    fn upstream_errors_are_reshaped_for_the_client() {
        let openai = br#"{"error": {"message": "bad model", "type": "invalid_request_error"}}"#;
        assert_eq!(
            error_body(ProviderKind::Anthropic, 404, openai),
            json!({"type": "error", "error": {"type": "not_found_error", "message": "bad model"}})
        );
        let anthropic = br#"{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}"#;
        assert_eq!(error_body(ProviderKind::OpenAi, 529, anthropic)["error"]["type"], "overloaded_error");
        assert_eq!(error_body(ProviderKind::OpenAi, 502, b"")["error"]["message"], "the provider answered with status 502");
    }

    #[test]
    fn only_a_client_of_the_upstreams_own_dialect_has_its_headers_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-beta", HeaderValue::from_static("tools-2024"));
        headers.insert("x-other", HeaderValue::from_static("no"));
        let passed = forwarded(ProviderKind::Anthropic, ProviderKind::Anthropic, &headers);
        assert_eq!(passed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["anthropic-beta"]);
        assert!(forwarded(ProviderKind::Anthropic, ProviderKind::OpenAi, &headers).is_empty());
    }
}
