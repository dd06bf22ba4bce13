//! The request log as the management API reads it: a search (filters, sort, paging) and what it
//! returns (logged requests, the aggregate stats of everything that matched), the values the
//! filters can take, and spend reports grouped by dimension and period. `LogStore` is its port.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::money::Money;
use crate::paging::Paging;
use crate::store_error::StoreError;

/// Page size of a log search when the caller gives none.
pub const DEFAULT_LOG_LIMIT: u32 = 50;

/// Whether a logged request was answered successfully (a 2xx) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
}

/// Which logged requests a search or report covers; every given filter must hold, a list
/// filter holds when the row's value is any of the list's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// Inclusive lower bound of the request's time.
    pub start: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub end: Option<DateTime<Utc>>,
    pub providers: Vec<String>,
    pub models: Vec<String>,
    pub outcomes: Vec<Outcome>,
    /// Route families (`chat_completions`, `messages`, `embeddings`, `count_tokens`).
    pub routes: Vec<String>,
    pub virtual_keys: Vec<String>,
    pub users: Vec<String>,
    pub profiles: Vec<i64>,
    pub copies: Vec<i64>,
    pub roles: Vec<i64>,
    /// Denial types (`budget_exceeded`, …); `any_denial` asks for every refused request.
    pub denials: Vec<String>,
    pub any_denial: bool,
    /// Latency in milliseconds, inclusive.
    pub min_latency_ms: Option<u64>,
    pub max_latency_ms: Option<u64>,
    /// Prompt plus completion tokens, inclusive.
    pub min_tokens: Option<u64>,
    pub max_tokens: Option<u64>,
    pub min_cost: Option<Money>,
    pub max_cost: Option<Money>,
}

/// What a search is ordered by (newest first unless ascending is asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogSort {
    #[default]
    Timestamp,
    Latency,
    Tokens,
    Cost,
}

impl LogSort {
    pub fn parse(raw: &str) -> Option<LogSort> {
        match raw {
            "timestamp" => Some(LogSort::Timestamp),
            "latency" => Some(LogSort::Latency),
            "tokens" => Some(LogSort::Tokens),
            "cost" => Some(LogSort::Cost),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogSort::Timestamp => "timestamp",
            LogSort::Latency => "latency",
            LogSort::Tokens => "tokens",
            LogSort::Cost => "cost",
        }
    }
}

/// A log search: which rows, in which order, which page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogSearch {
    pub filter: LogFilter,
    pub sort: LogSort,
    pub ascending: bool,
    pub paging: Paging,
}

/// One logged inference request (admitted, failed or refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub route: String,
    pub provider: String,
    pub model: String,
    pub user_id: Option<String>,
    pub virtual_key_id: Option<String>,
    pub copy_id: Option<i64>,
    pub profile_id: Option<i64>,
    pub role_id: Option<i64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Money,
    /// The HTTP status answered.
    pub status: u16,
    pub latency_ms: u64,
    pub streamed: bool,
    /// The rule that refused the request (`budget_exceeded`, …), if governance refused it.
    pub denial: Option<String>,
    /// The refusal as the caller read it (it names the line and its numbers).
    pub error: Option<String>,
    /// The request and the answer, for a copy whose policy keeps them (`log_content`).
    pub request_content: Option<String>,
    pub response_content: Option<String>,
}

/// Aggregates over every row a search matched (not just its page).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogStats {
    pub total_requests: u64,
    pub successful_requests: u64,
    /// Mean latency in milliseconds (0 without rows).
    pub average_latency_ms: f64,
    pub total_tokens: u64,
    pub total_cost: Money,
}

impl LogStats {
    /// Percentage of matched requests answered with a 2xx (0 without rows).
    #[expect(clippy::cast_precision_loss, reason = "a percentage; counts this large are never exact anywhere")]
    pub fn success_rate(&self) -> f64 {
        if self.total_requests == 0 { 0.0 } else { self.successful_requests as f64 * 100.0 / self.total_requests as f64 }
    }
}

/// A page of a search, the number of matches and their stats.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub logs: Vec<LoggedRequest>,
    pub total: u64,
    pub stats: LogStats,
    /// Whether the log holds any row at all (a filter that matches nothing is not an empty log).
    pub has_logs: bool,
}

/// Something a filter can name, with its name where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: Option<String>,
}

/// The values present in the log that its filters can take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterData {
    pub providers: Vec<String>,
    pub models: Vec<String>,
    pub virtual_keys: Vec<Named>,
    pub users: Vec<Named>,
    pub profiles: Vec<Named>,
    pub denials: Vec<String>,
}

/// What a spend report's rows are grouped by, besides the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    User,
    Role,
    Profile,
    Provider,
    Model,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [Dimension::User, Dimension::Role, Dimension::Profile, Dimension::Provider, Dimension::Model];

    pub fn parse(raw: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == raw)
    }

    pub fn name(self) -> &'static str {
        match self {
            Dimension::User => "user",
            Dimension::Role => "role",
            Dimension::Profile => "profile",
            Dimension::Provider => "provider",
            Dimension::Model => "model",
        }
    }
}

/// The period a report's rows are cut into (UTC; a week starts on Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interval {
    /// One row per group over the whole range.
    #[default]
    Total,
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn parse(raw: &str) -> Option<Interval> {
        match raw {
            "total" => Some(Interval::Total),
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interval::Total => "total",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

/// A spend report: which charges, grouped how.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportQuery {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Distinct, in the order asked.
    pub group_by: Vec<Dimension>,
    pub interval: Interval,
    pub users: Vec<String>,
    pub roles: Vec<i64>,
    pub profiles: Vec<i64>,
    pub providers: Vec<String>,
    pub models: Vec<String>,
}

/// The charges of one UTC day for one combination of every dimension, as the store sums them:
/// the report folds these into its groups and periods. Tool calls count under provider `mcp`,
/// model `<client_id>/<tool>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailySpend {
    pub day: chrono::NaiveDate,
    pub user_id: Option<String>,
    pub role_id: Option<i64>,
    pub profile_id: Option<i64>,
    pub provider: String,
    pub model: String,
    pub requests: u64,
    pub denied: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Money,
}

/// Reads of the request log (its rows are written by governance's usage writer).
#[async_trait]
pub trait LogStore: Send + Sync {
    async fn search_logs(&self, search: &LogSearch) -> Result<LogPage, StoreError>;
    async fn log_filter_data(&self) -> Result<FilterData, StoreError>;
    /// Charges per day and combination of dimensions, filtered as the query says.
    async fn daily_spend(&self, query: &ReportQuery) -> Result<Vec<DailySpend>, StoreError>;
    /// Names of users, roles and profiles by id (ids not found are left out).
    async fn names(&self, users: &[String], roles: &[i64], profiles: &[i64]) -> Result<Names, StoreError>;
}

/// Display names for a report's ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub users: std::collections::HashMap<String, String>,
    pub roles: std::collections::HashMap<i64, String>,
    pub profiles: std::collections::HashMap<i64, String>,
}
