//! Why governance refused a request, as a value: which rule (its kind), under which copy and
//! template, on which lines with their numbers and resets, and its wording. Surfaces map the kind
//! to their own status and error shape; nothing here knows HTTP.

use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt;
use tollgate_core::explain::{CopyFacts, LineFigures};
use tollgate_core::windows::Period;

use crate::counters::{LineKind, Scope, Shortfall};
use crate::snapshot::GovernedCopy;

/// The rule that refused, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialKind {
    /// No virtual key was presented.
    KeyRequired,
    /// The presented key is unknown (never issued, deleted, or a rotated value past its grace).
    KeyNotFound,
    /// The key is deactivated.
    KeyInactive,
    /// The key is past its `expires_at`.
    KeyExpired,
    /// None of the key's user's copies is active and unexpired.
    AccessBlocked,
    /// No active copy allows the provider.
    ProviderBlocked,
    /// No active copy allows the model under that provider.
    ModelBlocked,
    /// A budget applies but the model has no price, and unpriced models are refused.
    ModelUnpriced,
    /// A budget line has no room for the request's estimate.
    BudgetExceeded,
    /// A token rate limit has no room.
    TokenLimited,
    /// A request rate limit has no room.
    RequestLimited,
    /// Token and request limits both have no room.
    RateLimited,
    /// The counter store cannot be reached, so nothing can be checked.
    CountersUnavailable,
}

impl DenialKind {
    /// The rule's name, one per kind (the denials metric's `type`).
    pub fn name(self) -> &'static str {
        match self {
            DenialKind::KeyRequired => "key_required",
            DenialKind::KeyNotFound => "key_not_found",
            DenialKind::KeyInactive => "key_inactive",
            DenialKind::KeyExpired => "key_expired",
            DenialKind::AccessBlocked => "access_blocked",
            DenialKind::ProviderBlocked => "provider_blocked",
            DenialKind::ModelBlocked => "model_blocked",
            DenialKind::ModelUnpriced => "model_unpriced",
            DenialKind::BudgetExceeded => "budget_exceeded",
            DenialKind::TokenLimited => "token_limited",
            DenialKind::RequestLimited => "request_limited",
            DenialKind::RateLimited => "rate_limited",
            DenialKind::CountersUnavailable => "counters_unavailable",
        }
    }
}

/// The copy that governed a refused request, and its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRef {
    pub copy_id: i64,
    /// The access profile the copy was made from (`None` for a detached copy).
    pub profile_id: Option<i64>,
    /// The role whose default gave the copy (`None` for a direct assignment).
    pub role_id: Option<i64>,
    /// The copy's name (its template's name when it was made).
    pub name: String,
}

impl CopyRef {
    pub fn of(copy: &GovernedCopy) -> CopyRef {
        CopyRef { copy_id: copy.id, profile_id: copy.profile_id.map(|p| p.0), role_id: copy.source_role, name: copy.name.to_string() }
    }

    /// The copy as refusals and explanations show it.
    pub fn facts(&self) -> CopyFacts {
        CopyFacts { copy_id: self.copy_id, profile_id: self.profile_id, profile_name: self.name.clone() }
    }
}

/// A line's kind as refusals and explanations name it.
pub fn kind_name(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Budget => "budget",
        LineKind::Tokens => "tokens",
        LineKind::Requests => "requests",
    }
}

/// A line's figures in its unit: dollars for a budget, tokens or requests otherwise.
#[expect(clippy::cast_precision_loss, reason = "amounts below 2^53 convert exactly")]
pub fn amount(kind: LineKind, value: u64) -> f64 {
    match kind {
        LineKind::Budget => value as f64 / 1_000_000.0,
        LineKind::Tokens | LineKind::Requests => value as f64,
    }
}

impl Shortfall {
    /// The line's figures as a refusal names them (`provider` is the request's, named for a
    /// provider config's line).
    pub fn figures(&self, provider: &str) -> LineFigures {
        LineFigures {
            line_id: self.line.to_string(),
            kind: kind_name(self.kind).to_owned(),
            scope: match self.scope {
                Scope::Profile => "profile",
                Scope::Provider => "provider",
            }
            .to_owned(),
            provider: (self.scope == Scope::Provider).then(|| provider.to_owned()),
            used: amount(self.kind, self.used),
            reserved: None,
            estimate: amount(self.kind, self.estimate),
            limit: amount(self.kind, self.limit),
            remaining: None,
            resets_at: self.resets_at,
        }
    }
}

/// A refused request (boxed: a refusal is rare, and a decision's `Result` stays small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(Box<DenialDetails>);

impl std::ops::Deref for Denial {
    type Target = DenialDetails;

    fn deref(&self) -> &DenialDetails {
        &self.0
    }
}

impl std::ops::DerefMut for Denial {
    fn deref_mut(&mut self) -> &mut DenialDetails {
        &mut self.0
    }
}

