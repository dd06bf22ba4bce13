//! The query parameters of a log search and of a spend report, as they arrive (text, checked by
//! `services::logs`).
#![expect(clippy::large_stack_arrays, reason = "utoipa's IntoParams derive builds the list of a search's 23 parameters as one array")]

use serde::Deserialize;
use utoipa::IntoParams;

/// Query of `GET /api/logs`: lists are comma-separated, times RFC 3339, costs in dollars.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Requests at or after this time (RFC 3339).
    pub start_time: Option<String>,
    /// Requests before this time (RFC 3339).
    pub end_time: Option<String>,
    pub providers: Option<String>,
    pub models: Option<String>,
    /// `success` (a 2xx answer) and/or `error`.
    pub status: Option<String>,
    /// Route families: `chat_completions`, `messages`, `embeddings`, `count_tokens`.
    pub objects: Option<String>,
    pub virtual_key_ids: Option<String>,
    pub user_ids: Option<String>,
    /// Access-profile (template) ids.
    pub profile_ids: Option<String>,
    /// User-copy ids.
    pub copy_ids: Option<String>,
    pub role_ids: Option<String>,
    /// Denial types (`budget_exceeded`, `token_limited`, …), or `any` for every refused request.
    pub denial_types: Option<String>,
    /// Milliseconds.
    pub min_latency: Option<String>,
    pub max_latency: Option<String>,
    pub min_tokens: Option<String>,
    pub max_tokens: Option<String>,
    /// Dollars.
    pub min_cost: Option<String>,
    pub max_cost: Option<String>,
    /// `timestamp` (default), `latency`, `tokens` or `cost`.
    pub sort_by: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    /// 1–1000, default 50.
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// Query of a spend report.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// Start of the range (RFC 3339); default: the start of the current UTC month.
    pub start_time: Option<String>,
    /// End of the range, exclusive (RFC 3339); default: now.
    pub end_time: Option<String>,
    /// Comma-separated: `user`, `role`, `profile`, `provider`, `model` (default `user`).
    pub group_by: Option<String>,
    /// `total` (default), `day`, `week` (from Monday, UTC) or `month`.
    pub interval: Option<String>,
    pub user_ids: Option<String>,
    pub role_ids: Option<String>,
    pub profile_ids: Option<String>,
    pub providers: Option<String>,
    pub models: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}
