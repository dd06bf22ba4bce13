//! Budget alerts: a rule on an access profile (percent thresholds of each copy's budgets, a
//! webhook, its sealed signing secret), the request that defines one and its validation, the
//! events a crossing fires with their delivery outcome, and the `AlertStore` port.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::NewAuditEntry;
use crate::egress::EgressPolicy;
use crate::error::{CoreError, Problems};
use crate::ids::ProfileId;
use crate::paging::{Page, Paging};
use crate::store_error::StoreError;

/// Highest threshold: an alert may also warn of spend well past a budget (with an override,
/// a copy spends beyond its `max_limit`).
pub const MAX_THRESHOLD: u32 = 1000;
/// Most thresholds one rule holds.
pub const MAX_THRESHOLDS: usize = 10;
/// Longest signing secret, in characters.
const MAX_SECRET_CHARS: usize = 256;
/// Longest webhook URL.
const MAX_URL_CHARS: usize = 2048;

/// A stored rule. `sealed_secret` is the signing secret sealed with the server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub id: i64,
    pub profile_id: ProfileId,
    /// Whole percents of a budget's limit, ascending, each once.
    pub thresholds: Vec<u32>,
    pub webhook_url: String,
    pub sealed_secret: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rule as the API shows it: the secret only as whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlertRuleView {
    pub id: i64,
    pub access_profile_id: i64,
    pub thresholds: Vec<u32>,
    pub webhook_url: String,
    /// Always true for a stored rule; the secret itself is never returned.
    pub secret_set: bool,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&AlertRule> for AlertRuleView {
    fn from(rule: &AlertRule) -> Self {
        AlertRuleView {
            id: rule.id,
            access_profile_id: rule.profile_id.0,
            thresholds: rule.thresholds.clone(),
            webhook_url: rule.webhook_url.clone(),
            secret_set: !rule.sealed_secret.is_empty(),
            enabled: rule.enabled,
            created_at: rule.created_at,
            updated_at: rule.updated_at,
        }
    }
}

/// Body of `POST /api/governance/budget-alerts` and `PUT …/{id}` (a whole replacement; on `PUT`
/// an absent `secret` keeps the stored one).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleRequest {
    /// The template whose copies the rule watches.
    pub access_profile_id: Option<i64>,
    /// Percents of each budget's limit (1 to 1000); repeated values count once.
    pub thresholds: Option<Vec<i64>>,
    /// Where alerts are POSTed: an `http` or `https` URL.
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 signing key (1 to 256 characters); write-only.
    pub secret: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A request checked: what a rule is made of (the secret still in the clear, `None` to keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRule {
    pub profile_id: ProfileId,
    pub thresholds: Vec<u32>,
    pub webhook_url: String,
    pub secret: Option<String>,
    pub enabled: bool,
}

impl AlertRuleRequest {
    /// Validates every member, listing every problem; `secret_required` on creation. The URL
    /// must also be one `egress` lets an upstream have.
    pub fn checked(self, secret_required: bool, egress: EgressPolicy) -> Result<CheckedRule, CoreError> {
        let mut p = Problems::default();
        let profile_id = match self.access_profile_id {
            Some(id) if id > 0 => ProfileId(id),
            Some(_) => {
                p.add("access_profile_id", "must be a positive id");
                ProfileId(0)
            }
            None => {
                p.add("access_profile_id", "is required");
                ProfileId(0)
            }
        };
        let thresholds = checked_thresholds(self.thresholds.as_deref(), &mut p);
        let webhook_url = match self.webhook_url.as_deref().map(str::trim) {
            None | Some("") => {
                p.add("webhook_url", "is required");
                String::new()
            }
            Some(text) => {
                if let Err(message) = check_url(text).and_then(|()| egress.check_base_url(text)) {
                    p.add("webhook_url", message);
                }
                text.to_owned()
            }
        };
        match self.secret.as_deref() {
            None if secret_required => p.add("secret", "is required"),
            Some(s) if s.is_empty() || s.chars().count() > MAX_SECRET_CHARS => {
                p.add("secret", format!("must be 1 to {MAX_SECRET_CHARS} characters"));
            }
            _ => {}
        }
        p.into_result(CheckedRule { profile_id, thresholds, webhook_url, secret: self.secret, enabled: self.enabled.unwrap_or(true) })
    }
}

fn checked_thresholds(given: Option<&[i64]>, p: &mut Problems) -> Vec<u32> {
    let Some(given) = given else {
        p.add("thresholds", "is required");
        return Vec::new();
    };
    let mut out: Vec<u32> = Vec::with_capacity(given.len());
    for value in given {
        match u32::try_from(*value) {
            Ok(v) if (1..=MAX_THRESHOLD).contains(&v) => out.push(v),
            _ => p.add("thresholds", format!("{value} is not a whole percent from 1 to {MAX_THRESHOLD}")),
        }
    }
    out.sort_unstable();
    out.dedup();
    if given.is_empty() {
        p.add("thresholds", "must name at least one percent");
    } else if out.len() > MAX_THRESHOLDS {
        p.add("thresholds", format!("at most {MAX_THRESHOLDS} distinct percents"));
    }
    out
}

fn check_url(text: &str) -> Result<(), String> {
    if text.len() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters"));
    }
    let url = url::Url::parse(text).map_err(|_| "must be an http(s) URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http(s) URL".to_owned());
    }
    if url.host().is_none() {
        return Err("must name a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; the signature authenticates the sender".to_owned());
    }
    Ok(())
}

