//! `UsageStore` on SQL: the governance data the gateway loads, usage rows it rebuilds counters
//! from, and the batched writes of usage and request logs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tollgate_core::money::Money;
use tollgate_core::ports::StoreError;
use tollgate_core::services::providers::ProviderStore;
use tollgate_core::usage::{GovernanceData, KeyRecord, RequestLog, UsageRow, UsageStore};

use crate::directory::{COPY_COLUMNS, OVERRIDE_COLUMNS, copy_from_row, override_from_row};
use crate::sql::{Arg, Sql};
use crate::{SqlStore, map_err, parse_ts, ts};

/// Most request-log rows per INSERT statement (11 parameters each, well under both databases' limits).
const LOG_ROWS_PER_INSERT: usize = 128;

/// Splits `n` rows into statement sizes that are powers of two (largest first), so only eight
/// statement texts ever occur and each is prepared once per connection and then reused.
fn statement_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = LOG_ROWS_PER_INSERT.min(1 << n.ilog2());
        n -= size;
        Some(size)
    })
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl UsageStore for SqlStore {
    async fn load_governance(&self) -> Result<GovernanceData, StoreError> {
        // One read transaction, so keys, copies and overrides agree with each other.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let key_rows =
            sqlx::query("SELECT id, value_hash, name, user_id, is_active FROM virtual_keys").fetch_all(&mut *tx).await.map_err(map_err)?;
        let keys = key_rows
            .iter()
            .map(|r| {
                Ok(KeyRecord {
                    id: r.try_get("id").map_err(map_err)?,
                    value_hash: r.try_get("value_hash").map_err(map_err)?,
                    name: r.try_get("name").map_err(map_err)?,
                    user_id: r.try_get("user_id").map_err(map_err)?,
                    is_active: r.try_get::<i64, _>("is_active").map_err(map_err)? != 0,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let copy_rows = sqlx::query(&format!("SELECT {COPY_COLUMNS} FROM user_access_profiles ORDER BY id"))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let copies = copy_rows.iter().map(copy_from_row).collect::<Result<Vec<_>, _>>()?;
        let override_rows =
            sqlx::query(&format!("SELECT {OVERRIDE_COLUMNS} FROM budget_overrides")).fetch_all(&mut *tx).await.map_err(map_err)?;
        let overrides = override_rows.iter().map(override_from_row).collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(map_err)?;
        let providers = self.list_providers().await?;
        let provider_keys = self.sealed_provider_keys().await?;
        Ok(GovernanceData { keys, copies, overrides, providers, provider_keys })
    }

    async fn load_usage(&self, since: Option<DateTime<Utc>>) -> Result<Vec<UsageRow>, StoreError> {
        // Timestamps are fixed-width RFC 3339 text, so text order is time order.
        let since = since.map_or_else(String::new, ts);
        let mut out = Vec::new();
        let budgets = sqlx::query("SELECT budget_id, current_usage, last_reset FROM budget_usage WHERE last_reset > $1")
            .bind(since.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        for r in budgets {
            out.push(UsageRow::Budget {
                id: r.try_get("budget_id").map_err(map_err)?,
                used: Money::from_micros(r.try_get("current_usage").map_err(map_err)?).unwrap_or(Money::ZERO),
                window_start: parse_ts(&r.try_get::<String, _>("last_reset").map_err(map_err)?)?,
            });
        }
        let rows = sqlx::query(
            "SELECT rate_limit_id, token_usage, request_usage, token_last_reset, request_last_reset FROM rate_limit_usage \
                 WHERE token_last_reset > $1 OR request_last_reset > $1",
        )
        .bind(since.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        for r in rows {
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

    /// Lines never go back: a value from an older window than the stored one is ignored (a reset
    /// or another instance got there first), and within one window the larger value stands.
    async fn write_usage(&self, rows: &[UsageRow], logs: &[RequestLog]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for row in rows {
            let query = match row {
                UsageRow::Budget { id, used, window_start } => sqlx::query(
                    "INSERT INTO budget_usage (budget_id, current_usage, last_reset) VALUES ($1, $2, $3) \
                     ON CONFLICT (budget_id) DO UPDATE SET \
                     current_usage = CASE WHEN excluded.last_reset > budget_usage.last_reset THEN excluded.current_usage \
                     WHEN excluded.last_reset = budget_usage.last_reset AND excluded.current_usage > budget_usage.current_usage \
                     THEN excluded.current_usage ELSE budget_usage.current_usage END, \
                     last_reset = CASE WHEN excluded.last_reset > budget_usage.last_reset THEN excluded.last_reset ELSE budget_usage.last_reset END",
                )
                .bind(id.as_str())
                .bind(used.micros())
                .bind(ts(*window_start)),
                UsageRow::Tokens { id, used, window_start } => sqlx::query(
                    "INSERT INTO rate_limit_usage (rate_limit_id, token_usage, request_usage, token_last_reset, request_last_reset) \
                     VALUES ($1, $2, 0, $3, $3) ON CONFLICT (rate_limit_id) DO UPDATE SET \
                     token_usage = CASE WHEN excluded.token_last_reset > rate_limit_usage.token_last_reset THEN excluded.token_usage \
                     WHEN excluded.token_last_reset = rate_limit_usage.token_last_reset \
                     AND excluded.token_usage > rate_limit_usage.token_usage THEN excluded.token_usage ELSE rate_limit_usage.token_usage END, \
                     token_last_reset = CASE WHEN excluded.token_last_reset > rate_limit_usage.token_last_reset \
                     THEN excluded.token_last_reset ELSE rate_limit_usage.token_last_reset END",
                )
                .bind(id.as_str())
                .bind(count(*used))
                .bind(ts(*window_start)),
                UsageRow::Requests { id, used, window_start } => sqlx::query(
                    "INSERT INTO rate_limit_usage (rate_limit_id, token_usage, request_usage, token_last_reset, request_last_reset) \
                     VALUES ($1, 0, $2, $3, $3) ON CONFLICT (rate_limit_id) DO UPDATE SET \
                     request_usage = CASE WHEN excluded.request_last_reset > rate_limit_usage.request_last_reset THEN excluded.request_usage \
                     WHEN excluded.request_last_reset = rate_limit_usage.request_last_reset \
                     AND excluded.request_usage > rate_limit_usage.request_usage THEN excluded.request_usage ELSE rate_limit_usage.request_usage END, \
                     request_last_reset = CASE WHEN excluded.request_last_reset > rate_limit_usage.request_last_reset \
                     THEN excluded.request_last_reset ELSE rate_limit_usage.request_last_reset END",
                )
                .bind(id.as_str())
                .bind(count(*used))
                .bind(ts(*window_start)),
            };
            query.execute(&mut *tx).await.map_err(map_err)?;
        }
        // Many rows per statement: one round trip to the database for a whole chunk of lines.
        let mut rest = logs;
        for size in statement_sizes(logs.len()) {
            let (chunk, later) = rest.split_at(size);
            rest = later;
            let mut sql = Sql::for_backend(
                self.backend,
                "INSERT INTO request_logs (created_at, user_id, virtual_key_id, provider, model, prompt_tokens, completion_tokens, cost, status, latency_ms, streamed) VALUES ",
            );
            for (i, log) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                let values = [
                    Arg::Text(ts(log.created_at)),
                    Arg::OptText(log.user_id.clone()),
                    Arg::OptText(log.virtual_key_id.clone()),
                    Arg::Text(log.provider.clone()),
                    Arg::Text(log.model.clone()),
                    Arg::Int(count(log.prompt_tokens)),
                    Arg::Int(count(log.completion_tokens)),
                    Arg::Int(log.cost.micros()),
                    Arg::Int(i64::from(log.status)),
                    Arg::Int(count(log.latency_ms)),
                    Arg::Int(i64::from(log.streamed)),
                ];
                for (j, value) in values.into_iter().enumerate() {
                    if j > 0 {
                        sql.push(", ");
                    }
                    sql.bind(value);
                }
                sql.push(")");
            }
            sql.query().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn prune_request_logs(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM request_logs WHERE created_at < $1").bind(ts(before)).execute(&self.pool).await.map_err(map_err)?;
        Ok(done.rows_affected())
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
