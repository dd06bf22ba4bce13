//! `AlertStore` on SQL: budget-alert rules (thresholds as a JSON list, the secret sealed) and
//! their events — claimed once by a unique key (`ON CONFLICT DO NOTHING`), leased for delivery
//! by a guarded update, finished with their audit entry in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::alerts::{AlertDelivery, AlertOutcome, AlertRule, AlertStore, NewAlertEvent};
use tollgate_core::audit::NewAuditEntry;
use tollgate_core::ids::ProfileId;
use tollgate_core::paging::{Page, Paging};
use tollgate_core::ports::StoreError;

use crate::audit::insert_audit;
use crate::sql::{Arg, Sql};
use crate::{SqlStore, json_err, map_err, parse_ts, ts};

const RULE_COLUMNS: &str = "id, access_profile_id, thresholds, webhook_url, secret, enabled, created_at, updated_at";

fn rule_from_row(row: &AnyRow) -> Result<AlertRule, StoreError> {
    let thresholds: String = row.try_get("thresholds").map_err(map_err)?;
    Ok(AlertRule {
        id: row.try_get("id").map_err(map_err)?,
        profile_id: ProfileId(row.try_get("access_profile_id").map_err(map_err)?),
        thresholds: serde_json::from_str(&thresholds).map_err(|e| json_err(&e))?,
        webhook_url: row.try_get("webhook_url").map_err(map_err)?,
        sealed_secret: row.try_get("secret").map_err(map_err)?,
        enabled: row.try_get::<i64, _>("enabled").map_err(map_err)? != 0,
        created_at: parse_ts(&row.try_get::<String, _>("created_at").map_err(map_err)?)?,
        updated_at: parse_ts(&row.try_get::<String, _>("updated_at").map_err(map_err)?)?,
    })
}

fn thresholds_text(rule: &AlertRule) -> Result<String, StoreError> {
    serde_json::to_string(&rule.thresholds).map_err(|e| json_err(&e))
}

fn delivery_from_row(row: &AnyRow) -> Result<AlertDelivery, StoreError> {
    Ok(AlertDelivery {
        id: row.try_get("id").map_err(map_err)?,
        rule_id: row.try_get("rule_id").map_err(map_err)?,
        profile_id: ProfileId(row.try_get("access_profile_id").map_err(map_err)?),
        user_id: row.try_get("user_id").map_err(map_err)?,
        body: row.try_get("body").map_err(map_err)?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(map_err)?).unwrap_or(u32::MAX),
    })
}

