//! Prompt sizes for reservations: a bound read off the request's bytes, which no token count can
//! exceed, and the tokenizer's count, taken only when the bound does not fit or a bill needs it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::body::{RawObject, elements};
use crate::error::{Failure, GatewayError};

/// Tokens every message adds around its content, and a request around its messages (the framing
/// chat models count).
const PER_MESSAGE: u64 = 4;
const PER_REQUEST: u64 = 3;

/// What a request sends as its prompt.
#[derive(Debug, Clone)]
enum Source {
    /// A chat or Messages body: its messages' content, `system` and `tools`.
    Chat(Bytes),
    /// An embeddings body: its `input`.
    Embeddings(Bytes),
}

/// A request's prompt size, in tokens. The bound costs one scan of the request; the tokenizer
/// runs at most once, and only when asked.
#[derive(Debug)]
pub(crate) struct Prompt {
    source: Source,
    bound: u64,
    counted: OnceLock<u64>,
}

impl Prompt {
    /// The prompt of a chat (OpenAI) or Messages (Anthropic) request already read as `request`.
    pub fn chat(body: &Bytes, request: &RawObject<'_>) -> Prompt {
        // Every token of cl100k is at least one byte, so the text's length bounds its tokens.
        let (text, messages) = quick_size(request).unwrap_or_else(|| {
            let (parts, messages) = prompt_parts(request);
            (parts.iter().map(|p| p.map_or(0, |raw| len(raw.get())) + 1).sum(), messages)
        });
        Prompt { source: Source::Chat(body.clone()), bound: text + framing(messages), counted: OnceLock::new() }
    }

    /// The prompt of an embeddings request whose `input` is already read.
    pub fn embeddings(body: &Bytes, input: &Value) -> Prompt {
        Prompt { source: Source::Embeddings(body.clone()), bound: input_size(input, &len), counted: OnceLock::new() }
    }

    /// The tokenizer's count (cl100k plus framing), taken on first use; never above the bound.
    pub fn tokens(&self) -> u64 {
        *self.counted.get_or_init(|| count_source(&self.source, self.bound))
    }

    /// The tokenizer's count as `tokens`, but a large prompt (a bound above
    /// `COUNT_ON_WORKER_UP_TO` tokens) is counted on the blocking pool, a bounded number at a
    /// time (`off_worker`), so a near-limit request with a huge body cannot stall a request worker.
    pub async fn count(&self) -> Result<u64, GatewayError> {
        if let Some(counted) = self.counted.get() {
            return Ok(*counted);
        }
        if self.bound <= COUNT_ON_WORKER_UP_TO {
            return Ok(self.tokens());
        }
        let (source, bound) = (self.source.clone(), self.bound);
        let counted = off_worker(move || count_source(&source, bound)).await?;
        Ok(*self.counted.get_or_init(|| counted))
    }
}

/// Governance asks for the bound first and the count only when the bound does not fit; a count
/// that cannot be taken (the tokenizer's pool is gone) leaves the bound's refusal standing.
impl tollgate_governance::PromptSize for Prompt {
    /// Tokens the prompt cannot exceed, without tokenizing it.
    fn bound(&self) -> u64 {
        self.bound
    }

    async fn count(&self) -> Option<u64> {
        Prompt::count(self).await.ok()
    }
}

/// Prompts whose bound is at most this many tokens are counted where they are asked for (well
/// under a millisecond); larger ones go to the blocking pool.
const COUNT_ON_WORKER_UP_TO: u64 = 16 * 1024;

/// The tokenizer's count of a prompt (cl100k plus framing), never above its `bound`.
fn count_source(source: &Source, bound: u64) -> u64 {
    let counted = match source {
        Source::Chat(body) => RawObject::parse(body).ok().map(|request| prompt_estimate(&request)),
        Source::Embeddings(body) => {
            serde_json::from_slice::<Value>(body).ok().and_then(|tree| tree.get("input").map(|input| input_size(input, &count_tokens)))
        }
    };
    counted.map_or(bound, |tokens| tokens.min(bound))
}

/// Tokens of a chat request's prompt as a provider will count them, approximately (cl100k plus
/// framing): the messages, an Anthropic-style `system`, and the tool definitions.
/// The JSON text of each part is counted as it came, without parsing it further.
pub(crate) fn prompt_estimate(request: &RawObject<'_>) -> u64 {
    let (parts, messages) = prompt_parts(request);
    let mut text = String::new();
    for part in parts {
        text.push_str(part.map_or("", RawValue::get));
        text.push('\n');
    }
    count_tokens(&text) + framing(messages)
}

