//! Tollgate's inference surface: the governed routes (`/v1`, `/openai`, `/anthropic`). Governance
//! (`tollgate-governance`) decides and charges; this crate reads requests, calls providers and
//! translates between their formats.
//!
//! Clients speak OpenAI's chat format (`/v1/chat/completions`) or Anthropic's Messages format
//! (`/anthropic/v1/messages`); upstreams speak their kind's dialect (`ProviderKind`, in core),
//! which its adapter (`adapters`, one file per kind) owns, and `adapters::bridge` joins the two.
//!
//! A chat request goes: parse → find the key (`keys`, the contract's header order) → governance
//! authorizes (key, copy, provider, model) → the provider is found (`providers`) → governance
//! reserves the estimate on every rate limit and budget that applies (all or nothing) → call the
//! provider (`upstream`) → settle the real usage (or, for an abandoned stream, the tokens
//! delivered) on the `Held` guard → the usage writer persists counters and the request log.

mod adapters;
mod anthropic;
mod anthropic_extras;
mod body;
mod chat;
mod egress;
pub use egress::GuardedResolver;
mod embeddings;
mod engine;
mod error;
mod keys;
mod limits;
mod models;
mod prompt;
mod providers;
mod quota;
mod upstream;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use engine::{Gateway, GatewaySettings, GatewayTasks};
pub use error::{ErrorKind, Failure};
pub use prompt::tokenized_bytes;
pub use providers::{ManagedProviders, ProviderSpec, WeightedKey, extra_header};
pub use upstream::streams_open;

/// Largest inference request body accepted (32 MiB).
pub const MAX_INFERENCE_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A key's own quota: under `/api`, yet served here, authenticated by the virtual key (a route
/// of its own takes precedence over the management API's `/api` catch-all).
pub const QUOTA_PATH: &str = "/api/governance/virtual-keys/quota";

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
        .route(QUOTA_PATH, get(quota::quota))
        .layer(DefaultBodyLimit::max(MAX_INFERENCE_BODY_BYTES))
        .with_state(gateway)
}
