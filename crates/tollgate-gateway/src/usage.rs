//! What a call consumed, as the provider bills it: uncached input, output, and Anthropic's
//! prompt-cache tokens (written at 1.25× or, for the one-hour cache, 2× the input price; read at 0.1×).

use serde::Deserialize;
use serde_json::Value;

use crate::engine::ProviderKind;

/// Tokens of one call. For Anthropic, `input` excludes the cached prompt tokens, which are
/// counted apart; OpenAI-compatible providers report no cache tokens here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// Prompt tokens written to the five-minute cache.
    pub cache_write: u64,
    /// Prompt tokens written to the one-hour cache.
    pub cache_write_1h: u64,
    /// Prompt tokens read from the cache.
    pub cache_read: u64,
}

impl Usage {
    pub fn plain(input: u64, output: u64) -> Usage {
        Usage { input, output, ..Usage::default() }
    }

    /// Every prompt token, cached or not.
    pub fn prompt(&self) -> u64 {
        self.input.saturating_add(self.cache_write).saturating_add(self.cache_write_1h).saturating_add(self.cache_read)
    }

    /// Every token, for token rate limits.
    pub fn tokens(&self) -> u64 {
        self.prompt().saturating_add(self.output)
    }

    /// Takes the cache counts an Anthropic `usage` object reports (absent members keep their
    /// value: a stream reports them once at the start and again, cumulatively, at the end).
    pub fn read_anthropic_cache(&mut self, usage: &Value) {
        if let Ok(wire) = Wire::deserialize(usage) {
            self.take_cache(&wire);
        }
    }

    fn take_cache(&mut self, wire: &Wire) {
        match &wire.cache_creation {
            Some(split) => {
                self.cache_write = split.ephemeral_5m_input_tokens.unwrap_or(self.cache_write);
                self.cache_write_1h = split.ephemeral_1h_input_tokens.unwrap_or(self.cache_write_1h);
            }
            None => self.cache_write = wire.cache_creation_input_tokens.unwrap_or(self.cache_write),
        }
        self.cache_read = wire.cache_read_input_tokens.unwrap_or(self.cache_read);
    }
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
}

#[derive(Debug, Default, Deserialize)]
struct CacheSplit {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

impl Wire {
    fn usage(&self, kind: ProviderKind) -> Option<Usage> {
        match kind {
            ProviderKind::OpenAi => Some(Usage::plain(self.prompt_tokens?, self.completion_tokens?)),
            ProviderKind::Anthropic => {
                let mut out = Usage::plain(self.input_tokens?, self.output_tokens?);
                out.take_cache(self);
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
        assert_eq!(usage, Some(Usage { input: 10, output: 5, cache_write: 200, cache_write_1h: 0, cache_read: 3000 }));
        assert_eq!(usage.map(|u| (u.prompt(), u.tokens())), Some((3210, 3215)));
        let split = json!({"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}});
        let usage = usage_from(ProviderKind::Anthropic, &split);
        assert_eq!(usage.map(|u| (u.cache_write, u.cache_write_1h)), Some((10, 20)), "the split wins over the total");
    }

    #[test]
    fn openai_usage_has_no_cache_part_and_missing_usage_is_none() {
        let answer = json!({"usage": {"prompt_tokens": 7, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}});
        assert_eq!(usage_in(ProviderKind::OpenAi, answer.to_string().as_bytes()), Some(Usage::plain(7, 2)));
        assert_eq!(usage_in(ProviderKind::OpenAi, b"{\"id\": 1}"), None);
    }
}
