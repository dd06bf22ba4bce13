//! `LogStore` on SQL: log searches (a filtered page, its count and stats), the values present
//! for each filter (read off the indexes one value at a time), and daily spend for reports.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::logs::{
    DailySpend, FilterData, LogFilter, LogPage, LogSearch, LogSort, LogStats, LogStore, LoggedRequest, Named, Names, ReportQuery,
};
use tollgate_core::money::Money;
use tollgate_core::ports::StoreError;

use crate::log_hours::{self, Sums};
use crate::sql::{Arg, Sql, push_in};
use crate::{SqlStore, map_err, parse_ts, ts};

/// Most distinct values a filter-data list holds.
const MAX_FILTER_VALUES: i64 = 1000;

const LOG_COLUMNS: &str = "id, created_at, route, provider, model, user_id, virtual_key_id, copy_id, profile_id, role_id, \
     prompt_tokens, completion_tokens, cost, status, latency_ms, streamed, denial, error, request_content, response_content";

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn texts(values: &[String]) -> impl Iterator<Item = Arg> + '_ {
    values.iter().map(|v| Arg::Text(v.clone()))
}

fn ints(values: &[i64]) -> impl Iterator<Item = Arg> + '_ {
    values.iter().map(|v| Arg::Int(*v))
}

fn push_bound(sql: &mut Sql, expression: &str, op: &str, value: Option<i64>) {
    if let Some(value) = value {
        sql.push(" AND ").push(expression).push(op).bind(Arg::Int(value));
    }
}

/// The filter as a `WHERE` clause (always present, so every condition starts with `AND`).
fn push_filter(sql: &mut Sql, f: &LogFilter) {
    sql.push(" WHERE 1 = 1");
    if let Some(start) = f.start {
        sql.push(" AND created_at >= ").bind(Arg::Text(ts(start)));
    }
    if let Some(end) = f.end {
        sql.push(" AND created_at < ").bind(Arg::Text(ts(end)));
    }
    log_hours::push_summed(sql, f, " AND denial IS NOT NULL");
    push_in(sql, "virtual_key_id", texts(&f.virtual_keys));
    push_in(sql, "user_id", texts(&f.users));
    push_in(sql, "profile_id", ints(&f.profiles));
    push_in(sql, "copy_id", ints(&f.copies));
    push_in(sql, "role_id", ints(&f.roles));
    let signed = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    push_bound(sql, "latency_ms", " >= ", signed(f.min_latency_ms));
    push_bound(sql, "latency_ms", " <= ", signed(f.max_latency_ms));
    push_bound(sql, "(prompt_tokens + completion_tokens)", " >= ", signed(f.min_tokens));
    push_bound(sql, "(prompt_tokens + completion_tokens)", " <= ", signed(f.max_tokens));
    push_bound(sql, "cost", " >= ", f.min_cost.map(Money::micros));
    push_bound(sql, "cost", " <= ", f.max_cost.map(Money::micros));
}

fn order_by(search: &LogSearch) -> String {
    let column = match search.sort {
        LogSort::Timestamp => "created_at",
        LogSort::Latency => "latency_ms",
        LogSort::Tokens => "(prompt_tokens + completion_tokens)",
        LogSort::Cost => "cost",
    };
    let direction = if search.ascending { "ASC" } else { "DESC" };
    format!(" ORDER BY {column} {direction}, id {direction}")
}

