//! Budget-alert rule use cases: list, read, define, replace and delete the rules of access
//! profiles. The signing secret is sealed before it reaches the store and never leaves it again
//! through here; every write carries its audit entry in the same transaction.

use std::sync::Arc;

use crate::alerts::{AlertRule, AlertRuleRequest, AlertRuleView, CheckedRule};
use crate::audit::{AuditAction, NewAuditEntry};
use crate::auth::Principal;
use crate::egress::EgressPolicy;
use crate::error::CoreError;
use crate::ids::{ProfileId, Sequence};
use crate::paging::{Page, Paging};
use crate::ports::Store;
use crate::vkeys::Sealer;

pub use crate::alerts::AlertStore;

#[derive(Clone)]
pub struct AlertService {
    store: Arc<dyn Store>,
    sealer: Sealer,
    egress: EgressPolicy,
}

impl std::fmt::Debug for AlertService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertService").finish_non_exhaustive()
    }
}

fn missing(id: i64) -> CoreError {
    CoreError::NotFound(format!("budget alert rule {id} not found"))
}

/// The audit entry of a change to `rule` (before and after as the API shows them, no secret).
fn entry(actor: &Principal, action: AuditAction, rule: &AlertRule, previous: Option<&AlertRule>, new: Option<&AlertRule>) -> NewAuditEntry {
    let shown = |r: &AlertRule| serde_json::to_string(&AlertRuleView::from(r)).ok();
    NewAuditEntry {
        profile_id: Some(rule.profile_id),
        user_id: None,
        actor: actor.actor(),
        action,
        previous_values: previous.and_then(shown),
        new_values: new.and_then(shown),
        metadata: Some(serde_json::json!({ "budget_alert_rule_id": rule.id }).to_string()),
        created_at: crate::clock::now(),
    }
}

impl AlertService {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        Self { store, sealer, egress: EgressPolicy::default() }
    }

    /// Webhook URLs must be addresses the operator lets upstreams have (`[gateway] block_private_upstreams`).
    #[must_use]
    pub fn with_egress(self, egress: EgressPolicy) -> Self {
        Self { egress, ..self }
    }

    /// Rules by id, of one profile or of all, a page of them.
    pub async fn list(&self, profile: Option<ProfileId>, paging: Paging) -> Result<Page<AlertRuleView>, CoreError> {
        let page = self.store.list_alert_rules(profile, paging).await?;
        Ok(Page { items: page.items.iter().map(AlertRuleView::from).collect(), total: page.total })
    }

    async fn stored(&self, id: i64) -> Result<AlertRule, CoreError> {
        self.store.get_alert_rule(id).await?.ok_or_else(|| missing(id))
    }

    pub async fn get(&self, id: i64) -> Result<AlertRuleView, CoreError> {
        Ok(AlertRuleView::from(&self.stored(id).await?))
    }

    /// A checked request whose profile exists.
    async fn checked(&self, req: AlertRuleRequest, secret_required: bool) -> Result<CheckedRule, CoreError> {
        let rule = req.checked(secret_required, self.egress)?;
        if self.store.get_profile(rule.profile_id).await?.is_none() {
            return Err(CoreError::invalid("access_profile_id", format!("access profile {} does not exist", rule.profile_id.0)));
        }
        Ok(rule)
    }

    pub async fn create(&self, actor: &Principal, req: AlertRuleRequest) -> Result<AlertRuleView, CoreError> {
        let checked = self.checked(req, true).await?;
        let sealed_secret = self.sealer.seal(checked.secret.as_deref().unwrap_or_default())?;
        let id = self.store.next_ids(Sequence::BudgetAlert, 1).await?.first().copied().unwrap_or_default();
        let now = crate::clock::now();
        let rule = AlertRule {
            id,
            profile_id: checked.profile_id,
            thresholds: checked.thresholds,
            webhook_url: checked.webhook_url,
            sealed_secret,
            enabled: checked.enabled,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_alert_rule(&rule, &entry(actor, AuditAction::CreateAlertRule, &rule, None, Some(&rule))).await?;
        Ok(AlertRuleView::from(&rule))
    }

    /// Replaces a rule whole; an absent `secret` keeps the stored one.
    pub async fn replace(&self, actor: &Principal, id: i64, req: AlertRuleRequest) -> Result<AlertRuleView, CoreError> {
        let stored = self.stored(id).await?;
        let checked = self.checked(req, false).await?;
        let sealed_secret = match checked.secret.as_deref() {
            Some(secret) => self.sealer.seal(secret)?,
            None => stored.sealed_secret.clone(),
        };
        let rule = AlertRule {
            id,
            profile_id: checked.profile_id,
            thresholds: checked.thresholds,
            webhook_url: checked.webhook_url,
            sealed_secret,
            enabled: checked.enabled,
            created_at: stored.created_at,
            updated_at: crate::clock::now(),
        };
        let audit = entry(actor, AuditAction::UpdateAlertRule, &rule, Some(&stored), Some(&rule));
        if !self.store.replace_alert_rule(&rule, &audit).await? {
            return Err(missing(id));
        }
        Ok(AlertRuleView::from(&rule))
    }

    pub async fn delete(&self, actor: &Principal, id: i64) -> Result<AlertRuleView, CoreError> {
        let stored = self.stored(id).await?;
        if !self.store.delete_alert_rule(id, &entry(actor, AuditAction::DeleteAlertRule, &stored, Some(&stored), None)).await? {
            return Err(missing(id));
        }
        Ok(AlertRuleView::from(&stored))
    }
}
