//! Daily spend for reports on SQL: the request log and the tool-call audit summed per UTC day
//! and combination of user, role, profile, provider and model, over a range.

use chrono::NaiveDate;
use sqlx::Row;
use tollgate_core::logs::{DailySpend, ReportQuery};
use tollgate_core::money::Money;
use tollgate_core::ports::StoreError;

use crate::sql::{Arg, Sql, push_in};
use crate::{SqlStore, map_err, ts};

/// How one source table names each reported column.
struct Source {
    table: &'static str,
    provider: &'static str,
    model: &'static str,
    denied: &'static str,
    prompt: &'static str,
    completion: &'static str,
    /// The columns provider and model are made of (a constant cannot be grouped by).
    group: &'static str,
}

const REQUESTS: Source = Source {
    table: "request_logs",
    provider: "provider",
    model: "model",
    denied: "denial IS NOT NULL",
    prompt: "prompt_tokens",
    completion: "completion_tokens",
    group: "provider, model",
};

/// A tool call counts under provider `mcp` and model `<client_id>/<tool>`; one refused by
/// governance (`denied`, `rate_limited`, `budget`) counts as denied.
const TOOL_CALLS: Source = Source {
    table: "mcp_tool_calls",
    provider: "'mcp'",
    model: "(client_id || '/' || tool)",
    denied: "outcome IN ('denied', 'rate_limited', 'budget')",
    prompt: "0",
    completion: "0",
    group: "client_id, tool",
};

fn push_source(sql: &mut Sql, source: &Source, q: &ReportQuery) {
    let Source { table, provider, model, denied, prompt, completion, group } = source;
    sql.push(&format!(
        "SELECT substr(created_at, 1, 10) AS day, user_id, role_id, profile_id, {provider} AS provider, {model} AS model, \
         CAST(SUM(CASE WHEN {denied} THEN 0 ELSE 1 END) AS BIGINT) AS requests, \
         CAST(SUM(CASE WHEN {denied} THEN 1 ELSE 0 END) AS BIGINT) AS denied, \
         CAST(SUM({prompt}) AS BIGINT) AS prompt_tokens, CAST(SUM({completion}) AS BIGINT) AS completion_tokens, \
         CAST(SUM(cost) AS BIGINT) AS cost FROM {table} WHERE created_at >= "
    ));
    sql.bind(Arg::Text(ts(q.start))).push(" AND created_at < ").bind(Arg::Text(ts(q.end)));
    let texts = |values: &[String]| values.iter().map(|v| Arg::Text(v.clone())).collect::<Vec<_>>();
    let ints = |values: &[i64]| values.iter().map(|v| Arg::Int(*v)).collect::<Vec<_>>();
    push_in(sql, "user_id", texts(&q.users));
    push_in(sql, "role_id", ints(&q.roles));
    push_in(sql, "profile_id", ints(&q.profiles));
    push_in(sql, provider, texts(&q.providers));
    push_in(sql, model, texts(&q.models));
    sql.push(&format!(" GROUP BY substr(created_at, 1, 10), user_id, role_id, profile_id, {group}"));
}

pub(crate) async fn daily_spend(store: &SqlStore, q: &ReportQuery) -> Result<Vec<DailySpend>, StoreError> {
    let mut sql = Sql::new("");
    push_source(&mut sql, &REQUESTS, q);
    sql.push(" UNION ALL ");
    push_source(&mut sql, &TOOL_CALLS, q);
    let rows = sql.query().fetch_all(store.pool()).await.map_err(map_err)?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    rows.iter()
        .map(|row| {
            let day: String = row.try_get("day").map_err(map_err)?;
            Ok(DailySpend {
                day: NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                    .map_err(|e| StoreError::Backend(format!("bad day {day:?} in the request log: {e}")))?,
                user_id: row.try_get("user_id").map_err(map_err)?,
                role_id: row.try_get("role_id").map_err(map_err)?,
                profile_id: row.try_get("profile_id").map_err(map_err)?,
                provider: row.try_get("provider").map_err(map_err)?,
                model: row.try_get("model").map_err(map_err)?,
                requests: count(row.try_get("requests").map_err(map_err)?),
                denied: count(row.try_get("denied").map_err(map_err)?),
                prompt_tokens: count(row.try_get("prompt_tokens").map_err(map_err)?),
                completion_tokens: count(row.try_get("completion_tokens").map_err(map_err)?),
                cost: Money::from_micros(row.try_get("cost").map_err(map_err)?).unwrap_or(Money::ZERO),
            })
        })
        .collect()
}
