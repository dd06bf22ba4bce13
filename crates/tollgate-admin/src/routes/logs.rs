//! Handlers of the request-log reads: `GET /api/logs` (a filtered, sorted page with the stats of
//! every match) and `GET /api/logs/filterdata` (the values present for each filter).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tollgate_core::logs::{LogPage, LogSearch, LoggedRequest, Named};
use tollgate_core::services::logs::LogParams;
use utoipa::ToSchema;

use crate::AdminState;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Caller, Query};

const RESOURCE: &str = "Logs";

/// The route families a logged request can have (the `objects` filter's values).
pub const ROUTES: [&str; 4] = ["chat_completions", "messages", "embeddings", "count_tokens"];

pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/logs", get(search)).route("/logs/filterdata", get(filter_data))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(search, filter_data))]
pub(crate) struct LogDoc;

/// Tokens billed (named as Bifrost's log names them).
#[derive(Debug, Serialize, ToSchema)]
#[expect(clippy::struct_field_names, reason = "the wire names are Bifrost's")]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// Why governance refused a logged request.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedDenial {
    /// The rule (`budget_exceeded`, `request_limited`, `model_blocked`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The refusal as the caller read it: the line, its numbers and its reset.
    pub message: Option<String>,
}

/// One logged inference request.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntry {
    pub id: String,
    pub timestamp: DateTime<Utc>,
    /// The route family (`chat_completions`, `messages`, `embeddings`, `count_tokens`).
    pub object: String,
    pub provider: String,
    pub model: String,
    /// `success` (answered with a 2xx) or `error`.
    pub status: &'static str,
    /// The HTTP status answered.
    pub status_code: u16,
    /// Milliseconds.
    pub latency: u64,
    /// Dollars charged.
    pub cost: f64,
    /// The same, exactly, in micro-dollars.
    pub cost_micros: i64,
    pub stream: bool,
    pub token_usage: TokenUsage,
    pub virtual_key_id: Option<String>,
    pub user_id: Option<String>,
    /// The user copy that governed the request, its template and the role that gave it.
    pub copy_id: Option<i64>,
    pub profile_id: Option<i64>,
    pub role_id: Option<i64>,
    pub denial: Option<LoggedDenial>,
    /// The request as the client sent it (JSON text), when the governing copy's policy keeps
    /// content (`log_content`); cut at 32 KiB with a note of the whole size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_content: Option<String>,
    /// The answer as the client received it: the JSON of a plain answer or an error, the text of
    /// a stream; an embedding's vectors are not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_content: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<LoggedRequest> for LogEntry {
    fn from(r: LoggedRequest) -> Self {
        LogEntry {
            id: r.id.to_string(),
            timestamp: r.created_at,
            object: r.route,
            provider: r.provider,
            model: r.model,
            status: if (200..300).contains(&r.status) { "success" } else { "error" },
            status_code: r.status,
            latency: r.latency_ms,
            cost: r.cost.dollars(),
            cost_micros: r.cost.micros(),
            stream: r.streamed,
            token_usage: TokenUsage {
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                total_tokens: r.prompt_tokens.saturating_add(r.completion_tokens),
            },
            virtual_key_id: r.virtual_key_id,
            user_id: r.user_id,
            copy_id: r.copy_id,
            profile_id: r.profile_id,
            role_id: r.role_id,
            denial: r.denial.map(|kind| LoggedDenial { kind, message: r.error }),
            request_content: r.request_content,
            response_content: r.response_content,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogPagination {
    /// Rows matching the filters in all.
    pub total_count: u64,
    pub limit: u32,
    pub offset: u32,
    pub sort_by: &'static str,
    pub order: &'static str,
}

/// Aggregates over every row the filters matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogStatsResponse {
    pub total_requests: u64,
    /// Percent of the matched requests answered with a 2xx.
    pub success_rate: f64,
    /// Mean latency in milliseconds.
    pub average_latency: f64,
    pub total_tokens: u64,
    /// Dollars.
    pub total_cost: f64,
    pub total_cost_micros: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogSearchResponse {
    pub logs: Vec<LogEntry>,
    pub pagination: LogPagination,
    pub stats: LogStatsResponse,
    /// Whether the log holds any row at all.
    pub has_logs: bool,
}

impl LogSearchResponse {
    fn of(search: &LogSearch, page: LogPage) -> Self {
        LogSearchResponse {
            pagination: LogPagination {
                total_count: page.total,
                limit: search.paging.limit.unwrap_or(0),
                offset: search.paging.offset,
                sort_by: search.sort.name(),
                order: if search.ascending { "asc" } else { "desc" },
            },
            stats: LogStatsResponse {
                total_requests: page.stats.total_requests,
                success_rate: page.stats.success_rate(),
                average_latency: page.stats.average_latency_ms,
                total_tokens: page.stats.total_tokens,
                total_cost: page.stats.total_cost.dollars(),
                total_cost_micros: page.stats.total_cost.micros(),
            },
            logs: page.logs.into_iter().map(LogEntry::from).collect(),
            has_logs: page.has_logs,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamedValue {
    pub id: String,
    pub name: Option<String>,
}

impl From<Named> for NamedValue {
    fn from(n: Named) -> Self {
        NamedValue { id: n.id, name: n.name }
    }
}

/// The values present in the log for each filter.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilterDataResponse {
    pub providers: Vec<String>,
    pub models: Vec<String>,
    pub virtual_keys: Vec<NamedValue>,
    pub users: Vec<NamedValue>,
    pub profiles: Vec<NamedValue>,
    pub denial_types: Vec<String>,
    /// Every route family a request can be logged under.
    pub objects: Vec<&'static str>,
}

/// Searches the request log: every filter given must hold; the page is sorted and paged, and
/// `stats` covers every matching row.
#[utoipa::path(get, path = "/api/logs", tag = "Logs", operation_id = "getLogs", params(LogParams),
    responses((status = 200, body = LogSearchResponse), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn search(State(s): State<AdminState>, caller: Caller, Query(params): Query<LogParams>) -> Result<Json<LogSearchResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    let (search, page) = s.logs.search(&params).await?;
    Ok(Json(LogSearchResponse::of(&search, page)))
}

/// The providers, models, virtual keys, users, profiles and denial types present in the log.
#[utoipa::path(get, path = "/api/logs/filterdata", tag = "Logs", operation_id = "getLogFilterData",
    responses((status = 200, body = FilterDataResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn filter_data(State(s): State<AdminState>, caller: Caller) -> Result<Json<FilterDataResponse>, ApiError> {
    caller.require(RESOURCE, "View")?;
    let data = s.logs.filter_data().await?;
    Ok(Json(FilterDataResponse {
        providers: data.providers,
        models: data.models,
        virtual_keys: data.virtual_keys.into_iter().map(NamedValue::from).collect(),
        users: data.users.into_iter().map(NamedValue::from).collect(),
        profiles: data.profiles.into_iter().map(NamedValue::from).collect(),
        denial_types: data.denials,
        objects: ROUTES.to_vec(),
    }))
}
