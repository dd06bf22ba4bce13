//! Per-user copies of access-profile templates: how a copy is made with fresh counters, and how
//! chosen field groups of a template are propagated into it without losing usage.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{BudgetId, ProfileId, RateLimitId};
use crate::money::Money;
use crate::profile::{AccessProfile, Budget, Policy, RateLimit};

/// A user's own copy of a template, with its own budget and rate-limit ids (and so counters).
#[derive(Debug, Clone, PartialEq)]
pub struct UserCopy {
    pub id: i64,
    pub user_id: String,
    pub parent_profile_id: Option<ProfileId>,
    pub name: String,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub policy: Policy,
    /// The role whose default produced the copy; `None` for a direct assignment.
    pub source_role_id: Option<i64>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The field groups propagate can copy from a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PropagateField {
    ProviderConfigs,
    Budgets,
    RateLimit,
    McpToolGroups,
    McpServers,
    McpToolOverrides,
    /// Tollgate's own: whether the copy's requests keep their prompt and answer in the log.
    LogContent,
}

/// The counters a propagation keeps, resets or drops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterChanges {
    /// Lines that continue with their usage zeroed (`reset_usage`).
    pub reset_budgets: Vec<BudgetId>,
    pub reset_rate_limits: Vec<RateLimitId>,
    /// Lines that no longer exist: their usage and overrides go.
    pub dropped_budgets: Vec<BudgetId>,
    pub dropped_rate_limits: Vec<RateLimitId>,
}

impl UserCopy {
    /// A new copy of `template` for `user_id` with fresh ids for every budget and rate limit.
    pub fn from_template(id: i64, user_id: &str, template: &AccessProfile, source_role_id: Option<i64>, now: DateTime<Utc>) -> UserCopy {
        let mut policy = template.policy.clone();
        refresh_lines(&mut policy.budgets, &mut policy.rate_limit, now);
        for config in &mut policy.provider_configs {
            refresh_lines(&mut config.budgets, &mut config.rate_limit, now);
        }
        UserCopy {
            id,
            user_id: user_id.to_owned(),
            parent_profile_id: Some(template.id),
            name: template.name.clone(),
            is_active: true,
            expires_at: None,
            policy,
            source_role_id,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// The policy this copy would have after propagating `fields` from `template`. A line whose
    /// window matches an existing line of the copy keeps that line's id, so its usage and any
    /// override carry on; `reset_usage` zeroes the usage of kept lines instead.
    pub fn propagated(
        &self,
        template: &AccessProfile,
        fields: &[PropagateField],
        reset_usage: bool,
        now: DateTime<Utc>,
    ) -> (Policy, CounterChanges) {
        let mut next = self.policy.clone();
        let source = &template.policy;
        for field in fields {
            match field {
                PropagateField::Budgets => {
                    next.budgets = merge_budgets(&self.policy.budgets, &source.budgets, now);
                    next.calendar_aligned = source.calendar_aligned;
                }
                PropagateField::RateLimit => {
                    next.rate_limit = merge_rate_limit(self.policy.rate_limit.as_ref(), source.rate_limit.as_ref());
                    next.calendar_aligned = source.calendar_aligned;
                }
                PropagateField::ProviderConfigs => {
                    next.provider_configs = source
                        .provider_configs
                        .iter()
                        .map(|config| {
                            let mine = self.policy.provider_configs.iter().find(|c| c.provider_name == config.provider_name);
                            let mut merged = config.clone();
                            merged.budgets = merge_budgets(mine.map_or(&[][..], |c| &c.budgets), &config.budgets, now);
                            merged.rate_limit = merge_rate_limit(mine.and_then(|c| c.rate_limit.as_ref()), config.rate_limit.as_ref());
                            merged
                        })
                        .collect();
                }
                PropagateField::McpToolGroups => next.mcp_tool_groups.clone_from(&source.mcp_tool_groups),
                PropagateField::McpServers => next.mcp_servers.clone_from(&source.mcp_servers),
                PropagateField::McpToolOverrides => next.mcp_tool_overrides.clone_from(&source.mcp_tool_overrides),
                PropagateField::LogContent => next.log_content = source.log_content,
            }
        }
        let changes = counter_changes(&self.policy, &next, reset_usage);
        (next, changes)
    }
}

fn refresh_lines(budgets: &mut [Budget], rate_limit: &mut Option<RateLimit>, now: DateTime<Utc>) {
    for budget in budgets {
        budget.id = BudgetId::generate();
        budget.current_usage = Money::ZERO;
        budget.last_reset = now;
    }
    if let Some(r) = rate_limit {
        r.id = RateLimitId::generate();
        r.token_current_usage = 0;
        r.request_current_usage = 0;
    }
}

fn merge_budgets(mine: &[Budget], template: &[Budget], now: DateTime<Utc>) -> Vec<Budget> {
    template
        .iter()
        .map(|line| {
            let mut merged = line.clone();
            let kept = mine.iter().find(|b| b.reset_duration == line.reset_duration);
            merged.id = kept.map_or_else(BudgetId::generate, |b| b.id.clone());
            merged.last_reset = kept.map_or(now, |b| b.last_reset);
            merged.current_usage = Money::ZERO;
            merged
        })
        .collect()
}

fn merge_rate_limit(mine: Option<&RateLimit>, template: Option<&RateLimit>) -> Option<RateLimit> {
    let mut merged = template?.clone();
    merged.id = mine.map_or_else(RateLimitId::generate, |r| r.id.clone());
    merged.token_current_usage = 0;
    merged.request_current_usage = 0;
    Some(merged)
}

fn all_lines(policy: &Policy) -> (Vec<BudgetId>, Vec<RateLimitId>) {
    let mut budgets: Vec<BudgetId> = policy.budgets.iter().map(|b| b.id.clone()).collect();
    let mut limits: Vec<RateLimitId> = policy.rate_limit.iter().map(|r| r.id.clone()).collect();
    for config in &policy.provider_configs {
        budgets.extend(config.budgets.iter().map(|b| b.id.clone()));
        limits.extend(config.rate_limit.iter().map(|r| r.id.clone()));
    }
    (budgets, limits)
}

fn counter_changes(before: &Policy, after: &Policy, reset_usage: bool) -> CounterChanges {
    let (old_budgets, old_limits) = all_lines(before);
    let (new_budgets, new_limits) = all_lines(after);
    CounterChanges {
        reset_budgets: if reset_usage { new_budgets.iter().filter(|b| old_budgets.contains(b)).cloned().collect() } else { Vec::new() },
        reset_rate_limits: if reset_usage { new_limits.iter().filter(|r| old_limits.contains(r)).cloned().collect() } else { Vec::new() },
        dropped_budgets: old_budgets.into_iter().filter(|b| !new_budgets.contains(b)).collect(),
        dropped_rate_limits: old_limits.into_iter().filter(|r| !new_limits.contains(r)).collect(),
    }
}

/// All budget lines of a policy with their owner scope (profile level first).
pub fn budget_lines(policy: &Policy) -> impl Iterator<Item = &Budget> {
    policy.budgets.iter().chain(policy.provider_configs.iter().flat_map(|c| c.budgets.iter()))
}
