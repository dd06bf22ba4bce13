//! Governance decisions explained, as plain data: what `POST /api/governance/explain` answers
//! (the decision and every check in order, with its numbers), the figures of one counter line as
//! a refusal and an explanation both name it, and `Explainer`, the port through which the
//! management API asks the running governance (the binary plugs it in).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::CoreError;

/// Whom and what to explain: a user (any of their keys) or one virtual key, and a request.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The user asking (their key's checks are left out); give this or `virtual_key_id`.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The key presented (its own checks come first); give this or `user_id`.
    #[serde(default)]
    pub virtual_key_id: Option<String>,
    /// `provider/model`, as an inference request names it.
    pub model: String,
    /// Output tokens the request would allow; absent: the gateway's default, as for a request.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The prompt's size in tokens (0 when absent).
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// The route family: `chat_completions` (default), `messages` or `embeddings` (which
    /// reserves no output).
    #[serde(default)]
    pub route: Option<String>,
}

/// What a request would get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

/// The answer: the decision, the rule that refuses (if any) with the message the request would
/// carry, the governing copy, the estimate, and every check made, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Explanation {
    pub decision: Decision,
    /// Governance's name of the refusing rule (`budget_exceeded`, `model_blocked`, …; as in
    /// `extra_fields.denial.rule` of the refused request's error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The message the refused request would carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub provider: String,
    pub model: String,
    /// The copy that governs the request (the oldest live one granting provider and model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyFacts>,
    /// What the request is expected to consume, once a copy governs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateFacts>,
    /// Every check made, in the order admission makes them; none after the first that fails,
    /// except that every counter line is checked.
    pub checks: Vec<Check>,
}

/// A user copy and the access profile (template) it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CopyFacts {
    pub copy_id: i64,
    /// The template's id (`None` for a detached copy).
    pub profile_id: Option<i64>,
    /// The copy's name: its template's name when it was made or last propagated.
    pub profile_name: String,
}

/// The estimate a request is reserved at.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EstimateFacts {
    pub prompt_tokens: u64,
    pub max_tokens: u64,
    /// Prompt plus output tokens.
    pub tokens: u64,
    /// Dollars (0 for an unpriced model).
    pub cost: f64,
}

/// One check: what was checked, whether it passed, in words, and for a counter line its figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Check {
    /// `key_known`, `key_active`, `key_unexpired`, `copy_active`, `provider_allowed`,
    /// `model_allowed`, `model_priced`, `line`, `counters`.
    pub check: String,
    pub passed: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<LineFigures>,
}

/// A counter line's figures. Budgets are in dollars, token and request lines in tokens and
/// requests. `used` is what the line holds, spent plus reserved by requests in flight.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LineFigures {
    /// The budget id, or the rate limit id with `:t` (tokens) or `:r` (requests).
    pub line_id: String,
    /// `budget`, `tokens` or `requests`.
    pub kind: String,
    /// `profile` or `provider` (the provider config's line).
    pub scope: String,
    /// The provider whose config holds a `provider` line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub used: f64,
    /// The part of `used` held by requests in flight (explanations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<f64>,
    /// What this request asks of the line.
    pub estimate: f64,
    /// The cap (a budget's including an active override).
    pub limit: f64,
    /// `limit - used`, never below 0 (explanations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<f64>,
    /// When the line's window ends and its usage starts again from 0.
    pub resets_at: DateTime<Utc>,
}

/// The running governance, as the management API reads it.
#[async_trait]
pub trait Explainer: Send + Sync {
    /// Explains a request without charging anything. A key or user governance does not know is
    /// `NotFound`; a malformed request is `Validation`.
    async fn explain(&self, request: &ExplainRequest) -> Result<Explanation, CoreError>;
}
