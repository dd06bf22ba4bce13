//! Provider adapters: everything a provider kind means on the wire, one file per kind, reached
//! through `ProviderKind::adapter` (the one `match` on the kind in this crate). `bridge` joins a
//! client's dialect to an upstream's through OpenAI's chat format, the pivot every adapter
//! translates to and from.

mod anthropic;
pub(crate) mod bridge;
mod openai;

use axum::http::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use tollgate_core::auth::Secret;
use tollgate_core::providers::ProviderKind;
pub(crate) use tollgate_governance::usage::Usage;

use crate::body::RawObject;

/// The adapter of each provider kind: a new kind is one arm here and one file beside this one.
pub(crate) trait Adapted {
    fn adapter(self) -> &'static dyn Adapter;
}

impl Adapted for ProviderKind {
    fn adapter(self) -> &'static dyn Adapter {
        match self {
            ProviderKind::OpenAi => &openai::OpenAi,
            ProviderKind::Anthropic => &anthropic::Anthropic,
        }
    }
}

/// What one provider kind does on the wire. Stateless; one `static` value per kind, so choosing
/// it per request costs a `match` and calls through it no allocation.
pub(crate) trait Adapter: Sync + std::fmt::Debug {
    /// The chat endpoint under the provider's base URL.
    fn chat_path(&self) -> &'static str;

    /// The embeddings endpoint, if the kind serves embeddings.
    fn embeddings_path(&self) -> Option<&'static str> {
        None
    }

    /// The token-count endpoint, if the kind counts tokens for a request in its own dialect.
    fn count_tokens_path(&self) -> Option<&'static str> {
        None
    }

    /// The header that carries the provider key, unmarked (`auth_header` marks it); `None` when
    /// the key cannot be a header value.
    fn credential(&self, key: &str) -> Option<(HeaderName, HeaderValue)>;

    /// The header carrying `key`, marked sensitive so it is never logged.
    fn auth_header(&self, key: &Secret) -> Option<(HeaderName, HeaderValue)> {
        let (name, mut value) = self.credential(key.expose())?;
        value.set_sensitive(true);
        Some((name, value))
    }

    /// Headers sent with every call to a provider of this kind.
    fn fixed_headers(&self) -> &'static [(HeaderName, HeaderValue)] {
        &[]
    }

    /// Headers of a client speaking this dialect that reach an upstream of this kind as they came.
    fn forwarded_headers(&self) -> &'static [HeaderName] {
        &[]
    }

    /// The dialect's streams name their events (a client dispatches on `event:`).
    fn named_events(&self) -> bool {
        false
    }

    /// The usage a plain answer reports (`None` when it reports none).
    fn usage_in(&self, answer: &[u8]) -> Option<Usage>;

    /// The usage in the dialect's `usage` object.
    fn usage_from(&self, usage: &Value) -> Option<Usage>;

    /// The input tokens an embeddings answer reports.
    fn embedding_tokens(&self, _answer: &Value) -> Option<u64> {
        None
    }

    /// Takes what one stream event (its `data`) says about usage and the text delivered.
    fn observe(&self, data: &str, seen: &mut Seen);

    /// A request already in this dialect, rewritten member by member for the upstream (no tree).
    fn rewrite(&self, request: &RawObject<'_>, out: &Outgoing<'_>) -> Vec<u8>;

    /// A request in this dialect as an OpenAI chat request for `model` (the pivot).
    fn request_to_openai(&self, request: Value, model: &str) -> Value;

    /// An OpenAI chat request as this dialect's request for the upstream.
    fn request_from_openai(&self, chat: Value, out: &Outgoing<'_>) -> Value;

    /// A plain answer in this dialect as an OpenAI chat completion (`None`: it already is one).
    fn answer_to_openai(&self, answer: &Value) -> Option<Value>;

    /// An OpenAI chat completion as this dialect's answer (`None`: it already is one).
    fn answer_from_openai(&self, completion: &Value) -> Option<Value>;

    /// A reframer from this dialect's stream to OpenAI chunks (`None`: it already is one); with
    /// `include_usage` it closes with the usage chunk.
    fn stream_to_openai(&self, include_usage: bool) -> Option<Box<dyn Reframe>>;

    /// A reframer from OpenAI chunks to this dialect's stream (`None`: it already is one).
    fn stream_from_openai(&self) -> Option<Box<dyn Reframe>>;

    /// An error body in this dialect's shape for a client, from an upstream's `status`, its
    /// `message` and its parsed body.
    fn error_body(&self, status: u16, message: String, upstream: &Value) -> Value;
}

/// What a request takes to its upstream besides its content.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// The upstream's kind.
    pub upstream: ProviderKind,
    /// The model without its provider part.
    pub model: &'a str,
    /// The output tokens reserved for; sent as the limit when the client set none.
    pub max_out: u64,
    /// The client set its own output limit.
    pub capped: bool,
    pub stream: bool,
    /// The member that limits output for an OpenAI-format upstream (`ProviderSpec::output_cap_member`).
    pub output_cap: &'static str,
}

/// What a stream has told so far: the usage it reported, the text it delivered (counted when it
/// reports none), and whether it ended properly.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub input: Option<u64>,
    pub output: Option<u64>,
    /// Prompt-cache counts reported (the other fields of `Usage` unused).
    pub cache: Usage,
    pub text: String,
    pub finished: bool,
}

/// One server-sent event for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sse {
    /// The `event:` name (Anthropic clients dispatch on it; OpenAI streams have none).
    pub event: Option<String>,
    pub data: String,
}

impl Sse {
    pub(crate) fn data(data: impl Into<String>) -> Sse {
        Sse { event: None, data: data.into() }
    }

    /// An event whose `type` is also its name.
    pub(crate) fn typed(kind: &str, mut data: Value) -> Sse {
        data["type"] = json!(kind);
        Sse { event: Some(kind.to_owned()), data: data.to_string() }
    }
}

/// Turns each upstream event (name and data) into the events the client is sent.
pub trait Reframe: Send {
    fn reframe(&mut self, event: &str, data: &str) -> Vec<Sse>;
}

#[cfg(test)]
mod tests;