/// The rule, what was asked, and for a line refusal the copy and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialDetails {
    pub kind: DenialKind,
    pub provider: String,
    pub model: String,
    pub copy: Option<CopyRef>,
    /// Whose key was refused, once the key is known: its user and its id.
    pub caller: Option<(String, String)>,
    /// The lines without room (rate limits before budgets), empty for other rules.
    pub lines: Vec<Shortfall>,
    /// When the decision was made.
    pub at: DateTime<Utc>,
}

impl Denial {
    pub fn new(kind: DenialKind, provider: &str, model: &str, at: DateTime<Utc>) -> Denial {
        Denial(Box::new(DenialDetails {
            kind,
            provider: provider.to_owned(),
            model: model.to_owned(),
            copy: None,
            caller: None,
            lines: Vec::new(),
            at,
        }))
    }

    /// The refusal of lines without room: rate limits win over budgets (a later request may pass
    /// once the window turns, whatever its budget).
    pub fn of_lines(mut lines: Vec<Shortfall>, copy: CopyRef, provider: &str, model: &str, at: DateTime<Utc>) -> Denial {
        let tokens = lines.iter().any(|d| d.kind == LineKind::Tokens);
        let requests = lines.iter().any(|d| d.kind == LineKind::Requests);
        let kind = match (tokens, requests) {
            (true, true) => DenialKind::RateLimited,
            (true, false) => DenialKind::TokenLimited,
            (false, true) => DenialKind::RequestLimited,
            (false, false) => DenialKind::BudgetExceeded,
        };
        if tokens || requests {
            lines.retain(|d| d.kind != LineKind::Budget);
        }
        Denial(Box::new(DenialDetails {
            kind,
            provider: provider.to_owned(),
            model: model.to_owned(),
            copy: Some(copy),
            caller: None,
            lines,
            at,
        }))
    }

    /// The same refusal, naming whose key it refused.
    pub fn of_caller(mut self, user_id: &str, key_id: &str) -> Denial {
        self.0.caller = Some((user_id.to_owned(), key_id.to_owned()));
        self
    }

    /// The refused lines' figures, in order.
    pub fn figures(&self) -> Vec<LineFigures> {
        self.lines.iter().map(|line| line.figures(&self.provider)).collect()
    }

    /// The refusal's structured fields, as every surface shows them beside its message: the
    /// rule, the copy and template, and each line short of room with its figures (the same
    /// numbers the message names).
    pub fn fields(&self) -> serde_json::Value {
        let mut fields = serde_json::json!({"rule": self.kind.name()});
        if let Some(copy) = &self.copy {
            fields["copy_id"] = serde_json::json!(copy.copy_id);
            fields["profile_id"] = serde_json::json!(copy.profile_id);
            fields["profile_name"] = serde_json::json!(copy.name);
        }
        if !self.lines.is_empty() {
            fields["lines"] = serde_json::json!(self.figures());
        }
        fields
    }

    /// Seconds until every refused rate-limit window has reset (`None` for other refusals).
    pub fn retry_after(&self) -> Option<i64> {
        if !matches!(self.kind, DenialKind::TokenLimited | DenialKind::RequestLimited | DenialKind::RateLimited) {
            return None;
        }
        self.lines.iter().map(|d| ((d.resets_at - self.at).num_seconds() + 1).max(1)).max()
    }

    /// How a line is named: `profile budget`, `provider 'openai' request limit`, …
    fn label(&self, line: &Shortfall) -> String {
        let what = match line.kind {
            LineKind::Budget => "budget",
            LineKind::Tokens => "token limit",
            LineKind::Requests => "request limit",
        };
        match line.scope {
            Scope::Profile => format!("profile {what}"),
            Scope::Provider => format!("provider '{}' {what}", self.provider),
        }
    }
}

/// An instant as messages write it (RFC 3339, UTC, whole seconds).
fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Denial {
    /// Names the copy and its template: ` under access profile 'Engineering' (id 3, copy 7)`.
    fn under(&self) -> String {
        let Some(copy) = &self.copy else { return String::new() };
        match copy.profile_id {
            Some(id) => format!(" under access profile '{}' (id {id}, copy {})", copy.name, copy.copy_id),
            None => format!(" under detached copy '{}' (copy {})", copy.name, copy.copy_id),
        }
    }
}

/// A window's length as the API writes reset durations (`1h`, `1d`, `1w`, `1M`, `1Q`, `1Y`).
pub(crate) fn period_text(p: Period) -> &'static str {
    match p {
        Period::Hour => "1h",
        Period::Day => "1d",
        Period::Week => "1w",
        Period::Month => "1M",
        Period::Quarter { .. } => "1Q",
        Period::Year => "1Y",
    }
}