fn log_from_row(row: &AnyRow) -> Result<LoggedRequest, StoreError> {
    let get_i64 = |name: &str| row.try_get::<i64, _>(name).map_err(map_err);
    Ok(LoggedRequest {
        id: get_i64("id")?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        route: row.try_get("route").map_err(map_err)?,
        provider: row.try_get("provider").map_err(map_err)?,
        model: row.try_get("model").map_err(map_err)?,
        user_id: row.try_get("user_id").map_err(map_err)?,
        virtual_key_id: row.try_get("virtual_key_id").map_err(map_err)?,
        copy_id: row.try_get("copy_id").map_err(map_err)?,
        profile_id: row.try_get("profile_id").map_err(map_err)?,
        role_id: row.try_get("role_id").map_err(map_err)?,
        prompt_tokens: unsigned(get_i64("prompt_tokens")?),
        completion_tokens: unsigned(get_i64("completion_tokens")?),
        cost: Money::from_micros(get_i64("cost")?).unwrap_or(Money::ZERO),
        status: u16::try_from(get_i64("status")?).unwrap_or(0),
        latency_ms: unsigned(get_i64("latency_ms")?),
        streamed: get_i64("streamed")? != 0,
        denial: row.try_get("denial").map_err(map_err)?,
        error: row.try_get("error").map_err(map_err)?,
        request_content: row.try_get("request_content").map_err(map_err)?,
        response_content: row.try_get("response_content").map_err(map_err)?,
    })
}

/// Count, successes, latency, tokens and cost of the rows `f` selects.
async fn row_sums(store: &SqlStore, f: &LogFilter) -> Result<Sums, StoreError> {
    let mut sql = Sql::new(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(CASE WHEN status BETWEEN 200 AND 299 THEN 1 ELSE 0 END), 0) AS BIGINT) AS ok,          CAST(COALESCE(SUM(latency_ms), 0) AS BIGINT) AS latency,          CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) AS tokens,          CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost FROM request_logs",
    );
    push_filter(&mut sql, f);
    Sums::from_row(&sql.query().fetch_one(&store.pool).await.map_err(map_err)?)
}

/// The stats of a search: from the hourly sums for its whole hours when they keep every column
/// it narrows by, plus the rows of the part-hours at its ends; otherwise from the rows.
async fn search_sums(store: &SqlStore, f: &LogFilter) -> Result<Sums, StoreError> {
    if !log_hours::covers(f) {
        return row_sums(store, f).await;
    }
    let split = log_hours::split(f.start, f.end);
    let mut sums = match split.hours {
        Some((from, to)) => log_hours::sums(store, f, from, to).await?,
        None => Sums::default(),
    };
    for (start, end) in split.edges {
        let edge = LogFilter { start, end, ..f.clone() };
        sums = sums.add(row_sums(store, &edge).await?);
    }
    Ok(sums)
}

/// The distinct non-null values of an indexed column, smallest first, one index probe each. The
/// first probe says `IS NOT NULL` too: without it SQLite cannot use a partial index (`denial`'s)
/// and scans the table for the minimum.
async fn distinct(store: &SqlStore, column: &str) -> Result<Vec<AnyRow>, StoreError> {
    let text = format!(
        "WITH RECURSIVE v(x) AS (SELECT MIN({column}) FROM request_logs WHERE {column} IS NOT NULL \
         UNION ALL SELECT (SELECT MIN({column}) FROM request_logs WHERE {column} > v.x) FROM v WHERE v.x IS NOT NULL) \
         SELECT x FROM v WHERE x IS NOT NULL LIMIT {MAX_FILTER_VALUES}"
    );
    sqlx::query(&text).fetch_all(&store.pool).await.map_err(map_err)
}

async fn distinct_texts(store: &SqlStore, column: &str) -> Result<Vec<String>, StoreError> {
    distinct(store, column).await?.iter().map(|r| r.try_get::<String, _>("x").map_err(map_err)).collect()
}

/// `(id, name)` of the rows of `table` whose id is among `ids`.
async fn named(store: &SqlStore, table: &str, ids: Vec<Arg>) -> Result<Vec<(String, String)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!("SELECT CAST(id AS TEXT) AS id, name FROM {table} WHERE 1 = 1"));
    push_in(&mut sql, "id", ids);
    let rows = sql.query().fetch_all(&store.pool).await.map_err(map_err)?;
    rows.iter().map(|r| Ok((r.try_get("id").map_err(map_err)?, r.try_get("name").map_err(map_err)?))).collect()
}

fn with_names(ids: Vec<String>, names: &[(String, String)]) -> Vec<Named> {
    ids.into_iter()
        .map(|id| {
            let name = names.iter().find(|(known, _)| *known == id).map(|(_, name)| name.clone());
            Named { id, name }
        })
        .collect()
}

