//! Usage read off a provider's answer or stream event, by the provider's kind: OpenAI's
//! `prompt_tokens` (with its cached part) or Anthropic's input, output and prompt-cache counts.

use serde::Deserialize;
use serde_json::Value;

use tollgate_core::providers::ProviderKind;
pub use tollgate_governance::usage::Usage;

/// Takes the cache counts an Anthropic `usage` object reports into `into` (absent members keep
/// their value: a stream reports them once at the start and again, cumulatively, at the end).
pub fn read_anthropic_cache(into: &mut Usage, usage: &Value) {
    if let Ok(wire) = Wire::deserialize(usage) {
        take_cache(into, &wire);
    }
}

fn take_cache(into: &mut Usage, wire: &Wire) {
    match &wire.cache_creation {
        Some(split) => {
            into.cache_write = split.ephemeral_5m_input_tokens.unwrap_or(into.cache_write);
            into.cache_write_1h = split.ephemeral_1h_input_tokens.unwrap_or(into.cache_write_1h);
        }
        None => into.cache_write = wire.cache_creation_input_tokens.unwrap_or(into.cache_write),
    }
    into.cache_read = wire.cache_read_input_tokens.unwrap_or(into.cache_read);
}

/// A `usage` object as either kind of provider writes it, read without building a tree.
#[derive(Debug, Default, Deserialize)]
struct Wire {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheSplit>,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CacheSplit {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

impl Wire {
    fn usage(&self, kind: ProviderKind) -> Option<Usage> {
        match kind {
            ProviderKind::OpenAi => {
                let prompt = self.prompt_tokens?;
                let cached = self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0).min(prompt);
                Some(Usage { input: prompt - cached, output: self.completion_tokens?, cached_input: cached, ..Usage::default() })
            }
            ProviderKind::Anthropic => {
                let mut out = Usage::plain(self.input_tokens?, self.output_tokens?);
                take_cache(&mut out, self);
                Some(out)
            }
        }
    }
}

/// The usage a plain answer reports (`None` when it reports none).
pub fn usage_in(kind: ProviderKind, answer: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Answer {
        usage: Option<Wire>,
    }
    serde_json::from_slice::<Answer>(answer).ok()?.usage?.usage(kind)
}

/// The usage in a provider's `usage` object.
pub fn usage_from(kind: ProviderKind, usage: &Value) -> Option<Usage> {
    Wire::deserialize(usage).ok()?.usage(kind)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn anthropic_cache_tokens_are_read_apart_from_input() {
        let answer =
            json!({"usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000}});
        let usage = usage_in(ProviderKind::Anthropic, answer.to_string().as_bytes());
        assert_eq!(usage, Some(Usage { input: 10, output: 5, cache_write: 200, cache_read: 3000, ..Usage::default() }));
        assert_eq!(usage.map(|u| (u.prompt(), u.tokens())), Some((3210, 3215)));
        let split = json!({"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}});
        let usage = usage_from(ProviderKind::Anthropic, &split);
        assert_eq!(usage.map(|u| (u.cache_write, u.cache_write_1h)), Some((10, 20)), "the split wins over the total");
    }

    #[test]
    fn openai_cached_prompt_tokens_are_a_part_of_the_prompt_and_missing_usage_is_none() {
        let answer = json!({"usage": {"prompt_tokens": 7, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}});
        let usage = usage_in(ProviderKind::OpenAi, answer.to_string().as_bytes());
        assert_eq!(usage, Some(Usage { input: 3, output: 2, cached_input: 4, ..Usage::default() }));
        assert_eq!(usage.map(|u| u.prompt()), Some(7), "prompt_tokens already counts the cached ones");
        let odd = json!({"prompt_tokens": 2, "completion_tokens": 0, "prompt_tokens_details": {"cached_tokens": 9}});
        assert_eq!(usage_from(ProviderKind::OpenAi, &odd).map(|u| (u.input, u.cached_input)), Some((0, 2)), "never more cached than sent");
        assert_eq!(usage_in(ProviderKind::OpenAi, b"{\"id\": 1}"), None);
    }
}
