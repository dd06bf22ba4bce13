//! Budget overrides on one user's copy: an extra amount on top of a budget line, for a number
//! of reset windows (anchored to the window current at grant time) or until removed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{CoreError, Problems};
use crate::ids::BudgetId;
use crate::money::Money;
use crate::profile::Budget;
use crate::window::{BudgetResetConfig, BudgetResetDuration};
use crate::windows::{Period, override_cycles_remaining};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverrideMode {
    /// For `cycles` reset windows, the current one counting as the first.
    Cycles,
    /// Until removed.
    Forever,
}

impl OverrideMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideMode::Cycles => "cycles",
            OverrideMode::Forever => "forever",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cycles" => Some(OverrideMode::Cycles),
            "forever" => Some(OverrideMode::Forever),
            _ => None,
        }
    }
}

/// Usage of one budget line in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUsage {
    pub current_usage: Money,
    pub last_reset: DateTime<Utc>,
}

/// A stored override of one copy budget line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetOverride {
    pub budget_id: BudgetId,
    pub copy_id: i64,
    pub amount: Money,
    pub mode: OverrideMode,
    pub cycles_total: Option<u32>,
    /// Start of the window that was current when the override was granted.
    pub anchor_reset: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Body of `PUT …/budgets/{budget_id}/override`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct OverrideRequest {
    /// Extra dollars on top of `max_limit`; greater than 0.
    #[schema(exclusive_minimum = 0)]
    pub amount: f64,
    pub mode: OverrideMode,
    /// Required (and > 0) with `cycles`; must be absent with `forever`.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub cycles: Option<u32>,
}

impl OverrideRequest {
    /// Validates the request into (amount, cycles).
    pub fn checked(&self) -> Result<(Money, Option<u32>), CoreError> {
        let mut p = Problems::default();
        let amount = match Money::from_dollars(self.amount) {
            Ok(m) if m.micros() > 0 => m,
            Ok(_) => {
                p.add("amount", "must be greater than 0");
                Money::ZERO
            }
            Err(e) => {
                p.add("amount", e.to_string());
                Money::ZERO
            }
        };
        match (self.mode, self.cycles) {
            (OverrideMode::Cycles, None | Some(0)) => p.add("cycles", "is required and must be greater than 0 with mode cycles"),
            (OverrideMode::Forever, Some(_)) => p.add("cycles", "must be omitted with mode forever"),
            _ => {}
        }
        p.into_result((amount, self.cycles))
    }
}

/// A copy budget line with its usage and override state, as the override endpoints answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OverriddenBudget {
    pub id: BudgetId,
    #[schema(value_type = f64)]
    pub max_limit: Money,
    pub reset_duration: BudgetResetDuration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_config: Option<BudgetResetConfig>,
    /// Start of the current window.
    pub last_reset: DateTime<Utc>,
    #[schema(value_type = f64)]
    pub current_usage: Money,
    pub calendar_aligned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub override_amount: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_mode: Option<OverrideMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_cycles_remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_cycles_total: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_anchor_reset: Option<DateTime<Utc>>,
}

/// The answer of the override endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BudgetOverrideResponse {
    pub budget: OverriddenBudget,
    /// `max_limit + override_amount` while the override is active, else `max_limit`.
    #[schema(value_type = f64)]
    pub effective_max_limit: Money,
}

/// The window period of a budget line.
pub fn period_of(budget: &Budget) -> Period {
    Period::of_budget(budget.reset_duration, budget.reset_config)
}

/// The start of the line's current window (the line's creation anchors rolling windows).
pub fn current_window_start(budget: &Budget, calendar_aligned: bool, now: DateTime<Utc>) -> DateTime<Utc> {
    period_of(budget).window_start(calendar_aligned, budget.last_reset, now)
}

impl BudgetOverride {
    /// Remaining windows of a `cycles` override (0 once used up); `None` for `forever`.
    pub fn cycles_remaining(&self, budget: &Budget, calendar_aligned: bool, now: DateTime<Utc>) -> Option<u32> {
        let total = self.cycles_total?;
        Some(override_cycles_remaining(period_of(budget), calendar_aligned, self.anchor_reset, total, now))
    }

    pub fn is_active(&self, budget: &Budget, calendar_aligned: bool, now: DateTime<Utc>) -> bool {
        self.cycles_remaining(budget, calendar_aligned, now).is_none_or(|left| left > 0)
    }
}

/// Builds the override view of a copy budget line.
pub fn overridden(
    budget: &Budget,
    calendar_aligned: bool,
    usage: Option<BudgetUsage>,
    grant: Option<&BudgetOverride>,
    now: DateTime<Utc>,
) -> BudgetOverrideResponse {
    let window = current_window_start(budget, calendar_aligned, now);
    let current_usage = usage.filter(|u| u.last_reset >= window).map_or(Money::ZERO, |u| u.current_usage);
    let active = grant.filter(|g| g.is_active(budget, calendar_aligned, now));
    let effective =
        active.map_or(budget.max_limit, |g| Money::from_micros(budget.max_limit.micros() + g.amount.micros()).unwrap_or(budget.max_limit));
    BudgetOverrideResponse {
        budget: OverriddenBudget {
            id: budget.id.clone(),
            max_limit: budget.max_limit,
            reset_duration: budget.reset_duration,
            reset_config: budget.reset_config,
            last_reset: window,
            current_usage,
            calendar_aligned,
            override_amount: active.map(|g| g.amount),
            override_mode: active.map(|g| g.mode),
            override_cycles_remaining: active.and_then(|g| g.cycles_remaining(budget, calendar_aligned, now)),
            override_cycles_total: active.and_then(|g| g.cycles_total),
            override_anchor_reset: active.map(|g| g.anchor_reset),
        },
        effective_max_limit: effective,
    }
}
