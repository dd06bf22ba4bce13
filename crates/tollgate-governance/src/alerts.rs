//! Budget-alert detection, off the hot path: given the budget lines a usage flush wrote (their
//! new values), the snapshot and the enabled rules, which thresholds each line has reached in
//! its current window. Pure: claiming and delivering the alerts is the caller's.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hashbrown::HashMap;
use tollgate_core::alerts::AlertRule;
use tollgate_core::ids::ProfileId;

use crate::counters::{LineKind, LineValue};
use crate::snapshot::{BudgetLine, GovernedCopy, Snapshot};

/// A threshold a copy's budget has reached in its current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub rule_id: i64,
    pub profile_id: ProfileId,
    /// The copy's name (its template's at the time it was made or last propagated).
    pub profile_name: String,
    pub copy_id: i64,
    pub user_id: String,
    pub budget_id: String,
    pub threshold: u32,
    /// Micro-dollars used in the window.
    pub used: u64,
    /// The effective limit in micro-dollars: the budget's, plus an override active at the time.
    pub limit: u64,
    pub window_start: DateTime<Utc>,
    pub window_reset: DateTime<Utc>,
}

/// Which copy (and user) owns each budget line of the copies made from a profile with an enabled
/// rule; built from one snapshot and rule set, and rebuilt when either changes.
#[derive(Debug, Default)]
pub struct AlertIndex {
    owners: HashMap<Arc<str>, (Arc<str>, i64)>,
    rules: HashMap<ProfileId, Vec<AlertRule>>,
}

impl AlertIndex {
    /// Indexes the budget lines of `snapshot`'s copies whose template has one of `rules`.
    pub fn new(snapshot: &Snapshot, rules: Vec<AlertRule>) -> AlertIndex {
        let mut by_profile: HashMap<ProfileId, Vec<AlertRule>> = HashMap::new();
        for rule in rules.into_iter().filter(|r| r.enabled) {
            by_profile.entry(rule.profile_id).or_default().push(rule);
        }
        let mut owners = HashMap::new();
        if !by_profile.is_empty() {
            for (user, copies) in snapshot.holders() {
                for copy in copies.iter().filter(|c| c.profile_id.is_some_and(|p| by_profile.contains_key(&p))) {
                    for budget in copy.levels().flat_map(|l| l.budgets.iter()) {
                        owners.insert(Arc::clone(&budget.line), (Arc::clone(user), copy.id));
                    }
                }
            }
        }
        AlertIndex { owners, rules: by_profile }
    }

    /// Whether any rule is watched at all (nothing to do otherwise).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every (rule, threshold) that `values` reach at `now`, ascending by threshold within each
    /// line: one crossing per threshold reached, also when a single charge passes several. A line
    /// whose window has ended (its value predates a reset), a zero limit or nothing used yields none.
    pub fn crossings(&self, snapshot: &Snapshot, values: &[LineValue], now: DateTime<Utc>) -> Vec<Crossing> {
        let mut out = Vec::new();
        for value in values.iter().filter(|v| v.kind == LineKind::Budget && v.used > 0) {
            let Some((user, copy_id)) = self.owners.get(&*value.line) else { continue };
            let Some(copy) = snapshot.copies(user).iter().find(|c| c.id == *copy_id) else { continue };
            let Some(profile) = copy.profile_id else { continue };
            let Some(budget) = copy.levels().flat_map(|l| l.budgets.iter()).find(|b| b.line == value.line) else { continue };
            let limit = effective_limit(copy, budget, now);
            let window_reset = budget.period.next_start(copy.calendar_aligned, value.window_start);
            if limit == 0 || window_reset <= now {
                continue;
            }
            for rule in self.rules.get(&profile).into_iter().flatten() {
                for &threshold in rule.thresholds.iter().filter(|t| reached(value.used, limit, **t)) {
                    out.push(Crossing {
                        rule_id: rule.id,
                        profile_id: profile,
                        profile_name: copy.name.to_string(),
                        copy_id: copy.id,
                        user_id: user.to_string(),
                        budget_id: value.line.to_string(),
                        threshold,
                        used: value.used,
                        limit,
                        window_start: value.window_start,
                        window_reset,
                    });
                }
            }
        }
        out
    }
}

/// The budget's limit with the override active at `now`, as admission counts it.
fn effective_limit(copy: &GovernedCopy, budget: &BudgetLine, now: DateTime<Utc>) -> u64 {
    let extra = copy.active_override(budget, now).map_or(0, |o| o.amount.micros());
    u64::try_from(budget.limit.micros().saturating_add(extra)).unwrap_or(0)
}

/// Whether `used` is at least `percent` % of `limit` (exact, in integers).
fn reached(used: u64, limit: u64, percent: u32) -> bool {
    u128::from(used) * 100 >= u128::from(limit) * u128::from(percent)
}

#[cfg(test)]
mod tests;
