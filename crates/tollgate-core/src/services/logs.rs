//! Reading the request log: a search's query parameters checked and turned into a `LogSearch`,
//! and spend reports folded from the store's daily sums into the asked groups and periods.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use crate::error::{CoreError, FieldError};
use crate::logs::{
    DEFAULT_LOG_LIMIT, DailySpend, Dimension, FilterData, Interval, LogFilter, LogPage, LogSearch, LogSort, LogStore, Names, Outcome,
    ReportQuery,
};
use crate::money::Money;
use crate::paging::{MAX_LIMIT, Paging};
pub use crate::services::log_params::{LogParams, ReportParams};

/// Most values one list filter takes.
const MAX_LIST: usize = 100;
/// Longest value of a list filter.
const MAX_VALUE: usize = 256;
/// Longest range a report covers.
const MAX_REPORT_DAYS: i64 = 366 * 2;

/// One row of a spend report: a period, the group's dimension values (only those grouped by),
/// and its sums.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportRow {
    /// First day of the period (`None` for `total`).
    pub period_start: Option<NaiveDate>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub role_id: Option<i64>,
    pub role_name: Option<String>,
    pub profile_id: Option<i64>,
    pub profile_name: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub requests: u64,
    pub denied_requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Money,
}

/// A finished report and what it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub query: ReportQuery,
    pub rows: Vec<ReportRow>,
}

#[derive(Clone)]
pub struct LogService {
    store: Arc<dyn LogStore>,
}

impl std::fmt::Debug for LogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogService").finish_non_exhaustive()
    }
}

impl LogService {
    pub fn new(store: Arc<dyn LogStore>) -> Self {
        Self { store }
    }

    pub async fn search(&self, params: &LogParams) -> Result<(LogSearch, LogPage), CoreError> {
        let search = parse_search(params)?;
        let page = self.store.search_logs(&search).await?;
        Ok((search, page))
    }

    pub async fn filter_data(&self) -> Result<FilterData, CoreError> {
        Ok(self.store.log_filter_data().await?)
    }

    pub async fn report(&self, params: &ReportParams, now: DateTime<Utc>) -> Result<Report, CoreError> {
        let query = parse_report(params, now)?;
        let days = self.store.daily_spend(&query).await?;
        let mut rows = fold(&query, &days);
        let mut users: Vec<String> = rows.iter().filter_map(|r| r.user_id.clone()).collect();
        let mut roles: Vec<i64> = rows.iter().filter_map(|r| r.role_id).collect();
        let mut profiles: Vec<i64> = rows.iter().filter_map(|r| r.profile_id).collect();
        for ids in [&mut roles, &mut profiles] {
            ids.sort_unstable();
            ids.dedup();
        }
        users.sort_unstable();
        users.dedup();
        let names = self.store.names(&users, &roles, &profiles).await?;
        name_rows(&mut rows, &names);
        Ok(Report { query, rows })
    }
}

/// Collects the problems of a query's parameters, one per parameter.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, param: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(param, message));
    }

    fn time(&mut self, param: &str, raw: Option<&String>) -> Option<DateTime<Utc>> {
        let raw = raw?.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
            Some(t.with_timezone(&Utc))
        } else {
            self.add(param, "must be an RFC 3339 time such as 2026-01-31T00:00:00Z");
            None
        }
    }

    fn list(&mut self, param: &str, raw: Option<&String>) -> Vec<String> {
        let Some(raw) = raw else { return Vec::new() };
        let values: Vec<String> = raw.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect();
        if values.len() > MAX_LIST {
            self.add(param, format!("takes at most {MAX_LIST} values"));
            return Vec::new();
        }
        if values.iter().any(|v| v.len() > MAX_VALUE || v.chars().any(char::is_control)) {
            self.add(param, format!("values must be at most {MAX_VALUE} bytes without control characters"));
            return Vec::new();
        }
        values
    }

    fn ids(&mut self, param: &str, raw: Option<&String>) -> Vec<i64> {
        let values = self.list(param, raw);
        let ids: Option<Vec<i64>> = values.iter().map(|v| v.parse::<i64>().ok()).collect();
        ids.unwrap_or_else(|| {
            self.add(param, "must be comma-separated integer ids");
            Vec::new()
        })
    }

    fn count(&mut self, param: &str, raw: Option<&String>) -> Option<u64> {
        let raw = raw?.trim();
        raw.parse::<u64>().map_err(|_| self.add(param, "must be a whole number, 0 or more")).ok()
    }

    fn dollars(&mut self, param: &str, raw: Option<&String>) -> Option<Money> {
        let raw = raw?.trim();
        if let Some(Ok(m)) = raw.parse::<f64>().ok().filter(|d| *d >= 0.0).map(Money::from_dollars) {
            Some(m)
        } else {
            self.add(param, "must be a dollar amount, 0 or more");
            None
        }
    }

    fn finish<T>(self, value: T) -> Result<T, CoreError> {
        if self.0.is_empty() { Ok(value) } else { Err(CoreError::Validation(self.0)) }
    }
}

