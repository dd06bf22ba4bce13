//! A user's copy as the hot path reads it, and nothing more: its identity and state, each level's
//! counter lines with their limits and windows, and the grants. Parts that copies of one template
//! share (names, provider names, model lists, MCP grants) are interned, so a hundred thousand
//! copies of a thousand templates hold a thousand of each.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tollgate_core::copies::UserCopy;
use tollgate_core::ids::ProfileId;
use tollgate_core::money::Money;
use tollgate_core::overrides::{BudgetOverride, period_of};
use tollgate_core::profile::{Budget, McpServerLink, McpToolGroupLink, McpToolOverride, ProviderConfig, RateLimit};
use tollgate_core::windows::{Period, override_cycles_remaining};

use super::intern::Interner;

/// A user's copy of a template, compact.
#[derive(Debug, PartialEq)]
pub struct GovernedCopy {
    pub id: i64,
    /// The template the copy was made from.
    pub profile_id: Option<ProfileId>,
    /// The role whose default gave the copy (`None` for a direct assignment), for the log.
    pub source_role: Option<i64>,
    pub name: Arc<str>,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// Anchors the rolling windows of the copy's rate limits.
    pub created_at: DateTime<Utc>,
    pub calendar_aligned: bool,
    /// The request log keeps the prompts and answers of this copy's requests.
    pub log_content: bool,
    /// Profile-level budgets and rate limit.
    pub profile: Level,
    /// Provider configs, in the policy's order.
    pub configs: Box<[ProviderGrant]>,
    pub mcp: Arc<McpGrants>,
    /// Overrides on this copy's budgets (a copy has a few at most).
    pub overrides: Vec<BudgetOverride>,
}

/// The MCP grants of a copy, as the policy states them.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct McpGrants {
    pub tool_groups: Vec<McpToolGroupLink>,
    pub servers: Vec<McpServerLink>,
    pub tool_overrides: Vec<McpToolOverride>,
}

/// One provider config: which models, and its own budgets and rate limit.
#[derive(Debug, PartialEq)]
pub struct ProviderGrant {
    pub provider: Arc<str>,
    pub models: Arc<Models>,
    pub level: Level,
}

/// The models a provider config grants.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Models {
    /// `all_models_allowed`, or `"*"` among the listed models.
    pub every: bool,
    /// The listed models, as the policy gives them.
    pub listed: Box<[Box<str>]>,
}

impl Models {
    pub fn allows(&self, model: &str) -> bool {
        self.every || self.listed.iter().any(|m| &**m == model)
    }
}

/// The budgets and rate limit of one level of a policy.
#[derive(Debug, Default, PartialEq)]
pub struct Level {
    pub budgets: Box<[BudgetLine]>,
    pub tokens: Option<RateLine>,
    pub requests: Option<RateLine>,
}

/// A budget: its counter line (the budget id), cap and window.
#[derive(Debug, PartialEq)]
pub struct BudgetLine {
    pub line: Arc<str>,
    pub limit: Money,
    pub period: Period,
    /// Anchors the rolling window.
    pub anchor: DateTime<Utc>,
}

/// One side of a rate limit: its counter line (`<id>:t` or `<id>:r`), cap and window.
#[derive(Debug, PartialEq)]
pub struct RateLine {
    pub line: Arc<str>,
    pub limit: u64,
    pub period: Period,
}

impl GovernedCopy {
    /// The compact form of `copy` (its overrides are added after), sharing what `interner` has
    /// seen.
    pub fn new(copy: UserCopy, interner: &mut Interner) -> GovernedCopy {
        let policy = copy.policy;
        GovernedCopy {
            id: copy.id,
            profile_id: copy.parent_profile_id,
            source_role: copy.source_role_id,
            name: interner.text(&copy.name),
            is_active: copy.is_active,
            expires_at: copy.expires_at,
            created_at: copy.created_at,
            calendar_aligned: policy.calendar_aligned,
            log_content: policy.log_content,
            profile: Level::of(&policy.budgets, policy.rate_limit.as_ref()),
            configs: policy.provider_configs.iter().map(|c| ProviderGrant::of(c, interner)).collect(),
            mcp: interner.mcp(McpGrants {
                tool_groups: policy.mcp_tool_groups,
                servers: policy.mcp_servers,
                tool_overrides: policy.mcp_tool_overrides,
            }),
            overrides: Vec::new(),
        }
    }

    /// Whether the copy governs anything at `now` (active and not expired).
    pub fn live_at(&self, now: DateTime<Utc>) -> bool {
        self.is_active && self.expires_at.is_none_or(|at| at > now)
    }

    /// The config of `provider`, with its position.
    pub fn config_of(&self, provider: &str) -> Option<usize> {
        self.configs.iter().position(|c| &*c.provider == provider)
    }

    /// Every level's lines: profile first, then each config's.
    pub fn levels(&self) -> impl Iterator<Item = &Level> {
        std::iter::once(&self.profile).chain(self.configs.iter().map(|c| &c.level))
    }

    /// The override on the budget of `line`, if it is active at `now`.
    pub fn active_override(&self, budget: &BudgetLine, now: DateTime<Utc>) -> Option<&BudgetOverride> {
        let grant = self.overrides.iter().find(|o| *o.budget_id.0 == *budget.line)?;
        let left =
            grant.cycles_total.map(|total| override_cycles_remaining(budget.period, self.calendar_aligned, grant.anchor_reset, total, now));
        left.is_none_or(|left| left > 0).then_some(grant)
    }
}

impl ProviderGrant {
    fn of(config: &ProviderConfig, interner: &mut Interner) -> ProviderGrant {
        ProviderGrant {
            provider: interner.text(&config.provider_name),
            models: interner.models(Models {
                every: config.allows_every_model(),
                listed: config.allowed_models.iter().map(|m| Box::from(m.as_str())).collect(),
            }),
            level: Level::of(&config.budgets, config.rate_limit.as_ref()),
        }
    }
}

impl Level {
    fn of(budgets: &[Budget], rate_limit: Option<&RateLimit>) -> Level {
        let side = |max: Option<u64>, window, suffix: &str| {
            let (limit, window) = (max?, window?);
            let id = &rate_limit?.id.0;
            Some(RateLine { line: Arc::from(format!("{id}:{suffix}")), limit, period: Period::from(window) })
        };
        Level {
            budgets: budgets
                .iter()
                .map(|b| BudgetLine { line: Arc::from(b.id.0.as_str()), limit: b.max_limit, period: period_of(b), anchor: b.last_reset })
                .collect(),
            tokens: rate_limit.and_then(|r| side(r.token_max_limit, r.token_reset_duration, "t")),
            requests: rate_limit.and_then(|r| side(r.request_max_limit, r.request_reset_duration, "r")),
        }
    }

    /// Every counter line of the level.
    pub fn lines(&self) -> impl Iterator<Item = &Arc<str>> {
        self.budgets.iter().map(|b| &b.line).chain(self.tokens.iter().map(|r| &r.line)).chain(self.requests.iter().map(|r| &r.line))
    }

    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty() && self.tokens.is_none() && self.requests.is_none()
    }
}
