//! Admission: a caller the snapshot authorized is priced, and its estimate reserved on every
//! line that applies (all or nothing); the `Held` guard it gets settles the reservation once.

use std::future::Future;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tollgate_core::money::Money;
use tollgate_core::usage::RequestLog;

use crate::authorize::{Access, Estimate, authorize};
use crate::counters::{LineKind, Refusal};
use crate::denial::{CopyRef, Denial, DenialKind};
use crate::governor::Governor;
use crate::held::Held;
use crate::meters::{self, Facts};
use crate::pricing::{Price, UnpricedModels};
use crate::snapshot::Snapshot;
use crate::spans;
use crate::writer::LogLine;

/// What a surface read from a request, before governance.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    /// Output tokens the request allows.
    pub max_out: u64,
    pub stream: bool,
    /// The route family asked, a metrics label (`chat_completions`, `messages`, `embeddings`, …).
    pub route: &'static str,
    /// When the surface began reading the request: the gateway's overhead runs from here to the
    /// first upstream attempt.
    pub arrived: Instant,
}

/// A request's prompt size: a bound read cheaply off the request, and an exact count taken only
/// when the bound does not fit (`None` when it cannot be taken).
pub trait PromptSize: Sync {
    fn bound(&self) -> u64;
    fn count(&self) -> impl Future<Output = Option<u64>> + Send;
}

impl Governor {
    /// The identity and access checks on one snapshot (nothing is charged): key, copies,
    /// provider, model.
    pub fn authorize<'s>(
        &self,
        snapshot: &'s Snapshot,
        key: Option<&str>,
        ask: &Ask<'_>,
        now: DateTime<Utc>,
    ) -> Result<Access<'s>, Denial> {
        let span = spans::authorize(ask.provider, ask.model);
        let decided = authorize(snapshot, key, ask.provider, ask.model, now).inspect_err(|d| meters::denied(ask.route, d.kind.name()));
        if !span.is_disabled() {
            spans::decided(&span, &decided);
            if let Ok(access) = &decided {
                spans::caller(&span, access.user_id, access.key_id);
                span.record("tollgate.copy_id", access.copy.id);
            }
        }
        decided
    }

    /// Prices an authorized request and reserves its estimate on every line that applies. The
    /// prompt is reserved at its bound first; only if that is refused on a budget or token line
    /// is it counted and tried again at its count, so one with room never tokenizes at all.
    pub async fn admit(&self, access: Access<'_>, ask: &Ask<'_>, prompt: &impl PromptSize, now: DateTime<Utc>) -> Result<Held, Denial> {
        let span = spans::admit(access.copy.id);
        let admitted = self
            .reserve_for(access, ask, prompt, now)
            .await
            .map_err(|d| d.of_caller(access.user_id, access.key_id))
            .inspect_err(|d| meters::denied(ask.route, d.kind.name()));
        if !span.is_disabled() {
            spans::decided(&span, &admitted);
            if let Ok(held) = &admitted {
                span.record("tollgate.estimate_micros", held.estimate_micros());
            }
        }
        admitted
    }

    async fn reserve_for(&self, access: Access<'_>, ask: &Ask<'_>, prompt: &impl PromptSize, now: DateTime<Utc>) -> Result<Held, Denial> {
        let (provider, model) = (ask.provider, ask.model);
        let price = self.price_for(&access, provider, model, now)?;
        let mut estimated = estimate(price, prompt.bound(), ask.max_out);
        let mut claims = access.claims(estimated, now);
        let mut outcome = self.0.counters.reserve(&claims, now).await;
        if let Err(Refusal::Denied(lines)) = &outcome
            && lines.iter().all(|d| d.kind != LineKind::Requests)
            && let Some(counted) = prompt.count().await.filter(|n| *n < prompt.bound())
        {
            estimated = estimate(price, counted, ask.max_out);
            for claim in &mut claims {
                claim.estimate = estimated.of(claim.kind);
            }
            outcome = self.0.counters.reserve(&claims, now).await;
        }
        let reserved = match outcome {
            Ok(reserved) => reserved,
            Err(Refusal::Denied(lines)) => return Err(Denial::of_lines(lines, CopyRef::of(access.copy), provider, model, now)),
            Err(Refusal::Unavailable) => return Err(Denial::new(DenialKind::CountersUnavailable, provider, model, now)),
        };
        claims.retain(|c| c.kind == LineKind::Requests);
        let log = RequestLog {
            created_at: now,
            user_id: Some(access.user_id.to_owned()),
            virtual_key_id: Some(access.key_id.to_owned()),
            provider: provider.to_owned(),
            model: model.to_owned(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost: Money::ZERO,
            status: 0,
            latency_ms: 0,
            streamed: ask.stream,
            route: ask.route,
            copy_id: Some(access.copy.id),
            profile_id: access.copy.profile_id.map(|p| p.0),
            role_id: access.copy.source_role,
            denial: None,
            error: None,
            request_content: None,
            response_content: None,
        };
        let facts = Facts { route: ask.route, priced: price.is_some(), overhead: None, upstream: None, denied: false };
        let held = Held::new(self.clone(), reserved.id, price, (estimated, ask.max_out), claims, LogLine::Request(log, facts));
        Ok(held.arrived_at(ask.arrived).with_room(reserved.room).keeping_content(access.copy.log_content))
    }
}

impl Governor {
    /// The model's price; refused when a budget applies, the model has none, and unpriced models
    /// are refused.
    pub(crate) fn price_for(&self, access: &Access<'_>, provider: &str, model: &str, now: DateTime<Utc>) -> Result<Option<Price>, Denial> {
        let price = self.0.pricing.price(provider, model);
        if price.is_none() && access.has_budgets() && self.0.pricing.unpriced == UnpricedModels::Deny {
            let mut denial = Denial::new(DenialKind::ModelUnpriced, provider, model, now);
            denial.copy = Some(CopyRef::of(access.copy));
            return Err(denial);
        }
        Ok(price)
    }
}

/// What a request of `prompt` tokens that may write `max_out` is expected to consume.
pub(crate) fn estimate(price: Option<Price>, prompt: u64, max_out: u64) -> Estimate {
    let cost = price.map_or(Money::ZERO, |p| p.cost(prompt, max_out));
    Estimate { cost_micros: u64::try_from(cost.micros()).unwrap_or(0), tokens: prompt.saturating_add(max_out) }
}