fn parse_search(p: &LogParams) -> Result<LogSearch, CoreError> {
    let mut problems = Problems::default();
    let mut filter = LogFilter {
        start: problems.time("start_time", p.start_time.as_ref()),
        end: problems.time("end_time", p.end_time.as_ref()),
        providers: problems.list("providers", p.providers.as_ref()),
        models: problems.list("models", p.models.as_ref()),
        routes: problems.list("objects", p.objects.as_ref()),
        virtual_keys: problems.list("virtual_key_ids", p.virtual_key_ids.as_ref()),
        users: problems.list("user_ids", p.user_ids.as_ref()),
        profiles: problems.ids("profile_ids", p.profile_ids.as_ref()),
        copies: problems.ids("copy_ids", p.copy_ids.as_ref()),
        roles: problems.ids("role_ids", p.role_ids.as_ref()),
        min_latency_ms: problems.count("min_latency", p.min_latency.as_ref()),
        max_latency_ms: problems.count("max_latency", p.max_latency.as_ref()),
        min_tokens: problems.count("min_tokens", p.min_tokens.as_ref()),
        max_tokens: problems.count("max_tokens", p.max_tokens.as_ref()),
        min_cost: problems.dollars("min_cost", p.min_cost.as_ref()),
        max_cost: problems.dollars("max_cost", p.max_cost.as_ref()),
        ..LogFilter::default()
    };
    for status in problems.list("status", p.status.as_ref()) {
        match status.as_str() {
            "success" => filter.outcomes.push(Outcome::Success),
            "error" => filter.outcomes.push(Outcome::Error),
            _ => problems.add("status", "values are `success` and `error`"),
        }
    }
    for denial in problems.list("denial_types", p.denial_types.as_ref()) {
        if denial == "any" { filter.any_denial = true } else { filter.denials.push(denial) }
    }
    let sort = match p.sort_by.as_deref().map(str::trim) {
        None | Some("") => LogSort::Timestamp,
        Some(raw) => LogSort::parse(raw).unwrap_or_else(|| {
            problems.add("sort_by", "must be `timestamp`, `latency`, `tokens` or `cost`");
            LogSort::Timestamp
        }),
    };
    let ascending = match p.order.as_deref().map(str::trim) {
        None | Some("" | "desc") => false,
        Some("asc") => true,
        Some(_) => {
            problems.add("order", "must be `asc` or `desc`");
            false
        }
    };
    let limit = match problems.count("limit", p.limit.as_ref()) {
        None => DEFAULT_LOG_LIMIT,
        Some(n) if (1..=u64::from(MAX_LIMIT)).contains(&n) => u32::try_from(n).unwrap_or(MAX_LIMIT),
        Some(_) => {
            problems.add("limit", format!("must be between 1 and {MAX_LIMIT}"));
            DEFAULT_LOG_LIMIT
        }
    };
    let offset = problems.count("offset", p.offset.as_ref()).map_or(0, |o| u32::try_from(o).unwrap_or(u32::MAX));
    if let (Some(start), Some(end)) = (filter.start, filter.end)
        && end < start
    {
        problems.add("end_time", "must not be before start_time");
    }
    problems.finish(LogSearch { filter, sort, ascending, paging: Paging { limit: Some(limit), offset } })
}