#[expect(clippy::cast_precision_loss, reason = "dollar amounts below 2^53 micro-dollars print exactly enough")]
fn dollars(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// The message a caller reads. A budget's names what the line would hold with this request
/// (spent or held, plus its estimate) against the limit: exact admission refuses a request that
/// does not fit, even while the spent amount is below the limit.
impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (provider, model) = (&self.provider, &self.model);
        match self.kind {
            DenialKind::KeyRequired => f.write_str("virtual key is required. Provide a virtual key via the x-bf-vk header."),
            DenialKind::KeyNotFound => f.write_str("virtual key not found. The provided virtual key does not exist or has been revoked."),
            DenialKind::KeyInactive => f.write_str("Virtual key is inactive"),
            DenialKind::KeyExpired => f.write_str("Virtual key has expired"),
            DenialKind::AccessBlocked => f.write_str("the access profile of this virtual key is inactive or expired"),
            DenialKind::ProviderBlocked => write!(f, "Provider '{provider}' is not allowed for this virtual key"),
            DenialKind::ModelBlocked => write!(f, "Model '{model}' is not allowed for this virtual key"),
            DenialKind::ModelUnpriced => {
                write!(f, "no price is known for '{provider}/{model}', so its budget cannot be charged; add one under [pricing]")
            }
            DenialKind::CountersUnavailable => {
                f.write_str("usage counters cannot be reached, so the request cannot be checked; try again shortly")
            }
            DenialKind::BudgetExceeded => {
                let parts: Vec<String> = self
                    .lines
                    .iter()
                    .map(|d| {
                        let total = d.used.saturating_add(d.estimate);
                        format!(
                            "{} exceeded: {:.4} >= {:.4} dollars ({:.4} spent or held + {:.4} estimated for this request; budget '{}', resets at {})",
                            self.label(d),
                            dollars(total),
                            dollars(d.limit),
                            dollars(d.used),
                            dollars(d.estimate),
                            d.line,
                            instant(d.resets_at)
                        )
                    })
                    .collect();
                write!(f, "Budget exceeded: {}{}", parts.join("; "), self.under())
            }
            DenialKind::TokenLimited | DenialKind::RequestLimited | DenialKind::RateLimited => {
                let parts: Vec<String> = self
                    .lines
                    .iter()
                    .map(|d| {
                        format!(
                            "{} exceeded ({}/{}, resets every {}; limit '{}', resets at {})",
                            self.label(d),
                            d.used,
                            d.limit,
                            period_text(d.period),
                            d.line,
                            instant(d.resets_at)
                        )
                    })
                    .collect();
                write!(f, "Rate limit exceeded: [{}]{}", parts.join(", "), self.under())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn line(kind: LineKind, used: u64, estimate: u64, limit: u64, resets_at: DateTime<Utc>) -> Shortfall {
        Shortfall { line: Arc::from("b1"), kind, scope: Scope::Profile, used, estimate, limit, period: Period::Day, resets_at }
    }

    fn copy() -> CopyRef {
        CopyRef { copy_id: 7, profile_id: Some(3), role_id: None, name: "Engineering".into() }
    }

    #[test]
    fn a_budget_refusal_shows_what_the_line_would_hold_with_the_request_against_the_limit() {
        let now = tollgate_core::clock::now();
        let denial = Denial::of_lines(vec![line(LineKind::Budget, 990_000, 21_000, 1_000_000, now)], copy(), "openai", "m", now);
        assert_eq!(denial.kind, DenialKind::BudgetExceeded);
        let resets = instant(now);
        assert_eq!(
            denial.to_string(),
            format!(
                "Budget exceeded: profile budget exceeded: 1.0110 >= 1.0000 dollars (0.9900 spent or held + 0.0210 estimated for this \
                 request; budget 'b1', resets at {resets}) under access profile 'Engineering' (id 3, copy 7)"
            )
        );
        let figures = denial.figures();
        assert_eq!((figures[0].used, figures[0].limit, figures[0].estimate), (0.99, 1.0, 0.021), "in dollars");
        assert_eq!((figures[0].line_id.as_str(), figures[0].kind.as_str(), figures[0].resets_at), ("b1", "budget", now));
        assert_eq!(denial.retry_after(), None, "a budget names no wait");
    }

    #[test]
    fn a_rate_limit_wins_over_a_budget_and_names_the_longest_wait() {
        let now = tollgate_core::clock::now();
        let lines = vec![
            line(LineKind::Budget, 1, 1, 1, now),
            line(LineKind::Requests, 5, 1, 5, now + chrono::Duration::seconds(30)),
            line(LineKind::Tokens, 90, 20, 100, now + chrono::Duration::seconds(90)),
        ];
        let denial = Denial::of_lines(lines, copy(), "openai", "m", now);
        assert_eq!(denial.kind, DenialKind::RateLimited);
        assert_eq!(denial.lines.len(), 2, "the budget line is not named beside the rate limits");
        assert_eq!(denial.retry_after(), Some(91));
        assert_eq!(denial.copy.as_ref().map(|c| c.copy_id), Some(7));
    }
}