/// The parts of a prompt that are counted, each followed by a line break when joined (a message
/// without content is an empty part), and the number of messages.
fn prompt_parts<'a>(request: &RawObject<'a>) -> (Vec<Option<&'a RawValue>>, u64) {
    let messages = elements(request.get("messages"));
    let count = u64::try_from(messages.len()).unwrap_or(u64::MAX);
    let mut parts: Vec<Option<&RawValue>> = messages.iter().map(|message| RawObject::of(message).get("content")).collect();
    parts.extend(["system", "tools"].iter().filter_map(|key| request.get(key)).map(Some));
    (parts, count)
}

/// A message as far as its size matters: its content, still as JSON text.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

/// The length of the counted text and the number of messages, read in one pass over the
/// messages; `None` when they are not all objects with at most one `content` (then `prompt_parts`
/// reads them as a provider would). A `null` content counts as its four bytes.
fn quick_size(request: &RawObject<'_>) -> Option<(u64, u64)> {
    let messages: Vec<Message<'_>> = serde_json::from_str(request.get("messages")?.get()).ok()?;
    let contents: u64 = messages.iter().map(|m| m.content.map_or(4, |raw| len(raw.get())) + 1).sum();
    let rest: u64 = ["system", "tools"].iter().filter_map(|key| request.get(key)).map(|raw| len(raw.get()) + 1).sum();
    Some((contents + rest, u64::try_from(messages.len()).unwrap_or(u64::MAX)))
}

fn framing(messages: u64) -> u64 {
    messages.saturating_mul(PER_MESSAGE).saturating_add(PER_REQUEST)
}

fn len(text: &str) -> u64 {
    u64::try_from(text.len()).unwrap_or(u64::MAX)
}

/// Tokens of an embeddings input, text sized by `size`; token arrays are taken as they are.
fn input_size(input: &Value, size: &dyn Fn(&str) -> u64) -> u64 {
    match input {
        Value::String(text) => size(text),
        Value::Array(items) if items.iter().all(Value::is_number) => u64::try_from(items.len()).unwrap_or(u64::MAX),
        Value::Array(items) => items.iter().map(|item| input_size(item, size)).sum(),
        _ => 0,
    }
}

/// The tokenizer used for prompt counts and for what an abandoned stream delivered (cl100k, the
/// byte-pair encoding of the GPT-4 family; its tables are built on first use).
fn tokenizer() -> &'static bpe_openai::Tokenizer {
    bpe_openai::cl100k_base()
}

/// Bytes of text tokenized by this process so far (a diagnostic; tests use it to prove what was
/// never tokenized).
static TOKENIZED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes of text this process has tokenized so far.
pub fn tokenized_bytes() -> u64 {
    TOKENIZED_BYTES.load(Ordering::Relaxed)
}

/// Tokens of `text` (cl100k).
pub(crate) fn count_tokens(text: &str) -> u64 {
    TOKENIZED_BYTES.fetch_add(len(text), Ordering::Relaxed);
    u64::try_from(tokenizer().count(text)).unwrap_or(u64::MAX)
}

/// Tokenizing work that runs beside requests: at most half the cores' worth at once.
static TOKENIZING: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::sync::Semaphore::new((cores / 2).max(1))
});

/// Runs `work` (tokenizing a body, up to seconds of one core for the largest) on the blocking
/// pool, so the request workers keep serving meanwhile, and a bounded number at a time, so a
/// burst of such calls cannot take every core; callers beyond that wait without holding a thread.
pub(crate) async fn off_worker<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, GatewayError> {
    let unavailable = || GatewayError::new(Failure::Unavailable, "the token count could not be taken; try again");
    let _permit = TOKENIZING.acquire().await.map_err(|_| unavailable())?;
    tokio::task::spawn_blocking(work).await.map_err(|_| unavailable())
}