#[async_trait]
impl LogStore for SqlStore {
    async fn search_logs(&self, search: &LogSearch) -> Result<LogPage, StoreError> {
        let sums = search_sums(self, &search.filter).await?;
        // On SQLite the page's ids come first, then only their rows: the ids come off an index
        // (the time index carries cost and latency), so a sort over many matches never reads
        // whole rows. Postgres plans that form worse (a day by cost: 948 ms against 161), so it
        // is asked directly (decision 215).
        let by_id = self.backend == crate::Backend::Sqlite;
        let mut page = Sql::new(&if by_id {
            format!("SELECT {LOG_COLUMNS} FROM request_logs WHERE id IN (SELECT id FROM request_logs")
        } else {
            format!("SELECT {LOG_COLUMNS} FROM request_logs")
        });
        push_filter(&mut page, &search.filter);
        page.push(&order_by(search));
        page.push(" LIMIT ").bind(Arg::Int(i64::from(search.paging.limit.unwrap_or(tollgate_core::logs::DEFAULT_LOG_LIMIT))));
        page.push(" OFFSET ").bind(Arg::Int(i64::from(search.paging.offset)));
        if by_id {
            page.push(")").push(&order_by(search));
        }
        let total = unsigned(sums.requests);
        #[expect(clippy::cast_precision_loss, reason = "an average latency needs no more than a double's precision")]
        let average_latency_ms = if total == 0 { 0.0 } else { sums.latency_ms as f64 / sums.requests as f64 };
        let stats = LogStats {
            total_requests: total,
            successful_requests: unsigned(sums.successful),
            average_latency_ms,
            total_tokens: unsigned(sums.tokens),
            total_cost: Money::from_micros(sums.cost).unwrap_or(Money::ZERO),
        };
        let logs = if total == 0 {
            Vec::new()
        } else {
            page.query().fetch_all(&self.pool).await.map_err(map_err)?.iter().map(log_from_row).collect::<Result<_, _>>()?
        };
        let has_logs =
            total > 0 || sqlx::query("SELECT id FROM request_logs LIMIT 1").fetch_optional(&self.pool).await.map_err(map_err)?.is_some();
        Ok(LogPage { logs, total, stats, has_logs })
    }

    async fn log_filter_data(&self) -> Result<FilterData, StoreError> {
        let keys = distinct_texts(self, "virtual_key_id").await?;
        let users = distinct_texts(self, "user_id").await?;
        let profiles: Vec<i64> =
            distinct(self, "profile_id").await?.iter().map(|r| r.try_get::<i64, _>("x").map_err(map_err)).collect::<Result<_, _>>()?;
        let key_names = named(self, "virtual_keys", texts(&keys).collect()).await?;
        let user_names = named(self, "users", texts(&users).collect()).await?;
        let profile_names = named(self, "access_profiles", ints(&profiles).collect()).await?;
        Ok(FilterData {
            providers: distinct_texts(self, "provider").await?,
            models: distinct_texts(self, "model").await?,
            virtual_keys: with_names(keys, &key_names),
            users: with_names(users, &user_names),
            profiles: with_names(profiles.iter().map(ToString::to_string).collect(), &profile_names),
            denials: distinct_texts(self, "denial").await?,
        })
    }

    async fn daily_spend(&self, query: &ReportQuery) -> Result<Vec<DailySpend>, StoreError> {
        crate::spend::daily_spend(self, query).await
    }

    async fn names(&self, users: &[String], roles: &[i64], profiles: &[i64]) -> Result<Names, StoreError> {
        let mut names = Names::default();
        for chunk in users.chunks(500) {
            names.users.extend(named(self, "users", texts(chunk).collect()).await?);
        }
        for chunk in roles.chunks(500) {
            for (id, name) in named(self, "roles", ints(chunk).collect()).await? {
                names.roles.insert(id.parse().unwrap_or_default(), name);
            }
        }
        for chunk in profiles.chunks(500) {
            for (id, name) in named(self, "access_profiles", ints(chunk).collect()).await? {
                names.profiles.insert(id.parse().unwrap_or_default(), name);
            }
        }
        Ok(names)
    }
}
