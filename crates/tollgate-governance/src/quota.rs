//! A key's own quota (`GET /api/governance/virtual-keys/quota`): the budgets and rate limits of
//! every live copy of the key's user, with their current usage as the counters hold it now
//! (window-aware, never from the database), in the shape of Bifrost's quota answer — its
//! top-level members from the oldest live copy, every copy under `access_profiles`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::authorize::{Estimate, budget_claim, identify, rate_claim};
use crate::counters::{Claim, LineKind, Reading, Scope};
use crate::denial::{Denial, DenialKind, amount, period_text};
use crate::governor::Governor;
use crate::snapshot::{GovernedCopy, Level};

/// The quota answer.
#[derive(Debug, Clone, Serialize)]
pub struct Quota {
    pub virtual_key_id: String,
    /// The key's id: the snapshot keeps no key names (decision 224).
    pub virtual_key_name: String,
    pub is_active: bool,
    /// The oldest live copy's profile-level budgets, rate limit and provider configs.
    pub budgets: Vec<QuotaBudget>,
    pub rate_limit: Option<QuotaRateLimit>,
    pub provider_configs: Vec<QuotaProviderConfig>,
    /// Every live copy of the key's user, oldest first (the first governs when it grants the
    /// model).
    pub access_profiles: Vec<QuotaCopy>,
}

/// One copy's lines.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaCopy {
    pub copy_id: i64,
    pub profile_id: Option<i64>,
    pub profile_name: String,
    pub budgets: Vec<QuotaBudget>,
    pub rate_limit: Option<QuotaRateLimit>,
    pub provider_configs: Vec<QuotaProviderConfig>,
}

/// A provider config's own lines.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaProviderConfig {
    pub provider: String,
    pub budgets: Vec<QuotaBudget>,
    pub rate_limit: Option<QuotaRateLimit>,
}

/// A budget (dollars).
#[derive(Debug, Clone, Serialize)]
pub struct QuotaBudget {
    pub id: String,
    /// The cap a request is refused at, an active override included.
    pub max_limit: f64,
    pub reset_duration: &'static str,
    pub calendar_aligned: bool,
    /// When the current window started.
    pub last_reset: DateTime<Utc>,
    /// Spent in the current window.
    pub current_usage: f64,
    /// Held by requests in flight.
    pub reserved: f64,
    pub resets_at: DateTime<Utc>,
}

/// A rate limit: its token and request sides (each absent when not set).
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuotaRateLimit {
    pub id: String,
    #[serde(flatten)]
    pub tokens: Option<RateSide<Tokens>>,
    #[serde(flatten)]
    pub requests: Option<RateSide<Requests>>,
}

/// Field names of a rate limit's token side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokens;
/// Field names of a rate limit's request side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Requests;

/// One side of a rate limit, serialized with its prefix (`token_…` or `request_…`).
#[derive(Debug, Clone)]
pub struct RateSide<P> {
    pub max_limit: u64,
    pub reset_duration: &'static str,
    pub current_usage: u64,
    pub last_reset: DateTime<Utc>,
    pub reserved: u64,
    pub resets_at: DateTime<Utc>,
    prefix: std::marker::PhantomData<P>,
}

/// The member-name prefix of a side.
pub trait Prefix {
    const NAMES: [&'static str; 6];
}

impl Prefix for Tokens {
    const NAMES: [&'static str; 6] =
        ["token_max_limit", "token_reset_duration", "token_current_usage", "token_last_reset", "token_reserved", "token_resets_at"];
}

impl Prefix for Requests {
    const NAMES: [&'static str; 6] = [
        "request_max_limit",
        "request_reset_duration",
        "request_current_usage",
        "request_last_reset",
        "request_reserved",
        "request_resets_at",
    ];
}

impl<P: Prefix> Serialize for RateSide<P> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let [limit, duration, usage, last, reserved, resets] = P::NAMES;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry(limit, &self.max_limit)?;
        map.serialize_entry(duration, self.reset_duration)?;
        map.serialize_entry(usage, &self.current_usage)?;
        map.serialize_entry(last, &self.last_reset)?;
        map.serialize_entry(reserved, &self.reserved)?;
        map.serialize_entry(resets, &self.resets_at)?;
        map.end()
    }
}