/// The cl100k estimate of a chat or Messages body's prompt (as [`prompt_estimate`]), taken off
/// the request workers.
pub(crate) async fn estimate_off_worker(body: Bytes) -> Result<u64, GatewayError> {
    off_worker(move || RawObject::parse(&body).map(|request| prompt_estimate(&request))).await?
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chat_prompt(body: &Value) -> Prompt {
        let bytes = Bytes::from(body.to_string());
        let request = RawObject::parse(&bytes).expect("a JSON object");
        Prompt::chat(&bytes, &request)
    }

    #[tokio::test]
    async fn a_large_prompt_is_counted_off_the_worker_to_the_same_count() {
        let large = chat_prompt(&json!({"messages": [{"role": "user", "content": "several words ".repeat(20_000)}]}));
        assert!(large.bound > COUNT_ON_WORKER_UP_TO, "large enough to leave the worker");
        let counted = large.count().await;
        assert_eq!(counted, Ok(chat_prompt(&json!({"messages": [{"role": "user", "content": "several words ".repeat(20_000)}]})).tokens()));
        assert!(counted.is_ok_and(|n| n < large.bound), "a real count, not the bound");
        let small = chat_prompt(&json!({"messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(small.count().await, Ok(small.tokens()));
    }

    #[test]
    fn the_bound_of_a_chat_prompt_is_never_below_its_token_count() {
        let bodies = [
            json!({"messages": [{"role": "user", "content": "hello hello hello hello"}]}),
            json!({"messages": [{}, {"role": "assistant"}], "system": "be brief", "tools": [{"type": "function"}]}),
            json!({"messages": [{"role": "user", "content": "naïve café — 東京 🚀".repeat(40)}]}),
            json!({"messages": []}),
            json!({"messages": [{"role": "user", "content": null}, "not an object", 7]}),
        ];
        for body in &bodies {
            let prompt = chat_prompt(body);
            let request_bytes = Bytes::from(body.to_string());
            let request = RawObject::parse(&request_bytes).expect("a JSON object");
            assert_eq!(prompt.tokens(), prompt_estimate(&request), "the count is the tokenizer's estimate: {body}");
            assert!(prompt.bound >= prompt.tokens(), "bound {} < count {} for {body}", prompt.bound, prompt.tokens());
        }
    }

    #[test]
    fn a_message_with_its_content_given_twice_is_sized_by_the_content_that_counts() {
        let body = br#"{"messages":[{"role":"user","content":"hi","content":"a much longer text that is the one counted"}]}"#;
        let bytes = Bytes::from_static(body);
        let prompt = Prompt::chat(&bytes, &RawObject::parse(&bytes).expect("a JSON object"));
        assert!(prompt.bound >= prompt.tokens());
        assert!(prompt.bound > 45, "the last content is the one a provider reads: {}", prompt.bound);
    }

    #[test]
    fn a_prompt_is_tokenized_only_when_its_count_is_asked_for_and_then_once() {
        let prompt = chat_prompt(&json!({"messages": [{"role": "user", "content": "word ".repeat(1000)}]}));
        let before = tokenized_bytes();
        assert!(prompt.bound > 5000, "the bound is read off the bytes");
        assert_eq!(tokenized_bytes(), before, "reading the bound tokenizes nothing");
        let counted = prompt.tokens();
        let after = tokenized_bytes();
        assert!(after > before && counted < prompt.bound / 3, "`word ` is one token per five bytes: {counted}");
        assert_eq!(prompt.tokens(), counted);
        assert_eq!(tokenized_bytes(), after, "the count is kept");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_count_asked_for_by_a_route_runs_off_the_request_worker_a_bounded_number_at_a_time() {
        let body = Bytes::from(json!({"messages": [{"role": "user", "content": "word ".repeat(1000)}]}).to_string());
        let request = RawObject::parse(&body).expect("a JSON object");
        assert_eq!(estimate_off_worker(body.clone()).await, Ok(prompt_estimate(&request)));
        let here = std::thread::current().id();
        assert_ne!(off_worker(|| std::thread::current().id()).await, Ok(here), "not on the worker that asked");
        let (running, most) = (std::sync::Arc::new(AtomicU64::new(0)), std::sync::Arc::new(AtomicU64::new(0)));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(off_worker(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for task in tasks {
            assert!(task.await.is_ok_and(|done| done.is_ok()));
        }
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let allowed = u64::try_from((cores / 2).max(1)).unwrap_or(u64::MAX);
        assert!(most.load(Ordering::SeqCst) <= allowed, "at most {allowed} at once, saw {}", most.load(Ordering::SeqCst));
    }

    #[test]
    fn an_embeddings_prompt_counts_text_and_takes_token_arrays_as_they_are() {
        let body = json!({"model": "openai/e", "input": ["some text to embed", [1, 2, 3]]});
        let bytes = Bytes::from(body.to_string());
        let prompt = Prompt::embeddings(&bytes, &body["input"]);
        assert_eq!(prompt.bound, 18 + 3);
        assert_eq!(prompt.tokens(), count_tokens("some text to embed") + 3);
    }
}