/// An alert a crossing fires, about to be claimed: unique per (rule, copy, budget, window
/// start, threshold). `body` is the JSON sent, the same bytes on every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlertEvent {
    pub id: String,
    pub rule_id: i64,
    pub profile_id: ProfileId,
    pub copy_id: i64,
    pub user_id: String,
    pub budget_id: String,
    pub window_start: DateTime<Utc>,
    pub threshold: u32,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// The webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPayload {
    /// Also sent as `x-tollgate-event-id`; the same on every attempt, for the receiver's de-duplication.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub rule_id: i64,
    pub access_profile_id: i64,
    pub access_profile_name: String,
    pub copy_id: i64,
    pub user_id: String,
    pub budget_id: String,
    pub threshold_percent: u32,
    /// Dollars used in the window when the crossing was seen.
    pub used: f64,
    /// The effective limit in dollars (an active override included).
    pub limit: f64,
    pub window_start: DateTime<Utc>,
    pub window_reset: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A claimed event leased to this instance for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDelivery {
    pub id: String,
    pub rule_id: i64,
    pub profile_id: ProfileId,
    pub user_id: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOutcome {
    Delivered { attempts: u32, at: DateTime<Utc> },
    Retry { attempts: u32, next_at: DateTime<Utc>, error: String },
    Failed { attempts: u32, at: DateTime<Utc>, error: String },
}

/// Where rules and events are kept. Each write with an audit entry is one transaction.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Rules by id, of one profile or all, a page of them.
    async fn list_alert_rules(&self, profile: Option<ProfileId>, paging: Paging) -> Result<Page<AlertRule>, StoreError>;
    async fn get_alert_rule(&self, id: i64) -> Result<Option<AlertRule>, StoreError>;
    /// Every enabled rule, for detection.
    async fn enabled_alert_rules(&self) -> Result<Vec<AlertRule>, StoreError>;
    async fn insert_alert_rule(&self, rule: &AlertRule, audit: &NewAuditEntry) -> Result<(), StoreError>;
    /// False when no such rule exists.
    async fn replace_alert_rule(&self, rule: &AlertRule, audit: &NewAuditEntry) -> Result<bool, StoreError>;
    async fn delete_alert_rule(&self, id: i64, audit: &NewAuditEntry) -> Result<bool, StoreError>;
    /// Inserts the event unless its unique key is taken; true when this call created it (then
    /// leased to the caller until `lease_until`).
    async fn claim_alert(&self, event: &NewAlertEvent, lease_until: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Leases up to `limit` pending events due at `now` whose lease is free, each with a guarded
    /// update, so two instances never lease the same one.
    async fn lease_due_alerts(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> Result<Vec<AlertDelivery>, StoreError>;
    /// Records an attempt's outcome (and its audit entry, if any) in one transaction.
    async fn finish_alert(&self, id: &str, outcome: &AlertOutcome, audit: Option<&NewAuditEntry>) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(thresholds: Vec<i64>, url: &str) -> AlertRuleRequest {
        AlertRuleRequest {
            access_profile_id: Some(1),
            thresholds: Some(thresholds),
            webhook_url: Some(url.to_owned()),
            secret: Some("s".to_owned()),
            enabled: None,
        }
    }

    #[test]
    fn thresholds_are_sorted_and_counted_once() {
        let rule = request(vec![100, 50, 80, 50], "https://hooks.example.com/x")
            .checked(true, EgressPolicy::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rule.thresholds, vec![50, 80, 100]);
        assert!(rule.enabled);
    }

    #[test]
    fn every_problem_is_named() {
        let bad = AlertRuleRequest {
            access_profile_id: Some(0),
            thresholds: Some(vec![0, 1001]),
            webhook_url: Some("ftp://x".into()),
            ..Default::default()
        };
        let message = bad.checked(true, EgressPolicy::default()).err().map(|e| e.to_string()).unwrap_or_default();
        for needle in ["access_profile_id", "0 is not", "1001 is not", "webhook_url: must be an http(s) URL", "secret: is required"] {
            assert!(message.contains(needle), "{needle} missing from {message}");
        }
        let message = request(vec![50], "https://user:pw@example.com/")
            .checked(true, EgressPolicy::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("credentials"), "{message}");
        let metadata = request(vec![50], "http://169.254.169.254/latest").checked(true, EgressPolicy::default());
        assert!(metadata.err().is_some_and(|e| e.to_string().contains("cloud-metadata")), "the gateway's egress rules apply");
        let private = EgressPolicy { block_private: true };
        assert!(request(vec![50], "http://127.0.0.1:9/").checked(true, private).is_err());
        assert!(request(vec![], "https://example.com/").checked(true, EgressPolicy::default()).is_err());
        let keep = AlertRuleRequest { secret: None, ..request(vec![50], "http://127.0.0.1:9/") };
        assert_eq!(keep.checked(false, EgressPolicy::default()).map(|r| r.secret).ok(), Some(None), "on replace an absent secret is kept");
    }
}
