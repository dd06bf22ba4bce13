//! Pure governance decisions: whether the key, its user's copies, the provider and the model
//! pass (in the contract's order, first failure wins), and which lines a request claims.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tollgate_core::auth::sha256;
use tollgate_core::usage::KeyBlock;

use crate::counters::{Claim, LineKind, Scope};
use crate::denial::{Denial, DenialKind};
use crate::snapshot::{BudgetLine, GovernedCopy, GovernedKey, ProviderGrant, RateLine, Snapshot};

/// Who may make the request, and under which copy and provider config, borrowed from the
/// snapshot the decision was made on (nothing shared is counted up and down per request).
#[derive(Debug, Clone, Copy)]
pub struct Access<'s> {
    pub user_id: &'s str,
    pub key_id: &'s str,
    pub copy: &'s GovernedCopy,
    /// Index of the governing provider config in the copy's policy.
    config_at: usize,
}

/// Identity and access checks, first failure wins: key present, key known, key active, an
/// active copy, the provider, the model. With several copies, the oldest active copy that grants
/// both provider and model governs the request (its budgets and limits are charged).
pub fn authorize<'s>(
    snapshot: &'s Snapshot,
    key: Option<&str>,
    provider: &str,
    model: &str,
    now: DateTime<Utc>,
) -> Result<Access<'s>, Denial> {
    let record = identify(snapshot, key, now).map_err(|kind| {
        let denial = Denial::new(kind, provider, model, now);
        // An inactive or expired key is known: its refusal names whose it is.
        match key.filter(|_| matches!(kind, DenialKind::KeyInactive | DenialKind::KeyExpired)).and_then(|k| snapshot.key(&sha256(k))) {
            Some(known) => denial.of_caller(&known.user_id, &known.id),
            None => denial,
        }
    })?;
    access_of(snapshot, &record.user_id, &record.id, provider, model, now).map_err(|d| d.of_caller(&record.user_id, &record.id))
}

/// The key's own checks, first failure wins: present, known (a rotated-out value past its grace
/// is as unknown as a revoked one), active, unexpired.
pub fn identify<'s>(snapshot: &'s Snapshot, key: Option<&str>, now: DateTime<Utc>) -> Result<&'s GovernedKey, DenialKind> {
    let key = key.ok_or(DenialKind::KeyRequired)?;
    let record = snapshot.key(&sha256(key)).filter(|r| r.value_live_at(now)).ok_or(DenialKind::KeyNotFound)?;
    match record.blocked_at(now) {
        Some(KeyBlock::Inactive) => Err(DenialKind::KeyInactive),
        Some(KeyBlock::Expired) => Err(DenialKind::KeyExpired),
        None => Ok(record),
    }
}

/// The checks after the key's, for `user_id` (who presented key `key_id`): an active copy, the
/// provider, the model. Explanations ask this directly for a user named without a key.
pub fn access_of<'s>(
    snapshot: &'s Snapshot,
    user_id: &'s str,
    key_id: &'s str,
    provider: &str,
    model: &str,
    now: DateTime<Utc>,
) -> Result<Access<'s>, Denial> {
    let refused = |kind| Denial::new(kind, provider, model, now);
    // Judged over the user's copies in place (oldest first), without collecting them.
    let copies = snapshot.copies(user_id);
    let active = || copies.iter().filter(|c| c.live_at(now));
    if active().next().is_none() {
        return Err(refused(DenialKind::AccessBlocked));
    }
    if !active().any(|c| c.config_of(provider).is_some()) {
        return Err(refused(DenialKind::ProviderBlocked));
    }
    let (copy, config_at) = active()
        .find_map(|c| {
            let at = c.config_of(provider)?;
            c.configs[at].models.allows(model).then_some((c, at))
        })
        .ok_or_else(|| refused(DenialKind::ModelBlocked))?;
    Ok(Access { user_id, key_id, copy, config_at })
}

/// What a request is expected to consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub cost_micros: u64,
    pub tokens: u64,
}

impl Estimate {
    /// What a line of `kind` reserves for the request.
    pub fn of(self, kind: LineKind) -> u64 {
        match kind {
            LineKind::Budget => self.cost_micros.max(1),
            LineKind::Tokens => self.tokens,
            LineKind::Requests => 1,
        }
    }
}

impl Access<'_> {
    /// The provider config that governs the request.
    pub fn config(&self) -> &ProviderGrant {
        &self.copy.configs[self.config_at]
    }

    /// True when any budget line applies, so the request needs a price.
    pub fn has_budgets(&self) -> bool {
        !self.config().level.budgets.is_empty() || !self.copy.profile.budgets.is_empty()
    }

    /// The lines the request must fit into: rate limits (provider config first, then profile),
    /// then budgets (provider config first, then profile), each with its own window.
    pub fn claims(&self, estimate: Estimate, now: DateTime<Utc>) -> Vec<Claim> {
        let levels = [(&self.config().level, Scope::Provider), (&self.copy.profile, Scope::Profile)];
        let mut claims = Vec::with_capacity(6);
        for (level, scope) in levels {
            for (side, kind) in [(&level.tokens, LineKind::Tokens), (&level.requests, LineKind::Requests)] {
                if let Some(side) = side {
                    claims.push(rate_claim(self.copy, side, kind, scope, estimate));
                }
            }
        }
        for (level, scope) in levels {
            for budget in &level.budgets {
                claims.push(budget_claim(self.copy, budget, scope, estimate, now));
            }
        }
        claims
    }
}

/// The claim on a rate line of `copy`.
pub(crate) fn rate_claim(copy: &GovernedCopy, side: &RateLine, kind: LineKind, scope: Scope, estimate: Estimate) -> Claim {
    Claim {
        line: Arc::clone(&side.line),
        kind,
        limit: side.limit,
        period: side.period,
        calendar_aligned: copy.calendar_aligned,
        anchor: copy.created_at,
        estimate: estimate.of(kind),
        scope,
        copy: copy.id,
    }
}

/// The claim on a budget of `copy`, its cap raised by an override active at `now`.
pub(crate) fn budget_claim(copy: &GovernedCopy, budget: &BudgetLine, scope: Scope, estimate: Estimate, now: DateTime<Utc>) -> Claim {
    let grant = copy.active_override(budget, now);
    let limit = budget.limit.micros() + grant.map_or(0, |g| g.amount.micros());
    Claim {
        line: Arc::clone(&budget.line),
        kind: LineKind::Budget,
        limit: u64::try_from(limit).unwrap_or(0),
        period: budget.period,
        calendar_aligned: copy.calendar_aligned,
        anchor: budget.anchor,
        estimate: estimate.of(LineKind::Budget),
        scope,
        copy: copy.id,
    }
}
