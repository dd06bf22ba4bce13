//! Tollgate's data plane: the governed inference routes (`/v1`, `/openai`, `/anthropic`), authorized against an
//! in-memory governance snapshot, reserved and settled on counters, persisted by a batching writer.
//!
//! Clients speak OpenAI's chat format (`/v1/chat/completions`) or Anthropic's Messages format
//! (`/anthropic/v1/messages`); upstreams speak either (`ProviderKind`), and `translate` bridges.
//!
//! A chat request goes: parse → find the key (header order of the contract) → authorize (key,
//! copy, provider, model) → reserve the estimate on every rate limit and budget that applies
//! (all or nothing) → call the provider → settle the real usage (or, for an abandoned stream,
//! the tokens delivered) → the writer persists counters and the request log within a second.

mod anthropic;
mod anthropic_extras;
mod authorize;
mod body;
mod chat;
pub mod counters;
mod egress;
mod embeddings;
mod engine;
mod error;
mod held;
mod journal;
mod models;
pub mod pricing;
mod prompt;
mod snapshot;
mod translate;
mod upstream;
pub mod usage;
mod writer;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use engine::{Gateway, GatewaySettings, GatewayTasks, ProviderKind, ProviderSpec};
pub use prompt::tokenized_bytes;
pub use snapshot::extra_header;
pub use writer::OpenUsageStore;

/// Largest inference request body accepted (32 MiB).
pub const MAX_INFERENCE_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The inference routes (authenticated by virtual key, not by the admin credential).
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/openai/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/openai/v1/embeddings", post(embeddings::embeddings))
        .route("/openai/v1/models", get(models::list_models))
        .route("/anthropic/v1/messages", post(anthropic::messages))
        .route("/anthropic/v1/messages/count_tokens", post(anthropic_extras::count_tokens))
        .route("/v1/messages/count_tokens", post(anthropic_extras::count_tokens))
        .route("/anthropic/v1/models", get(anthropic_extras::models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/models", get(models::list_models))
        .layer(DefaultBodyLimit::max(MAX_INFERENCE_BODY_BYTES))
        .with_state(gateway)
}

impl Gateway {
    /// Readiness of the data plane: its usage counters answer (in memory always; Redis within a
    /// second). The reason is for the log only.
    pub async fn ready(&self) -> Result<(), String> {
        self.0.counters.ping().await
    }
}
