//! `UsageStore` on SQL: the governance data the gateway loads, usage rows it rebuilds counters
//! from, and the batched writes of usage, request logs and tool-call rows.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyArguments;
use sqlx::{Arguments, Row};
use tollgate_core::money::Money;
use tollgate_core::ports::StoreError;
use tollgate_core::services::providers::ProviderStore;
use tollgate_core::usage::{
    CopySink, GovernanceData, KeyRecord, OpenReservation, RequestLog, ToolCallLog, UsageRow, UsageStore, UsersData,
};

use crate::bulk::{self, KEY_FIELDS, KeyRow};
use crate::directory::{COPY_COLUMNS, OVERRIDE_COLUMNS, copy_from_row, override_from_row};
use crate::sql::Arg;
use crate::{SqlStore, map_err, parse_ts, ts};

/// Most rows per multi-row statement (at most 17 parameters each, well under both databases' limits).
const ROWS_PER_STATEMENT: usize = 128;

/// Splits `n` rows into statement sizes that are powers of two (largest first), so only eight
/// texts of each statement ever occur and each is prepared once per connection and then reused.
fn statement_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = ROWS_PER_STATEMENT.min(1 << n.ilog2());
        n -= size;
        Some(size)
    })
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const BUDGET_INSERT: &str = "INSERT INTO budget_usage (budget_id, current_usage, last_reset) VALUES ";
const RATE_LIMIT_INSERT: &str =
    "INSERT INTO rate_limit_usage (rate_limit_id, token_usage, request_usage, token_last_reset, request_last_reset) VALUES ";

/// The upsert of each kind of usage row (budget, tokens, requests): the statement's head, before
/// the rows, and its conflict clause.
static UPSERTS: LazyLock<[(&str, String); 3]> = LazyLock::new(|| {
    [
        (BUDGET_INSERT, keep_latest("budget_usage", "budget_id", "current_usage", "last_reset")),
        (RATE_LIMIT_INSERT, keep_latest("rate_limit_usage", "rate_limit_id", "token_usage", "token_last_reset")),
        (RATE_LIMIT_INSERT, keep_latest("rate_limit_usage", "rate_limit_id", "request_usage", "request_last_reset")),
    ]
});

/// The conflict clause that sets the counter `used` of window `reset`: a line keeps the newer
/// window, or within the same window the larger value, so an older flush arriving late never
/// lowers it.
fn keep_latest(table: &str, key: &str, used: &str, reset: &str) -> String {
    format!(
        " ON CONFLICT ({key}) DO UPDATE SET \
         {used} = CASE WHEN excluded.{reset} > {table}.{reset} THEN excluded.{used} \
         WHEN excluded.{reset} = {table}.{reset} AND excluded.{used} > {table}.{used} THEN excluded.{used} ELSE {table}.{used} END, \
         {reset} = CASE WHEN excluded.{reset} > {table}.{reset} THEN excluded.{reset} ELSE {table}.{reset} END"
    )
}

const LOG_INSERT: &str = "INSERT INTO request_logs (created_at, user_id, virtual_key_id, provider, model, prompt_tokens, \
     completion_tokens, cost, status, latency_ms, streamed, route, copy_id, profile_id, role_id, denial, error, request_content, \
     response_content) VALUES ";

/// One row per line, the latest (newer window, or more used): a statement may not update the
/// same row twice (Postgres refuses it), and the upsert would keep the latest anyway.
fn latest_per_line(rows: &[UsageRow]) -> Vec<&UsageRow> {
    fn parts(row: &UsageRow) -> (u8, &str, DateTime<Utc>, i64) {
        match row {
            UsageRow::Budget { id, used, window_start } => (0, id, *window_start, used.micros()),
            UsageRow::Tokens { id, used, window_start } => (1, id, *window_start, count(*used)),
            UsageRow::Requests { id, used, window_start } => (2, id, *window_start, count(*used)),
        }
    }
    let mut sorted: Vec<&UsageRow> = rows.iter().collect();
    // Line by line, each line's latest value first; then only the first of each line is kept.
    sorted.sort_by_key(|row| {
        let (kind, id, at, used) = parts(row);
        (kind, id, std::cmp::Reverse((at, used)))
    });
    sorted.dedup_by(|later, kept| parts(later).0 == parts(kept).0 && parts(later).1 == parts(kept).1);
    sorted
}

