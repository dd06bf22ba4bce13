//! Pure governance decisions: which header carries the virtual key, whether the key, its user's
//! copies, the provider and the model pass (in the contract's order), and which lines to claim.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use chrono::{DateTime, Utc};
use tollgate_core::auth::sha256;
use tollgate_core::profile::{Budget, ProviderConfig, RateLimit};
use tollgate_core::vkeys::VIRTUAL_KEY_PREFIX;
use tollgate_core::windows::Period;

use crate::counters::{Claim, LineKind, Scope};
use crate::error::GatewayError;
use crate::snapshot::{GovernedCopy, Lines, Snapshot};

/// Headers that may carry a virtual key, in the order they are tried.
/// Names made once, so a look-up does not parse and check the name again on every request.
pub const KEY_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-bf-vk"),
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("x-goog-api-key"),
    HeaderName::from_static("api-key"),
];

/// The first header value that is a virtual key (`sk-bf-…`, prefix case-insensitive).
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    KEY_HEADERS.iter().find_map(|name| {
        let value = headers.get(name)?.to_str().ok()?.trim();
        let value = if name == header::AUTHORIZATION {
            let (scheme, rest) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            rest.trim()
        } else {
            value
        };
        value.get(..VIRTUAL_KEY_PREFIX.len()).filter(|p| p.eq_ignore_ascii_case(VIRTUAL_KEY_PREFIX)).map(|_| value)
    })
}

/// Who may make the request, and under which copy and provider config, borrowed from the
/// snapshot the decision was made on (nothing shared is counted up and down per request).
#[derive(Debug, Clone, Copy)]
pub struct Grant<'s> {
    pub user_id: &'s str,
    pub key_id: &'s str,
    pub copy: &'s GovernedCopy,
    /// Index of the governing provider config in the copy's policy.
    config_at: usize,
}

fn refused(status: StatusCode, kind: &'static str, message: String) -> GatewayError {
    GatewayError::new(status, kind, message)
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
) -> Result<Grant<'s>, GatewayError> {
    let key = key.ok_or_else(|| {
        refused(
            StatusCode::UNAUTHORIZED,
            "virtual_key_required",
            "virtual key is required. Provide a virtual key via the x-bf-vk header.".into(),
        )
    })?;
    let record = snapshot.keys.get(&sha256(key)).filter(|r| r.value_live_at(now)).ok_or_else(|| {
        refused(
            StatusCode::UNAUTHORIZED,
            "virtual_key_not_found",
            "virtual key not found. The provided virtual key does not exist or has been revoked.".into(),
        )
    })?;
    if let Some(reason) = record.blocked_at(now) {
        return Err(refused(StatusCode::FORBIDDEN, "virtual_key_blocked", reason.into()));
    }
    // Judged over the user's copies in place (oldest first), without collecting them.
    let copies = snapshot.copies.get(&record.user_id).map_or(&[][..], Vec::as_slice);
    let active = || copies.iter().filter(|c| c.is_active && c.expires_at.is_none_or(|at| at > now));
    if active().next().is_none() {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "access_blocked",
            "the access profile of this virtual key is inactive or expired".into(),
        ));
    }
    let config_of = |c: &GovernedCopy| c.policy.provider_configs.iter().position(|p| p.provider_name == provider);
    if !active().any(|c| config_of(c).is_some()) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "provider_blocked",
            format!("Provider '{provider}' is not allowed for this virtual key"),
        ));
    }
    let (copy, config_at) = active()
        .find_map(|c| {
            let at = config_of(c)?;
            c.policy.provider_configs[at].allows_model(model).then_some((c, at))
        })
        .ok_or_else(|| refused(StatusCode::FORBIDDEN, "model_blocked", format!("Model '{model}' is not allowed for this virtual key")))?;
    Ok(Grant { user_id: &record.user_id, key_id: &record.id, copy, config_at })
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

impl Grant<'_> {
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
    pub fn claims(&self, snapshot: &Snapshot, estimate: Estimate, now: DateTime<Utc>) -> Vec<Claim> {
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
                rate_claims(&mut claims, limit, lines, scope, aligned, self.copy.created_at, estimate);
            }
        }
        for (budgets, lines, scope) in
            [(&config.budgets, config_lines, Scope::Provider), (&policy.budgets, &self.copy.profile, Scope::Profile)]
        {
            for (at, budget) in budgets.iter().enumerate() {
                let line = lines.budgets.get(at).cloned().unwrap_or_else(|| Arc::from(budget.id.0.as_str()));
                claims.push(budget_claim(snapshot, budget, line, scope, aligned, estimate, now));
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
    aligned: bool,
    anchor: DateTime<Utc>,
    estimate: Estimate,
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
        });
    }
}

fn budget_claim(
    snapshot: &Snapshot,
    budget: &Budget,
    line: Arc<str>,
    scope: Scope,
    aligned: bool,
    estimate: Estimate,
    now: DateTime<Utc>,
) -> Claim {
    let grant = snapshot.overrides.get(&budget.id).filter(|o| o.is_active(budget, aligned, now));
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
    }
}