fn parse_report(p: &ReportParams, now: DateTime<Utc>) -> Result<ReportQuery, CoreError> {
    let mut problems = Problems::default();
    let month_start = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc());
    let start = problems.time("start_time", p.start_time.as_ref()).or(month_start).unwrap_or(now);
    let end = problems.time("end_time", p.end_time.as_ref()).unwrap_or(now);
    if end < start {
        problems.add("end_time", "must not be before start_time");
    } else if end - start > Duration::days(MAX_REPORT_DAYS) {
        problems.add("end_time", format!("a report covers at most {MAX_REPORT_DAYS} days"));
    }
    let mut group_by = Vec::new();
    for name in problems.list("group_by", p.group_by.as_ref()) {
        match Dimension::parse(&name) {
            Some(d) if !group_by.contains(&d) => group_by.push(d),
            Some(_) => {}
            None => problems.add("group_by", "values are `user`, `role`, `profile`, `provider` and `model`"),
        }
    }
    if p.group_by.is_none() {
        group_by.push(Dimension::User);
    }
    let interval = match p.interval.as_deref().map(str::trim) {
        None | Some("") => Interval::Total,
        Some(raw) => Interval::parse(raw).unwrap_or_else(|| {
            problems.add("interval", "must be `total`, `day`, `week` or `month`");
            Interval::Total
        }),
    };
    match p.format.as_deref().map(str::trim) {
        None | Some("" | "json" | "csv") => {}
        Some(_) => problems.add("format", "must be `json` or `csv`"),
    }
    let query = ReportQuery {
        start,
        end,
        group_by,
        interval,
        users: problems.list("user_ids", p.user_ids.as_ref()),
        roles: problems.ids("role_ids", p.role_ids.as_ref()),
        profiles: problems.ids("profile_ids", p.profile_ids.as_ref()),
        providers: problems.list("providers", p.providers.as_ref()),
        models: problems.list("models", p.models.as_ref()),
    };
    problems.finish(query)
}

/// First day of the period `day` falls in.
fn period_of(interval: Interval, day: NaiveDate) -> Option<NaiveDate> {
    match interval {
        Interval::Total => None,
        Interval::Day => Some(day),
        Interval::Week => Some(day - Duration::days(i64::from(day.weekday().num_days_from_monday()))),
        Interval::Month => day.with_day(1),
    }
}

type GroupKey = (Option<NaiveDate>, Option<String>, Option<i64>, Option<i64>, Option<String>, Option<String>);

/// Sums the daily rows into one row per period and combination of the grouped dimensions,
/// ordered by period, then by the dimensions.
fn fold(query: &ReportQuery, days: &[DailySpend]) -> Vec<ReportRow> {
    let has = |d: Dimension| query.group_by.contains(&d);
    let mut groups: BTreeMap<GroupKey, ReportRow> = BTreeMap::new();
    for day in days {
        let key: GroupKey = (
            period_of(query.interval, day.day),
            has(Dimension::User).then(|| day.user_id.clone()).flatten(),
            has(Dimension::Role).then_some(day.role_id).flatten(),
            has(Dimension::Profile).then_some(day.profile_id).flatten(),
            has(Dimension::Provider).then(|| day.provider.clone()),
            has(Dimension::Model).then(|| day.model.clone()),
        );
        let row = groups.entry(key.clone()).or_insert_with(|| ReportRow {
            period_start: key.0,
            user_id: key.1,
            role_id: key.2,
            profile_id: key.3,
            provider: key.4,
            model: key.5,
            ..ReportRow::default()
        });
        row.requests += day.requests;
        row.denied_requests += day.denied;
        row.prompt_tokens += day.prompt_tokens;
        row.completion_tokens += day.completion_tokens;
        row.cost = Money::from_micros(row.cost.micros().saturating_add(day.cost.micros())).unwrap_or(row.cost);
    }
    groups.into_values().collect()
}

fn name_rows(rows: &mut [ReportRow], names: &Names) {
    for row in rows {
        row.user_name = row.user_id.as_ref().and_then(|id| names.users.get(id).cloned());
        row.role_name = row.role_id.and_then(|id| names.roles.get(&id).cloned());
        row.profile_name = row.profile_id.and_then(|id| names.profiles.get(&id).cloned());
    }
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