/// Which upsert a usage row goes to, and its values in that statement's column order. A new
/// rate-limit row starts the other counter at 0 in the same window.
fn upsert_values(row: &UsageRow) -> (usize, Vec<Arg>) {
    match row {
        UsageRow::Budget { id, used, window_start } => {
            (0, vec![Arg::Text(id.clone()), Arg::Int(used.micros()), Arg::Text(ts(*window_start))])
        }
        UsageRow::Tokens { id, used, window_start } => {
            let at = ts(*window_start);
            (1, vec![Arg::Text(id.clone()), Arg::Int(count(*used)), Arg::Int(0), Arg::Text(at.clone()), Arg::Text(at)])
        }
        UsageRow::Requests { id, used, window_start } => {
            let at = ts(*window_start);
            (2, vec![Arg::Text(id.clone()), Arg::Int(0), Arg::Int(count(*used)), Arg::Text(at.clone()), Arg::Text(at)])
        }
    }
}

/// Values per request-log row.
const LOG_WIDTH: usize = 19;

/// Appends one request-log row's values, borrowing its text rather than copying it.
fn add_log<'q>(args: &mut AnyArguments<'q>, log: &'q RequestLog, created_at: &'q str) {
    // Adding a plain integer or string to the argument buffer cannot fail.
    let _ = args.add(created_at);
    let _ = args.add(log.user_id.as_deref());
    let _ = args.add(log.virtual_key_id.as_deref());
    let _ = args.add(log.provider.as_str());
    let _ = args.add(log.model.as_str());
    for n in [count(log.prompt_tokens), count(log.completion_tokens), log.cost.micros()] {
        let _ = args.add(n);
    }
    for n in [i64::from(log.status), count(log.latency_ms), i64::from(log.streamed)] {
        let _ = args.add(n);
    }
    let _ = args.add(log.route);
    for id in [log.copy_id, log.profile_id, log.role_id] {
        let _ = args.add(id);
    }
    let _ = args.add(log.denial);
    for text in [&log.error, &log.request_content, &log.response_content] {
        let _ = args.add(text.as_deref());
    }
}

const TOOL_CALL_INSERT: &str = "INSERT INTO mcp_tool_calls (created_at, user_id, virtual_key_id, copy_id, profile_id, \
     client_id, tool, outcome, latency_ms, argument_bytes, result_bytes, cost, role_id) VALUES ";

/// Values per tool-call row.
const TOOL_CALL_WIDTH: usize = 13;

/// Appends one tool-call audit row's values.
fn add_tool_call<'q>(args: &mut AnyArguments<'q>, call: &'q ToolCallLog, created_at: &'q str) {
    // Adding a plain integer or string to the argument buffer cannot fail.
    let _ = args.add(created_at);
    let _ = args.add(call.user_id.as_deref());
    let _ = args.add(call.virtual_key_id.as_deref());
    let _ = args.add(call.copy_id);
    let _ = args.add(call.profile_id);
    for text in [call.client_id.as_str(), call.tool.as_str(), call.outcome.as_str()] {
        let _ = args.add(text);
    }
    for n in [count(call.latency_ms), count(call.argument_bytes), count(call.result_bytes), call.cost.micros()] {
        let _ = args.add(n);
    }
    let _ = args.add(call.role_id);
}

/// A statement's text by backend, head, tail, rows and values per row.
type TextKey = (crate::Backend, &'static str, &'static str, usize, usize);

/// The texts of the multi-row statements written so far: a flush uses a few sizes over and over
/// (`statement_sizes`), so each text is written once and shared rather than written placeholder
/// by placeholder.
static TEXTS: LazyLock<Mutex<HashMap<TextKey, Arc<str>>>> = LazyLock::new(Mutex::default);

/// `head (…), (…), … tail` with `rows` rows of `width` placeholders.
fn multi_row_text(key: TextKey) -> Arc<str> {
    match TEXTS.lock() {
        Ok(mut texts) => texts.entry(key).or_insert_with(|| Arc::from(statement_text(key))).clone(),
        Err(_) => Arc::from(statement_text(key)),
    }
}

