//! A reservation's life after admission: the `Held` guard that settles it exactly once (with
//! the real usage, or on drop with what was consumed), and the refusal a denied reservation gets.

use std::time::Instant;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use tollgate_core::money::Money;
use tollgate_core::usage::RequestLog;
use tollgate_core::windows::Period;

use crate::counters::{Actual, Denial, LineKind, Scope};
use crate::engine::Gateway;
use crate::error::GatewayError;
use crate::pricing::Price;
use crate::usage::Usage;

/// A reservation in flight. It is settled exactly once: by `finish`, or — when the request
/// errors, times out or the client goes away — by `Drop`, which charges what was consumed so far.
pub struct Held {
    gateway: Gateway,
    reservation: Option<u64>,
    price: Option<Price>,
    started: Instant,
    /// The request's log line, completed and handed to the writer when the reservation settles.
    log: Option<RequestLog>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("reservation", &self.reservation).finish_non_exhaustive()
    }
}

impl Held {
    pub(crate) fn new(gateway: Gateway, reservation: u64, price: Option<Price>, log: RequestLog) -> Held {
        Held { gateway, reservation: Some(reservation), price, started: Instant::now(), log: Some(log) }
    }

    /// Settles with the tokens really used (`None`: nothing was billed) and logs the request.
    pub fn finish(mut self, usage: Option<Usage>, status: u16) {
        self.settle(usage, status);
    }

    fn settle(&mut self, usage: Option<Usage>, status: u16) {
        let Some(id) = self.reservation.take() else { return };
        let used = usage.unwrap_or_default();
        let cost = self.price.map_or(Money::ZERO, |p| p.cost_of(&used));
        let actual = match usage {
            Some(_) => Actual { cost_micros: u64::try_from(cost.micros()).unwrap_or(0), tokens: used.tokens(), requests: 1 },
            None => Actual::default(),
        };
        let log = self.log.take().map(|log| RequestLog {
            prompt_tokens: used.prompt(),
            completion_tokens: used.output,
            cost,
            status,
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..log
        });
        let writer = self.gateway.0.writer.clone();
        self.gateway.0.counters.settle(id, actual, tollgate_core::clock::now(), Box::new(move |values| writer.record(values, log)));
    }

    /// Settles what a stream consumed when it ends or is abandoned.
    pub(crate) fn settle_stream(&mut self, usage: Usage, status: u16) {
        self.settle(Some(usage), status);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.reservation.is_some() {
            self.settle(None, 499);
        }
    }
}

fn period_text(p: Period) -> &'static str {
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

/// How a line is named in a refusal: `profile budget`, `provider 'openai' request limit`, …
fn label(denial: &Denial, provider: &str) -> String {
    let what = match denial.kind {
        LineKind::Budget => "budget",
        LineKind::Tokens => "token limit",
        LineKind::Requests => "request limit",
    };
    match denial.scope {
        Scope::Profile => format!("profile {what}"),
        Scope::Provider => format!("provider '{provider}' {what}"),
    }
}

/// The answer to a refused reservation: rate limits (429) before budgets (402). Provider-level
/// lines are those of `provider`, the requested one. A budget's message names what the line
/// would hold with this request (spent or held, plus its estimate) against the limit: exact
/// admission refuses a request that does not fit, even while the spent amount is below the limit.
pub(crate) fn refusal(denials: &[Denial], now: DateTime<Utc>, provider: &str) -> GatewayError {
    let rate: Vec<&Denial> = denials.iter().filter(|d| d.kind != LineKind::Budget).collect();
    if rate.is_empty() {
        let parts: Vec<String> = denials
            .iter()
            .map(|d| {
                // What would have been spent with this request, then how it adds up.
                let total = d.used.saturating_add(d.estimate);
                format!(
                    "{} exceeded: {:.4} >= {:.4} dollars ({:.4} spent or held + {:.4} estimated for this request)",
                    label(d, provider),
                    dollars(total),
                    dollars(d.limit),
                    dollars(d.used),
                    dollars(d.estimate)
                )
            })
            .collect();
        return GatewayError::new(StatusCode::PAYMENT_REQUIRED, "budget_exceeded", format!("Budget exceeded: {}", parts.join("; ")));
    }
    let tokens = rate.iter().any(|d| d.kind == LineKind::Tokens);
    let requests = rate.iter().any(|d| d.kind == LineKind::Requests);
    let kind = match (tokens, requests) {
        (true, true) => "rate_limited",
        (true, false) => "token_limited",
        _ => "request_limited",
    };
    let parts: Vec<String> = rate
        .iter()
        .map(|d| format!("{} exceeded ({}/{}, resets every {})", label(d, provider), d.used, d.limit, period_text(d.period)))
        .collect();
    let wait = rate.iter().map(|d| (d.resets_at - now).num_seconds() + 1).max();
    let mut error = GatewayError::new(StatusCode::TOO_MANY_REQUESTS, kind, format!("Rate limit exceeded: [{}]", parts.join(", ")));
    error.retry_after = wait;
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refusal_shows_what_the_line_would_hold_with_the_request_against_the_limit() {
        let now = tollgate_core::clock::now();
        let denial = Denial {
            kind: LineKind::Budget,
            scope: Scope::Profile,
            used: 990_000,
            estimate: 21_000,
            limit: 1_000_000,
            period: Period::Day,
            resets_at: now,
        };
        let refused = refusal(&[denial], now, "openai");
        assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(
            refused.message,
            "Budget exceeded: profile budget exceeded: 1.0110 >= 1.0000 dollars (0.9900 spent or held + 0.0210 estimated for this request)"
        );
    }
}
