//! What each provider kind means on the wire for a call: the chat endpoint under the base URL
//! and the header that carries the provider key. Translation between the kinds' formats is in
//! `translate`, usage reading in `usage`.

use axum::http::{HeaderName, HeaderValue, header};
use tollgate_core::auth::Secret;
use tollgate_core::providers::ProviderKind;

/// The chat endpoint under a provider's base URL.
pub fn chat_path(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "/chat/completions",
        ProviderKind::Anthropic => "/messages",
    }
}

/// The header that carries a provider key for this kind of API, marked sensitive so it is never
/// logged; `None` when the key cannot be a header value.
pub fn auth_header(kind: ProviderKind, key: &Secret) -> Option<(HeaderName, HeaderValue)> {
    let (name, mut value) = match kind {
        ProviderKind::OpenAi => (header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok()?),
        ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), HeaderValue::from_str(key.expose()).ok()?),
    };
    value.set_sensitive(true);
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_key_becomes_the_sensitive_header_its_kind_expects_or_none_if_it_cannot() {
        let key = Secret::new("sk-provider".to_owned());
        let openai = auth_header(ProviderKind::OpenAi, &key);
        assert_eq!(openai.as_ref().map(|(n, v)| (n.as_str(), v.to_str().ok())), Some(("authorization", Some("Bearer sk-provider"))));
        assert!(openai.is_some_and(|(_, v)| v.is_sensitive()), "kept out of logs");
        let anthropic = auth_header(ProviderKind::Anthropic, &key);
        assert_eq!(anthropic.as_ref().map(|(n, v)| (n.as_str(), v.to_str().ok())), Some(("x-api-key", Some("sk-provider"))));
        assert!(anthropic.is_some_and(|(_, v)| v.is_sensitive()));
        assert!(auth_header(ProviderKind::OpenAi, &Secret::new("line\nbreak".to_owned())).is_none());
    }
}