fn statement_text((backend, head, tail, rows, width): TextKey) -> String {
    let mut text = String::with_capacity(head.len() + tail.len() + rows * width * 6);
    text.push_str(head);
    let mut placeholders = 0;
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for value in 0..width {
            if value > 0 {
                text.push_str(", ");
            }
            placeholders += 1;
            // SQLite resolves a numbered `$N` by a linear search of the statement's names, which
            // is quadratic over thousands of values; an anonymous `?` is bound by position.
            match backend {
                crate::Backend::Sqlite => text.push('?'),
                crate::Backend::Postgres => {
                    let _ = write!(text, "${placeholders}");
                }
            }
        }
        text.push(')');
    }
    text.push_str(tail);
    text
}

/// `$1, $2, …, $n`.
fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl SqlStore {
    /// Budget usage rows matching `filter`, whose `$N` take `args` in order.
    async fn budget_rows(&self, filter: &str, args: &[&str]) -> Result<Vec<UsageRow>, StoreError> {
        let text = format!("SELECT budget_id, current_usage, last_reset FROM budget_usage WHERE {filter}");
        let mut query = sqlx::query(&text);
        for arg in args {
            query = query.bind(*arg);
        }
        let mut out = Vec::new();
        for r in query.fetch_all(&self.pool).await.map_err(map_err)? {
            out.push(UsageRow::Budget {
                id: r.try_get("budget_id").map_err(map_err)?,
                used: Money::from_micros(r.try_get("current_usage").map_err(map_err)?).unwrap_or(Money::ZERO),
                window_start: parse_ts(&r.try_get::<String, _>("last_reset").map_err(map_err)?)?,
            });
        }
        Ok(out)
    }

    /// Tokens and requests rows of the rate limits matching `filter`, whose `$N` take `args`.
    async fn rate_limit_rows(&self, filter: &str, args: &[&str]) -> Result<Vec<UsageRow>, StoreError> {
        let text = format!(
            "SELECT rate_limit_id, token_usage, request_usage, token_last_reset, request_last_reset FROM rate_limit_usage WHERE {filter}"
        );
        let mut query = sqlx::query(&text);
        for arg in args {
            query = query.bind(*arg);
        }
        let mut out = Vec::new();
        for r in query.fetch_all(&self.pool).await.map_err(map_err)? {
            let id: String = r.try_get("rate_limit_id").map_err(map_err)?;
            let tokens: i64 = r.try_get("token_usage").map_err(map_err)?;
            let requests: i64 = r.try_get("request_usage").map_err(map_err)?;
            out.push(UsageRow::Tokens {
                id: id.clone(),
                used: u64::try_from(tokens).unwrap_or(0),
                window_start: parse_ts(&r.try_get::<String, _>("token_last_reset").map_err(map_err)?)?,
            });
            out.push(UsageRow::Requests {
                id,
                used: u64::try_from(requests).unwrap_or(0),
                window_start: parse_ts(&r.try_get::<String, _>("request_last_reset").map_err(map_err)?)?,
            });
        }
        Ok(out)
    }
}

/// The records of one key row (see `KeyRow::records`).
fn key_records(r: &sqlx::any::AnyRow, now: DateTime<Utc>, into: &mut Vec<KeyRecord>) -> Result<(), StoreError> {
    let text = |col: &str| r.try_get::<String, _>(col).map_err(map_err);
    let opt = |col: &str| r.try_get::<Option<String>, _>(col).map_err(map_err);
    let row = KeyRow(
        text("id")?,
        text("value_hash")?,
        text("name")?,
        text("user_id")?,
        r.try_get("is_active").map_err(map_err)?,
        opt("expires_at")?,
        opt("previous_value_hash")?,
        opt("previous_value_expires_at")?,
    );
    row.records(now, into)
}

/// The key records of `rows` (see `key_records`).
fn all_key_records(rows: &[sqlx::any::AnyRow]) -> Result<Vec<KeyRecord>, StoreError> {
    let now = tollgate_core::clock::now();
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        key_records(r, now, &mut keys)?;
    }
    Ok(keys)
}

