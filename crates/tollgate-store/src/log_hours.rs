//! The hourly sums of the request log (`request_log_hours`): kept in the transaction that writes
//! the rows, pruned with them, and read for the stats of a search that only narrows by time,
//! provider, model, route, outcome or denial — a few thousand sums instead of millions of rows.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::{Any, Row, Transaction};
use tollgate_core::logs::{LogFilter, Outcome};
use tollgate_core::ports::StoreError;
use tollgate_core::usage::RequestLog;

use crate::sql::{Arg, Sql, push_in};
use crate::{SqlStore, map_err, ts};

/// Sums per upsert statement (ten values each).
const ROWS_PER_STATEMENT: usize = 500;

/// What one hour's row is keyed by: hour, provider, model, route, status, denial (`""` for none).
type Key = (String, String, String, String, i64, String);

/// Requests, latency, tokens and cost summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sums {
    pub requests: i64,
    pub successful: i64,
    pub latency_ms: i64,
    pub tokens: i64,
    pub cost: i64,
}

impl Sums {
    pub(crate) fn add(self, other: Sums) -> Sums {
        Sums {
            requests: self.requests + other.requests,
            successful: self.successful + other.successful,
            latency_ms: self.latency_ms + other.latency_ms,
            tokens: self.tokens + other.tokens,
            cost: self.cost + other.cost,
        }
    }

    /// The sums a `SELECT` named `n`, `ok`, `latency`, `tokens`, `cost` answered.
    pub(crate) fn from_row(row: &sqlx::any::AnyRow) -> Result<Sums, StoreError> {
        let get = |name: &str| row.try_get::<i64, _>(name).map_err(map_err);
        Ok(Sums { requests: get("n")?, successful: get("ok")?, latency_ms: get("latency")?, tokens: get("tokens")?, cost: get("cost")? })
    }
}

