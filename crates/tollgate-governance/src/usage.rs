//! What a call consumed, as the provider bills it: uncached input, output, Anthropic's
//! prompt-cache tokens (written at 1.25× or, for the one-hour cache, 2× the input price; read at
//! 0.1×) and OpenAI's cached prompt tokens (at the model's cached-input price). Reading it off a
//! provider's answer is the inference surface's work.

/// Tokens of one call. `input` is the uncached prompt; the cached parts are counted apart
/// (Anthropic reports them apart, OpenAI as a part of `prompt_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// Prompt tokens written to the five-minute cache.
    pub cache_write: u64,
    /// Prompt tokens written to the one-hour cache.
    pub cache_write_1h: u64,
    /// Prompt tokens read from Anthropic's cache.
    pub cache_read: u64,
    /// Prompt tokens an OpenAI-compatible provider served from its cache
    /// (`prompt_tokens_details.cached_tokens`).
    pub cached_input: u64,
}

impl Usage {
    pub fn plain(input: u64, output: u64) -> Usage {
        Usage { input, output, ..Usage::default() }
    }

    /// Every prompt token, cached or not.
    pub fn prompt(&self) -> u64 {
        [self.cache_write, self.cache_write_1h, self.cache_read, self.cached_input].iter().fold(self.input, |sum, n| sum.saturating_add(*n))
    }

    /// Every token, for token rate limits.
    pub fn tokens(&self) -> u64 {
        self.prompt().saturating_add(self.output)
    }
}