#[async_trait]
impl UsageStore for SqlStore {
    async fn load_governance(&self, copies: &mut CopySink<'_>) -> Result<GovernanceData, StoreError> {
        // One read transaction, so keys, copies and overrides agree with each other.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // In chunks: each is parsed and its copies handed on before the next arrives, so a full
        // read never holds every row's text or every parsed copy at once.
        let keys = bulk::all_keys(&mut tx, self.backend(), tollgate_core::clock::now()).await?;
        bulk::each_copy(&mut tx, self.backend(), copies).await?;
        let override_rows =
            sqlx::query(&format!("SELECT {OVERRIDE_COLUMNS} FROM budget_overrides")).fetch_all(&mut *tx).await.map_err(map_err)?;
        let overrides = override_rows.iter().map(override_from_row).collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(map_err)?;
        let providers = self.list_providers().await?;
        let provider_keys = self.sealed_provider_keys().await?;
        let (mcp_clients, virtual_mcps) = self.mcp_catalog_rows().await?;
        Ok(GovernanceData { keys, overrides, providers, provider_keys, mcp_clients, virtual_mcps })
    }

    async fn load_users(&self, users: &[String]) -> Result<UsersData, StoreError> {
        // One read transaction, so the users' keys, copies and overrides agree with each other.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut data = UsersData { users: users.to_vec(), ..UsersData::default() };
        for ids in users.chunks(ROWS_PER_STATEMENT) {
            let list = placeholders(ids.len());
            let queries = [
                format!("SELECT {} FROM virtual_keys WHERE user_id IN ({list})", KEY_FIELDS.join(", ")),
                format!("SELECT {COPY_COLUMNS} FROM user_access_profiles WHERE user_id IN ({list}) ORDER BY id"),
                format!(
                    "SELECT {OVERRIDE_COLUMNS} FROM budget_overrides WHERE copy_id IN \
                     (SELECT id FROM user_access_profiles WHERE user_id IN ({list}))"
                ),
            ];
            let mut rows = Vec::with_capacity(3);
            for text in &queries {
                let mut query = sqlx::query(text);
                for id in ids {
                    query = query.bind(id.as_str());
                }
                rows.push(query.fetch_all(&mut *tx).await.map_err(map_err)?);
            }
            data.keys.extend(all_key_records(&rows[0])?);
            data.copies.extend(rows[1].iter().map(copy_from_row).collect::<Result<Vec<_>, _>>()?);
            data.overrides.extend(rows[2].iter().map(override_from_row).collect::<Result<Vec<_>, _>>()?);
        }
        tx.commit().await.map_err(map_err)?;
        // Copies oldest first per user, as a full load gives them.
        data.copies.sort_by_key(|c| c.id);
        Ok(data)
    }

    async fn generation(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT n FROM governance_generation WHERE id = 1").fetch_one(&self.pool).await.map_err(map_err)
    }

