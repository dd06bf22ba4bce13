//! Pure governance decisions: whether the key, its user's copies, the provider and the model
//! pass (in the contract's order, first failure wins), and which lines a request claims.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tollgate_core::auth::sha256;
use tollgate_core::profile::{Budget, ProviderConfig, RateLimit};
use tollgate_core::usage::KeyBlock;
use tollgate_core::windows::Period;

use crate::counters::{Claim, LineKind, Scope};
use crate::denial::{Denial, DenialKind};
use crate::snapshot::{GovernedCopy, Lines, Snapshot};

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
    let refused = |kind| Denial::new(kind, provider, model, now);
    let key = key.ok_or_else(|| refused(DenialKind::KeyRequired))?;
    // A rotated-out value past its grace period is as unknown as a revoked one.
    let record = snapshot.key(&sha256(key)).filter(|r| r.value_live_at(now)).ok_or_else(|| refused(DenialKind::KeyNotFound))?;
    match record.blocked_at(now) {
        Some(KeyBlock::Inactive) => return Err(refused(DenialKind::KeyInactive)),
        Some(KeyBlock::Expired) => return Err(refused(DenialKind::KeyExpired)),
        None => {}
    }
    // Judged over the user's copies in place (oldest first), without collecting them.
    let copies = snapshot.copies(&record.user_id);
    let active = || copies.iter().filter(|c| c.is_active && c.expires_at.is_none_or(|at| at > now));
    if active().next().is_none() {
        return Err(refused(DenialKind::AccessBlocked));
    }
    let config_of = |c: &GovernedCopy| c.policy.provider_configs.iter().position(|p| p.provider_name == provider);
    if !active().any(|c| config_of(c).is_some()) {
        return Err(refused(DenialKind::ProviderBlocked));
    }
    let (copy, config_at) = active()
        .find_map(|c| {
            let at = config_of(c)?;
            c.policy.provider_configs[at].allows_model(model).then_some((c, at))
        })
        .ok_or_else(|| refused(DenialKind::ModelBlocked))?;
    Ok(Access { user_id: &record.user_id, key_id: &record.id, copy, config_at })
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
    pub fn config(&self) -> &ProviderConfig {
        &self.copy.policy.provider_configs[self.config_at]
    }

    /// True when any budget line applies, so the request needs a price.
    pub fn has_budgets(&self) -> bool {
        !self.config().budgets.is_empty() || !self.copy.policy.budgets.is_empty()
    }

    /// The lines the request must fit into: rate limits (provider config first, then profile),
    /// then budgets (provider config first, then profile), each with its own window.
    pub fn claims(&self, estimate: Estimate, now: DateTime<Utc>) -> Vec<Claim> {
        let policy = &self.copy.policy;
        let aligned = policy.calendar_aligned;
        let config = self.config();
        let no_lines = Lines::default();
        let config_lines = self.copy.configs.get(self.config_at).unwrap_or(&no_lines);
        let levels =
            [(config.rate_limit.as_ref(), config_lines, Scope::Provider), (policy.rate_limit.as_ref(), &self.copy.profile, Scope::Profile)];
        let mut claims = Vec::with_capacity(6);
        for (limit, lines, scope) in levels {
            if let Some(limit) = limit {
                rate_claims(&mut claims, limit, lines, scope, (aligned, self.copy.created_at), (estimate, self.copy.id));
            }
        }
        for (budgets, lines, scope) in
            [(&config.budgets, config_lines, Scope::Provider), (&policy.budgets, &self.copy.profile, Scope::Profile)]
        {
            for (at, budget) in budgets.iter().enumerate() {
                let line = lines.budgets.get(at).cloned().unwrap_or_else(|| Arc::from(budget.id.0.as_str()));
                claims.push(budget_claim(self.copy, budget, line, scope, aligned, estimate, now));
            }
        }
        claims
    }
}

fn rate_claims(
    out: &mut Vec<Claim>,
    limit: &RateLimit,
    lines: &Lines,
    scope: Scope,
    (aligned, anchor): (bool, DateTime<Utc>),
    (estimate, copy): (Estimate, i64),
) {
    if let (Some(max), Some(window)) = (limit.token_max_limit, limit.token_reset_duration) {
        out.push(Claim {
            line: lines.tokens.clone().unwrap_or_else(|| Arc::from(format!("{}:t", limit.id.0))),
            kind: LineKind::Tokens,
            limit: max,
            period: Period::from(window),
            calendar_aligned: aligned,
            anchor,
            estimate: estimate.of(LineKind::Tokens),
            scope,
            copy,
        });
    }
    if let (Some(max), Some(window)) = (limit.request_max_limit, limit.request_reset_duration) {
        out.push(Claim {
            line: lines.requests.clone().unwrap_or_else(|| Arc::from(format!("{}:r", limit.id.0))),
            kind: LineKind::Requests,
            limit: max,
            period: Period::from(window),
            calendar_aligned: aligned,
            anchor,
            estimate: estimate.of(LineKind::Requests),
            scope,
            copy,
        });
    }
}

fn budget_claim(
    copy: &GovernedCopy,
    budget: &Budget,
    line: Arc<str>,
    scope: Scope,
    aligned: bool,
    estimate: Estimate,
    now: DateTime<Utc>,
) -> Claim {
    let grant = copy.override_of(&budget.id).filter(|o| o.is_active(budget, aligned, now));
    let limit = budget.max_limit.micros() + grant.map_or(0, |g| g.amount.micros());
    Claim {
        line,
        kind: LineKind::Budget,
        limit: u64::try_from(limit).unwrap_or(0),
        period: tollgate_core::overrides::period_of(budget),
        calendar_aligned: aligned,
        anchor: budget.last_reset,
        estimate: estimate.of(LineKind::Budget),
        scope,
        copy: copy.id,
    }
}
