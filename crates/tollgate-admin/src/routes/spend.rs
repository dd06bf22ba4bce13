//! Spend reports for chargeback (`GET /api/governance/usage/report`): spend, tokens and requests
//! grouped by user, role, profile, provider and model per day, week or month, as JSON or as a
//! CSV download.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use tollgate_core::CoreError;
use tollgate_core::money::Money;
use tollgate_core::services::logs::{Report, ReportParams, ReportRow};
use utoipa::ToSchema;

use crate::AdminState;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{Caller, Query};

const RESOURCE: &str = "Logs";

pub(crate) fn routes() -> Router<AdminState> {
    Router::new().route("/governance/usage/report", get(report))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(report))]
pub(crate) struct SpendDoc;

/// One group's sums in one period; the dimensions not grouped by are absent.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendRow {
    /// First day of the period (absent for `interval=total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Requests admitted (tool calls included).
    pub requests: u64,
    /// Requests governance refused.
    pub denied_requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Dollars, as an exact decimal.
    pub cost: String,
    /// The same in micro-dollars.
    pub cost_micros: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpendTotals {
    pub requests: u64,
    pub denied_requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: String,
    pub cost_micros: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpendReportResponse {
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// `total`, `day`, `week` or `month`.
    pub interval: &'static str,
    pub group_by: Vec<&'static str>,
    pub rows: Vec<SpendRow>,
    pub totals: SpendTotals,
}

/// Micro-dollars as an exact dollar decimal (`12.000345`).
fn exact_dollars(m: Money) -> String {
    let micros = m.micros();
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

fn row_of(r: ReportRow) -> SpendRow {
    SpendRow {
        period_start: r.period_start,
        total_tokens: r.prompt_tokens.saturating_add(r.completion_tokens),
        cost: exact_dollars(r.cost),
        cost_micros: r.cost.micros(),
        user_id: r.user_id,
        user_name: r.user_name,
        role_id: r.role_id,
        role_name: r.role_name,
        profile_id: r.profile_id,
        profile_name: r.profile_name,
        provider: r.provider,
        model: r.model,
        requests: r.requests,
        denied_requests: r.denied_requests,
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.completion_tokens,
    }
}

fn totals(rows: &[ReportRow]) -> SpendTotals {
    let cost = Money::from_micros(rows.iter().map(|r| r.cost.micros()).sum()).unwrap_or(Money::ZERO);
    SpendTotals {
        requests: rows.iter().map(|r| r.requests).sum(),
        denied_requests: rows.iter().map(|r| r.denied_requests).sum(),
        prompt_tokens: rows.iter().map(|r| r.prompt_tokens).sum(),
        completion_tokens: rows.iter().map(|r| r.completion_tokens).sum(),
        cost: exact_dollars(cost),
        cost_micros: cost.micros(),
    }
}

/// A text cell that a spreadsheet would read as a formula starts with a quote instead (names and
/// model ids come from people, and a grant with a wildcard lets a caller choose the model).
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() }
}

fn csv_of(report: &Report) -> Result<Vec<u8>, ApiError> {
    let dims: Vec<&'static str> = report.query.group_by.iter().map(|d| d.name()).collect();
    let mut header: Vec<String> = vec!["period_start".into()];
    for dim in &dims {
        match *dim {
            "provider" | "model" => header.push((*dim).to_owned()),
            _ => header.extend([format!("{dim}_id"), format!("{dim}_name")]),
        }
    }
    header.extend(["requests", "denied_requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"].map(String::from));
    let internal = |e: csv::Error| ApiError::from(CoreError::Internal(format!("csv: {e}")));
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(&header).map_err(internal)?;
    for r in &report.rows {
        let mut record = vec![r.period_start.map_or_else(|| report.query.start.date_naive().to_string(), |d| d.to_string())];
        for dim in &dims {
            let text = |v: &Option<String>| cell(v.as_deref().unwrap_or(""));
            let id = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
            match *dim {
                "user" => record.extend([text(&r.user_id), text(&r.user_name)]),
                "role" => record.extend([id(r.role_id), text(&r.role_name)]),
                "profile" => record.extend([id(r.profile_id), text(&r.profile_name)]),
                "provider" => record.push(text(&r.provider)),
                _ => record.push(text(&r.model)),
            }
        }
        for n in [r.requests, r.denied_requests, r.prompt_tokens, r.completion_tokens, r.prompt_tokens.saturating_add(r.completion_tokens)]
        {
            record.push(n.to_string());
        }
        record.push(exact_dollars(r.cost));
        out.write_record(&record).map_err(internal)?;
    }
    out.into_inner().map_err(|e| ApiError::from(CoreError::Internal(format!("csv: {e}"))))
}

/// Spend, tokens and requests from the request log and the tool-call audit, grouped by the
/// dimensions asked (`group_by`) and cut into periods (`interval`), over `[start_time, end_time)`
/// (default: this UTC month so far). A user's monthly row equals what their copies' budgets were
/// charged. `format=csv` downloads the same rows as CSV.
#[utoipa::path(get, path = "/api/governance/usage/report", tag = "Governance", operation_id = "getSpendReport", params(ReportParams),
    responses((status = 200, body = SpendReportResponse, description = "JSON, or with format=csv a text/csv attachment with the same rows"),
        (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse), (status = 503, body = ErrorResponse)))]
async fn report(State(s): State<AdminState>, caller: Caller, Query(params): Query<ReportParams>) -> Result<Response, ApiError> {
    caller.require(RESOURCE, "View")?;
    let report = s.logs.report(&params, tollgate_core::clock::now()).await?;
    if params.format.as_deref().map(str::trim) == Some("csv") {
        let body = csv_of(&report)?;
        let name = format!(
            "attachment; filename=\"tollgate-spend-{}-{}.csv\"",
            report.query.start.format("%Y%m%d"),
            report.query.end.format("%Y%m%d")
        );
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        if let Ok(value) = HeaderValue::from_str(&name) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    let totals = totals(&report.rows);
    Ok(Json(SpendReportResponse {
        start_time: report.query.start,
        end_time: report.query.end,
        interval: report.query.interval.name(),
        group_by: report.query.group_by.iter().map(|d| d.name()).collect(),
        rows: report.rows.into_iter().map(row_of).collect(),
        totals,
    })
    .into_response())
}