    async fn bump_generation(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("UPDATE governance_generation SET n = n + 1 WHERE id = 1 RETURNING n")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn load_usage(&self, since: Option<DateTime<Utc>>) -> Result<Vec<UsageRow>, StoreError> {
        // Timestamps are fixed-width RFC 3339 text, so text order is time order.
        let since = since.map_or_else(String::new, ts);
        let since = [since.as_str()];
        let mut out = self.budget_rows("last_reset > $1", &since).await?;
        out.extend(self.rate_limit_rows("token_last_reset > $1 OR request_last_reset > $1", &since).await?);
        Ok(out)
    }

    async fn load_lines(&self, budgets: &[String], rate_limits: &[String]) -> Result<Vec<UsageRow>, StoreError> {
        let mut out = Vec::new();
        for ids in budgets.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            out.extend(self.budget_rows(&format!("budget_id IN ({})", placeholders(ids.len())), &ids).await?);
        }
        for ids in rate_limits.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            out.extend(self.rate_limit_rows(&format!("rate_limit_id IN ({})", placeholders(ids.len())), &ids).await?);
        }
        Ok(out)
    }

    /// Lines never go back: a value from an older window than the stored one is ignored (a reset
    /// or another instance got there first), and within one window the larger value stands.
    async fn write_usage(&self, rows: &[UsageRow], logs: &[RequestLog], tool_calls: &[ToolCallLog]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        self.upsert_usage(&mut tx, rows).await?;
        let stamps: Vec<String> = logs.iter().map(|log| ts(log.created_at)).collect();
        let mut rows = logs.iter().zip(&stamps);
        for size in statement_sizes(logs.len()) {
            let mut args = AnyArguments::default();
            for (log, stamp) in rows.by_ref().take(size) {
                add_log(&mut args, log, stamp);
            }
            let text = multi_row_text((self.backend, LOG_INSERT, "", size, LOG_WIDTH));
            sqlx::query_with(&text, args).execute(&mut *tx).await.map_err(map_err)?;
        }
        crate::log_hours::add(&mut tx, logs).await?;
        let stamps: Vec<String> = tool_calls.iter().map(|call| ts(call.created_at)).collect();
        let mut calls = tool_calls.iter().zip(&stamps);
        for size in statement_sizes(tool_calls.len()) {
            let mut args = AnyArguments::default();
            for (call, stamp) in calls.by_ref().take(size) {
                add_tool_call(&mut args, call, stamp);
            }
            let text = multi_row_text((self.backend, TOOL_CALL_INSERT, "", size, TOOL_CALL_WIDTH));
            sqlx::query_with(&text, args).execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn journal(&self, opened: &[OpenReservation], closed: &[String]) -> Result<(), StoreError> {
        crate::journal::record(self, opened, closed).await
    }

    async fn charge_journal(&self) -> Result<usize, StoreError> {
        crate::journal::charge(self).await
    }

    /// SQLite keeps no statistics unless asked, and without them a search over a large log may
    /// pick the wrong index. `optimize` analyzes the tables that need it (never analyzed, or grown
    /// tenfold), all of them (`0x10000`, not only those this connection read), each index from
    /// a sample (`analysis_limit`), so it stays cheap at millions of rows. Postgres's autovacuum
    /// does this itself.
    async fn maintain(&self) -> Result<(), StoreError> {
        if self.backend == crate::Backend::Sqlite {
            // The limit holds for the connection that sets it, so both run on one.
            let mut connection = self.pool.acquire().await.map_err(map_err)?;
            sqlx::query("PRAGMA analysis_limit = 1000").execute(&mut *connection).await.map_err(map_err)?;
            sqlx::query("PRAGMA optimize = 0x10002").execute(&mut *connection).await.map_err(map_err)?;
        }
        Ok(())
    }

    async fn prune_request_logs(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // Whole hours go, so the hourly sums keep covering exactly the rows that stay.
        let cut = crate::log_hours::prune_cut(before);
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut done = 0;
        for table in ["request_logs", "mcp_tool_calls"] {
            let text = format!("DELETE FROM {table} WHERE created_at < $1");
            done += sqlx::query(&text).bind(ts(cut)).execute(&mut *tx).await.map_err(map_err)?.rows_affected();
        }
        crate::log_hours::prune(&mut tx, cut).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    /// Closes the usage writer's own pool; a shared one stays open for its owner to close.
    async fn close(&self) {
        if self.writer_owned {
            self.pool.close().await;
        }
    }
}

impl SqlStore {
    /// Sets each line's persisted usage (keeping the latest, see `keep_latest`) inside `tx`, in
    /// a few multi-row statements: each statement is a round trip to the database (for SQLite,
    /// to its connection's thread), and a flush's cost is mostly those.
    pub(crate) async fn upsert_usage(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, rows: &[UsageRow]) -> Result<(), StoreError> {
        let mut groups: [Vec<Vec<Arg>>; 3] = Default::default();
        for row in latest_per_line(rows) {
            let (kind, values) = upsert_values(row);
            groups[kind].push(values);
        }
        let upserts = UPSERTS.iter().map(|(head, tail)| (*head, tail.as_str()));
        for (values, (head, tail)) in groups.into_iter().zip(upserts) {
            let mut values = values.into_iter();
            for size in statement_sizes(values.len()) {
                let (mut args, mut width) = (AnyArguments::default(), 0);
                for row in values.by_ref().take(size) {
                    width = row.len();
                    for value in row {
                        value.add_to(&mut args);
                    }
                }
                let text = multi_row_text((self.backend, head, tail, size, width));
                sqlx::query_with(&text, args).execute(&mut **tx).await.map_err(map_err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_batches_split_into_few_reusable_statement_sizes() {
        assert_eq!(statement_sizes(100).collect::<Vec<_>>(), vec![64, 32, 4]);
        assert_eq!(statement_sizes(300).collect::<Vec<_>>(), vec![128, 128, 32, 8, 4]);
        assert_eq!(statement_sizes(0).count(), 0);
        assert!((1..2000).all(|n| statement_sizes(n).sum::<usize>() == n));
    }
}