#[async_trait]
impl AlertStore for SqlStore {
    async fn list_alert_rules(&self, profile: Option<ProfileId>, paging: Paging) -> Result<Page<AlertRule>, StoreError> {
        let filter = |sql: &mut Sql| {
            if let Some(p) = profile {
                sql.push(" WHERE access_profile_id = ").bind(Arg::Int(p.0));
            }
        };
        let mut count = Sql::new("SELECT COUNT(*) AS n FROM budget_alert_rules");
        filter(&mut count);
        let mut page = Sql::new(&format!("SELECT {RULE_COLUMNS} FROM budget_alert_rules"));
        filter(&mut page);
        page.push(" ORDER BY id LIMIT ").bind(Arg::Int(paging.limit.map_or(i64::MAX, i64::from)));
        page.push(" OFFSET ").bind(Arg::Int(i64::from(paging.offset)));
        let total: i64 = count.query().fetch_one(&self.pool).await.map_err(map_err)?.try_get("n").map_err(map_err)?;
        let rows = page.query().fetch_all(&self.pool).await.map_err(map_err)?;
        let items = rows.iter().map(rule_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, total: u64::try_from(total).unwrap_or(0) })
    }

    async fn get_alert_rule(&self, id: i64) -> Result<Option<AlertRule>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM budget_alert_rules WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn enabled_alert_rules(&self) -> Result<Vec<AlertRule>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM budget_alert_rules WHERE enabled = 1 ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn insert_alert_rule(&self, rule: &AlertRule, audit: &NewAuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(&format!("INSERT INTO budget_alert_rules ({RULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(rule.id)
            .bind(rule.profile_id.0)
            .bind(thresholds_text(rule)?)
            .bind(rule.webhook_url.as_str())
            .bind(rule.sealed_secret.as_str())
            .bind(i64::from(rule.enabled))
            .bind(ts(rule.created_at))
            .bind(ts(rule.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn replace_alert_rule(&self, rule: &AlertRule, audit: &NewAuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE budget_alert_rules SET access_profile_id = $2, thresholds = $3, webhook_url = $4, secret = $5, enabled = $6, \
             updated_at = $7 WHERE id = $1",
        )
        .bind(rule.id)
        .bind(rule.profile_id.0)
        .bind(thresholds_text(rule)?)
        .bind(rule.webhook_url.as_str())
        .bind(rule.sealed_secret.as_str())
        .bind(i64::from(rule.enabled))
        .bind(ts(rule.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn delete_alert_rule(&self, id: i64, audit: &NewAuditEntry) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query("DELETE FROM budget_alert_rules WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn claim_alert(&self, e: &NewAlertEvent, lease_until: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO budget_alert_events (id, rule_id, access_profile_id, copy_id, user_id, budget_id, window_start, threshold, body, \
             state, attempts, next_attempt_at, lease_until, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $11, $10) \
             ON CONFLICT (rule_id, copy_id, budget_id, window_start, threshold) DO NOTHING",
        )
        .bind(e.id.as_str())
        .bind(e.rule_id)
        .bind(e.profile_id.0)
        .bind(e.copy_id)
        .bind(e.user_id.as_str())
        .bind(e.budget_id.as_str())
        .bind(ts(e.window_start))
        .bind(i64::from(e.threshold))
        .bind(e.body.as_str())
        .bind(ts(e.created_at))
        .bind(ts(lease_until))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease_due_alerts(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> Result<Vec<AlertDelivery>, StoreError> {
        let free = "state = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)";
        let due = sqlx::query(&format!("SELECT id FROM budget_alert_events WHERE {free} ORDER BY next_attempt_at LIMIT {limit}"))
            .bind(ts(now))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut leased = Vec::new();
        for row in due {
            let id: String = row.try_get("id").map_err(map_err)?;
            // Guarded: another instance that leased it first makes this match nothing.
            let done = sqlx::query(&format!("UPDATE budget_alert_events SET lease_until = $2 WHERE id = $3 AND {free}"))
                .bind(ts(now))
                .bind(ts(lease_until))
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 1 {
                let row =
                    sqlx::query("SELECT id, rule_id, access_profile_id, user_id, body, attempts FROM budget_alert_events WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_err)?;
                leased.push(delivery_from_row(&row)?);
            }
        }
        Ok(leased)
    }

    async fn finish_alert(&self, id: &str, outcome: &AlertOutcome, audit: Option<&NewAuditEntry>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let query = match outcome {
            AlertOutcome::Delivered { attempts, at } => sqlx::query(
                "UPDATE budget_alert_events SET state = 'delivered', attempts = $2, lease_until = NULL, last_error = NULL, finished_at = $3 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(i64::from(*attempts))
            .bind(ts(*at)),
            AlertOutcome::Retry { attempts, next_at, error } => sqlx::query(
                "UPDATE budget_alert_events SET attempts = $2, next_attempt_at = $3, lease_until = NULL, last_error = $4 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(i64::from(*attempts))
            .bind(ts(*next_at))
            .bind(error.as_str()),
            AlertOutcome::Failed { attempts, at, error } => sqlx::query(
                "UPDATE budget_alert_events SET state = 'failed', attempts = $2, lease_until = NULL, last_error = $4, finished_at = $3 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(i64::from(*attempts))
            .bind(ts(*at))
            .bind(error.as_str()),
        };
        let done = query.execute(&mut *tx).await.map_err(map_err)?;
        if done.rows_affected() == 1
            && let Some(entry) = audit
        {
            insert_audit(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(map_err)
    }
}