impl Governor {
    /// The quota of the key presented: refused as an inference request would be when the key is
    /// missing, unknown, inactive or expired, or none of its user's copies is live.
    pub async fn quota(&self, key: Option<&str>) -> Result<Quota, Denial> {
        let now = tollgate_core::clock::now();
        let snapshot = self.snapshot();
        let refused = |kind| Denial::new(kind, "", "", now);
        let record = identify(&snapshot, key, now).map_err(refused)?;
        let live: Vec<&GovernedCopy> = snapshot.copies(&record.user_id).iter().filter(|c| c.live_at(now)).collect();
        if live.is_empty() {
            return Err(refused(DenialKind::AccessBlocked));
        }
        let mut copies = Vec::with_capacity(live.len());
        for copy in live {
            let claims = lines_of(copy, now);
            let readings = self.0.counters.read(&claims, now).await.map_err(|_| refused(DenialKind::CountersUnavailable))?;
            copies.push(shape(copy, &claims, &readings));
        }
        let first = copies.first().cloned();
        Ok(Quota {
            virtual_key_id: record.id.to_string(),
            virtual_key_name: record.id.to_string(),
            is_active: true,
            budgets: first.as_ref().map(|c| c.budgets.clone()).unwrap_or_default(),
            rate_limit: first.as_ref().and_then(|c| c.rate_limit.clone()),
            provider_configs: first.map(|c| c.provider_configs).unwrap_or_default(),
            access_profiles: copies,
        })
    }
}

/// Every line of a copy, as claims of nothing: the profile's, then each provider config's.
fn lines_of(copy: &GovernedCopy, now: DateTime<Utc>) -> Vec<Claim> {
    let none = Estimate { cost_micros: 0, tokens: 0 };
    let levels = std::iter::once((&copy.profile, Scope::Profile)).chain(copy.configs.iter().map(|c| (&c.level, Scope::Provider)));
    let mut claims = Vec::new();
    for (level, scope) in levels {
        for (side, kind) in [(&level.tokens, LineKind::Tokens), (&level.requests, LineKind::Requests)] {
            if let Some(side) = side {
                claims.push(rate_claim(copy, side, kind, scope, none));
            }
        }
        claims.extend(level.budgets.iter().map(|b| budget_claim(copy, b, scope, none, now)));
    }
    claims
}

/// A copy's lines with their readings, in the order `lines_of` made them.
fn shape(copy: &GovernedCopy, claims: &[Claim], readings: &[Reading]) -> QuotaCopy {
    let mut read = claims.iter().zip(readings);
    let mut level = |level: &Level| -> (Vec<QuotaBudget>, Option<QuotaRateLimit>) {
        let mut rate = QuotaRateLimit::default();
        let mut any = false;
        for (side, is_tokens) in [(&level.tokens, true), (&level.requests, false)] {
            let Some(side) = side else { continue };
            let Some((claim, reading)) = read.next() else { continue };
            any = true;
            side.line.rsplit_once(':').map_or(&*side.line, |(id, _)| id).clone_into(&mut rate.id);
            if is_tokens {
                rate.tokens = Some(rate_side(claim, reading));
            } else {
                rate.requests = Some(rate_side(claim, reading));
            }
        }
        let budgets = level.budgets.iter().filter_map(|_| read.next()).map(|(claim, reading)| budget(claim, reading)).collect();
        (budgets, any.then_some(rate))
    };
    let (budgets, rate_limit) = level(&copy.profile);
    let provider_configs = copy
        .configs
        .iter()
        .map(|config| {
            let (budgets, rate_limit) = level(&config.level);
            QuotaProviderConfig { provider: config.provider.to_string(), budgets, rate_limit }
        })
        .collect();
    QuotaCopy {
        copy_id: copy.id,
        profile_id: copy.profile_id.map(|p| p.0),
        profile_name: copy.name.to_string(),
        budgets,
        rate_limit,
        provider_configs,
    }
}

fn budget(claim: &Claim, reading: &Reading) -> QuotaBudget {
    QuotaBudget {
        id: claim.line.to_string(),
        max_limit: amount(LineKind::Budget, claim.limit),
        reset_duration: period_text(claim.period),
        calendar_aligned: claim.calendar_aligned,
        last_reset: reading.window_start,
        current_usage: amount(LineKind::Budget, reading.used),
        reserved: amount(LineKind::Budget, reading.reserved),
        resets_at: claim.resets_at(reading.window_start),
    }
}

fn rate_side<P>(claim: &Claim, reading: &Reading) -> RateSide<P> {
    RateSide {
        max_limit: claim.limit,
        reset_duration: period_text(claim.period),
        current_usage: reading.used,
        last_reset: reading.window_start,
        reserved: reading.reserved,
        resets_at: claim.resets_at(reading.window_start),
        prefix: std::marker::PhantomData,
    }
}