/// The start of the hour `at` falls in.
pub(crate) fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// The first hour that starts at or after `at`.
fn next_hour_from(at: DateTime<Utc>) -> DateTime<Utc> {
    let hour = hour_of(at);
    if hour == at { hour } else { hour + TimeDelta::hours(1) }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adds a batch of logged requests to their hours' sums, in the transaction that inserts them.
/// Keys are written in order, so two instances flushing at once lock the rows in the same order.
pub(crate) async fn add(tx: &mut Transaction<'static, Any>, logs: &[RequestLog]) -> Result<(), StoreError> {
    let mut sums: BTreeMap<Key, Sums> = BTreeMap::new();
    for log in logs {
        let key = (
            ts(hour_of(log.created_at)),
            log.provider.clone(),
            log.model.clone(),
            log.route.to_owned(),
            i64::from(log.status),
            log.denial.unwrap_or_default().to_owned(),
        );
        let ok = i64::from((200..=299).contains(&log.status));
        let one = Sums {
            requests: 1,
            successful: ok,
            latency_ms: count(log.latency_ms),
            tokens: count(log.prompt_tokens.saturating_add(log.completion_tokens)),
            cost: log.cost.micros(),
        };
        let entry = sums.entry(key).or_default();
        *entry = entry.add(one);
    }
    let sums: Vec<(Key, Sums)> = sums.into_iter().collect();
    for chunk in sums.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(
            "INSERT INTO request_log_hours (hour, provider, model, route, status, denial, requests, latency_ms, tokens, cost) VALUES ",
        );
        for (i, ((hour, provider, model, route, status, denial), sum)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            for (j, text) in [hour, provider, model, route].into_iter().enumerate() {
                if j > 0 {
                    sql.push(", ");
                }
                sql.bind(Arg::Text(text.clone()));
            }
            sql.push(", ").bind(Arg::Int(*status)).push(", ").bind(Arg::Text(denial.clone()));
            for n in [sum.requests, sum.latency_ms, sum.tokens, sum.cost] {
                sql.push(", ").bind(Arg::Int(n));
            }
            sql.push(")");
        }
        sql.push(
            " ON CONFLICT (hour, provider, model, route, status, denial) DO UPDATE SET \
             requests = request_log_hours.requests + excluded.requests, \
             latency_ms = request_log_hours.latency_ms + excluded.latency_ms, \
             tokens = request_log_hours.tokens + excluded.tokens, cost = request_log_hours.cost + excluded.cost",
        );
        sql.query().execute(&mut **tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// Where pruning may cut: whole hours only, so the sums always cover exactly the rows kept.
pub(crate) fn prune_cut(before: DateTime<Utc>) -> DateTime<Utc> {
    hour_of(before)
}

/// Drops the sums of the hours before `cut` (an hour's start), with the rows they summed.
pub(crate) async fn prune(tx: &mut Transaction<'static, Any>, cut: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM request_log_hours WHERE hour < $1").bind(ts(cut)).execute(&mut **tx).await.map_err(map_err)?;
    Ok(())
}

/// The sums answer a search with this filter: it narrows by nothing the hours do not keep.
pub(crate) fn covers(f: &LogFilter) -> bool {
    f.virtual_keys.is_empty()
        && f.users.is_empty()
        && f.profiles.is_empty()
        && f.copies.is_empty()
        && f.roles.is_empty()
        && f.min_latency_ms.is_none()
        && f.max_latency_ms.is_none()
        && f.min_tokens.is_none()
        && f.max_tokens.is_none()
        && f.min_cost.is_none()
        && f.max_cost.is_none()
}

/// A time range `[start, end)`; a `None` bound is open.
pub(crate) type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// How a search's time range splits: whole hours read from the sums, and the part-hours at
/// either end (at most one hour each) read from the rows.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    /// Whole hours.
    pub hours: Option<Range>,
    /// Ranges read row by row.
    pub edges: Vec<Range>,
}

pub(crate) fn split(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Split {
    let from = start.map(next_hour_from);
    let to = end.map(hour_of);
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        // Less than one whole hour inside the range: its rows are few.
        return Split { hours: None, edges: vec![(start, end)] };
    }
    let mut edges = Vec::new();
    if let (Some(start), Some(from)) = (start, from)
        && start < from
    {
        edges.push((Some(start), Some(from)));
    }
    if let (Some(to), Some(end)) = (to, end)
        && to < end
    {
        edges.push((Some(to), Some(end)));
    }
    Split { hours: Some((from, to)), edges }
}

/// The conditions on the columns the hourly sums keep too (provider, model, route, outcome,
/// denial), for the rows or for the sums; `any_denial` is how a refused one is told apart.
pub(crate) fn push_summed(sql: &mut Sql, f: &LogFilter, any_denial: &str) {
    push_in(sql, "provider", f.providers.iter().map(|v| Arg::Text(v.clone())));
    push_in(sql, "model", f.models.iter().map(|v| Arg::Text(v.clone())));
    push_in(sql, "route", f.routes.iter().map(|v| Arg::Text(v.clone())));
    let (success, error) = (f.outcomes.contains(&Outcome::Success), f.outcomes.contains(&Outcome::Error));
    if success && !error {
        sql.push(" AND status BETWEEN 200 AND 299");
    } else if error && !success {
        sql.push(" AND (status < 200 OR status > 299)");
    }
    if f.any_denial {
        sql.push(any_denial);
    } else {
        push_in(sql, "denial", f.denials.iter().map(|v| Arg::Text(v.clone())));
    }
}

/// The sums over whole hours `[from, to)` of the requests `f` selects (only its provider, model,
/// route, outcome and denial parts; `covers(f)` holds).
pub(crate) async fn sums(
    store: &SqlStore,
    f: &LogFilter,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Sums, StoreError> {
    let mut sql = Sql::new(
        "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n, \
         CAST(COALESCE(SUM(CASE WHEN status BETWEEN 200 AND 299 THEN requests ELSE 0 END), 0) AS BIGINT) AS ok, \
         CAST(COALESCE(SUM(latency_ms), 0) AS BIGINT) AS latency, CAST(COALESCE(SUM(tokens), 0) AS BIGINT) AS tokens, \
         CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost FROM request_log_hours WHERE 1 = 1",
    );
    if let Some(from) = from {
        sql.push(" AND hour >= ").bind(Arg::Text(ts(from)));
    }
    if let Some(to) = to {
        sql.push(" AND hour < ").bind(Arg::Text(ts(to)));
    }
    // The sums write "no denial" as '' (a key column cannot be NULL).
    push_summed(&mut sql, f, " AND denial <> ''");
    let row = sql.query().fetch_one(&store.pool).await.map_err(map_err)?;
    Sums::from_row(&row)
}

impl SqlStore {
    /// Sums the hours again from the rows, for rows written by other means than the usage
    /// writer (a bulk load, a restore): what migration 0013 did once when it made the table.
    pub async fn rebuild_log_hours(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("DELETE FROM request_log_hours").execute(&mut *tx).await.map_err(map_err)?;
        sqlx::query(REBUILD).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}

/// The statement migration 0013 runs too (keep them alike).
const REBUILD: &str = "INSERT INTO request_log_hours (hour, provider, model, route, status, denial, requests, latency_ms, tokens, cost) \
     SELECT substr(created_at, 1, 13) || ':00:00.000000Z', provider, model, route, status, COALESCE(denial, ''), COUNT(*), \
     SUM(latency_ms), SUM(prompt_tokens + completion_tokens), SUM(cost) FROM request_logs \
     GROUP BY substr(created_at, 1, 13), provider, model, route, status, COALESCE(denial, '')";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).single().unwrap_or_default()
    }

    #[test]
    fn a_range_splits_into_whole_hours_and_the_part_hours_at_its_ends() {
        let s = split(Some(at(9, 15)), Some(at(12, 30)));
        assert_eq!(s.hours, Some((Some(at(10, 0)), Some(at(12, 0)))));
        assert_eq!(s.edges, vec![(Some(at(9, 15)), Some(at(10, 0))), (Some(at(12, 0)), Some(at(12, 30)))]);
    }

    #[test]
    fn hour_aligned_bounds_need_no_rows_and_open_bounds_stay_open() {
        assert_eq!(split(Some(at(9, 0)), Some(at(11, 0))), Split { hours: Some((Some(at(9, 0)), Some(at(11, 0)))), edges: vec![] });
        assert_eq!(split(None, None), Split { hours: Some((None, None)), edges: vec![] });
        assert_eq!(split(Some(at(9, 1)), None).edges, vec![(Some(at(9, 1)), Some(at(10, 0)))]);
    }

    #[test]
    fn a_range_inside_less_than_a_whole_hour_is_read_from_the_rows() {
        assert_eq!(split(Some(at(9, 10)), Some(at(10, 20))), Split { hours: None, edges: vec![(Some(at(9, 10)), Some(at(10, 20)))] });
        assert_eq!(split(Some(at(9, 10)), Some(at(9, 20))).hours, None);
    }
}
