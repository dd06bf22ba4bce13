//! The immutable governance snapshot the hot path reads: keys by value hash, each user's active
//! copies, budget overrides, the providers managed through the API with their opened keys.
//! Rebuilt from the store and swapped as a unit (`ArcSwap`).

use hashbrown::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::{HeaderName, HeaderValue};
use std::time::Duration;
use tollgate_core::copies::UserCopy;
use tollgate_core::ids::BudgetId;
use tollgate_core::overrides::BudgetOverride;
use tollgate_core::profile::{Budget, RateLimit};

use tollgate_core::auth::Secret;
use tollgate_core::providers::{Provider, ProviderKey, ProviderKind as CoreKind, ProviderRules};
use tollgate_core::usage::{GovernanceData, KeyRecord, UsageStore};
use tollgate_core::vkeys::Sealer;

use crate::engine::{ProviderKind, ProviderSpec, WeightedKey};

/// Governance state at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Keys by the SHA-256 of their value (decoded from the stored hex once, here).
    pub keys: HashMap<[u8; 32], KeyRecord>,
    /// Copies per user, oldest first.
    pub copies: HashMap<String, Vec<Arc<GovernedCopy>>>,
    pub overrides: HashMap<BudgetId, BudgetOverride>,
    /// Providers managed through the API, by name.
    pub providers: HashMap<String, Arc<ProviderSpec>>,
}

/// A user's copy as the hot path reads it, with the counter line names of its budgets and rate
/// limits made once per snapshot, so a request's claims share them instead of making their own.
#[derive(Debug)]
pub struct GovernedCopy {
    pub copy: UserCopy,
    /// Lines of the profile-level budgets and rate limit.
    pub profile: Lines,
    /// Lines of each provider config, in the policy's order.
    pub configs: Vec<Lines>,
}

impl std::ops::Deref for GovernedCopy {
    type Target = UserCopy;

    fn deref(&self) -> &UserCopy {
        &self.copy
    }
}

impl GovernedCopy {
    pub fn new(copy: UserCopy) -> GovernedCopy {
        let profile = Lines::of(&copy.policy.budgets, copy.policy.rate_limit.as_ref());
        let configs = copy.policy.provider_configs.iter().map(|p| Lines::of(&p.budgets, p.rate_limit.as_ref())).collect();
        GovernedCopy { copy, profile, configs }
    }
}

/// Counter line names of one level of a policy: a budget's line is its id, a rate limit's are
/// `<id>:t` (tokens) and `<id>:r` (requests).
#[derive(Debug, Clone, Default)]
pub struct Lines {
    /// One per budget, in order.
    pub budgets: Vec<Arc<str>>,
    pub tokens: Option<Arc<str>>,
    pub requests: Option<Arc<str>>,
}

impl Lines {
    fn of(budgets: &[Budget], rate_limit: Option<&RateLimit>) -> Lines {
        Lines {
            budgets: budgets.iter().map(|b| Arc::from(b.id.0.as_str())).collect(),
            tokens: rate_limit.map(|r| Arc::from(format!("{}:t", r.id.0))),
            requests: rate_limit.map(|r| Arc::from(format!("{}:r", r.id.0))),
        }
    }
}

impl Snapshot {
    /// The user copy owning each counter line (a line belongs to exactly one copy).
    pub fn line_owners(&self) -> HashMap<&str, i64> {
        let mut owners = HashMap::new();
        for copy in self.copies.values().flatten() {
            for lines in std::iter::once(&copy.profile).chain(&copy.configs) {
                for line in lines.budgets.iter().chain(&lines.tokens).chain(&lines.requests) {
                    owners.insert(&**line, copy.id);
                }
            }
        }
        owners
    }

    /// The snapshot of `data`; a stored provider the `rules` refuse is left out (logged).
    pub fn build(data: GovernanceData, sealer: &Sealer, rules: &ProviderRules) -> Snapshot {
        let providers = data
            .providers
            .iter()
            .filter_map(|p| spec_of(p, &data.provider_keys, sealer, rules))
            .map(|s| (s.name.clone(), Arc::new(s)))
            .collect();
        let keys = data.keys.into_iter().filter_map(|k| Some((<[u8; 32]>::try_from(hex::decode(&k.value_hash).ok()?).ok()?, k))).collect();
        let mut copies: HashMap<String, Vec<Arc<GovernedCopy>>> = HashMap::new();
        for copy in data.copies {
            copies.entry(copy.user_id.clone()).or_default().push(Arc::new(GovernedCopy::new(copy)));
        }
        let overrides = data.overrides.into_iter().map(|o| (o.budget_id.clone(), o)).collect();
        Snapshot { keys, copies, overrides, providers }
    }
}

/// An API-managed provider as the data plane calls it; `None` (logged) when it cannot be used.
/// The rules are checked again here, for rows written before they applied: a name the config file
/// declares stays the file's, a refused base URL is not called, a refused environment variable is
/// not read.
fn spec_of(provider: &Provider, keys: &[(ProviderKey, String)], sealer: &Sealer, rules: &ProviderRules) -> Option<ProviderSpec> {
    if rules.declared.contains(&provider.name) {
        tracing::warn!(provider = %provider.name, "a stored provider has the name of one the config file declares; the file's is served");
        return None;
    }
    let Some(base_url) = provider.base_url() else {
        tracing::warn!(provider = %provider.name, "provider has no base_url and is not a built-in name; not served");
        return None;
    };
    if let Err(why) = rules.egress.check_base_url(&base_url) {
        tracing::warn!(provider = %provider.name, why, "provider base_url refused by the egress policy; not served");
        return None;
    }
    let mut models = Vec::new();
    let mut usable = Vec::new();
    for (key, sealed) in keys.iter().filter(|(k, _)| k.provider == provider.name && k.enabled) {
        let secret = if key.value.from_env {
            match rules.env.refusal(&key.value.env_var) {
                Some(why) => {
                    tracing::warn!(provider = %provider.name, key = %key.name, why, "environment reference refused; key not used");
                    None
                }
                None => std::env::var(&key.value.env_var).ok().filter(|v| !v.is_empty()).map(Secret::new),
            }
        } else {
            sealer.open(sealed).ok()
        };
        let Some(secret) = secret else {
            tracing::warn!(provider = %provider.name, key = %key.name, "provider key secret unavailable; key not used");
            continue;
        };
        models.extend(key.models.iter().filter(|m| *m != "*").cloned());
        usable.push(WeightedKey { secret, weight: key.weight, models: key.models.clone() });
    }
    let kind = match provider.kind() {
        CoreKind::Openai => ProviderKind::OpenAi,
        CoreKind::Anthropic => ProviderKind::Anthropic,
    };
    let network = &provider.network_config;
    Some(ProviderSpec {
        name: provider.name.clone(),
        kind,
        base_url,
        api_key: None,
        models,
        timeout: Duration::from_secs(network.default_request_timeout_in_seconds.unwrap_or(120)),
        max_retries: network.max_retries.unwrap_or(2),
        keys: usable,
        needs_key: !provider.custom_provider_config.as_ref().is_some_and(|c| c.is_key_less),
        extra_headers: extra_headers(provider, sealer),
        chat_url: std::sync::OnceLock::new(),
        auth_header: std::sync::OnceLock::new(),
        output_cap: std::sync::OnceLock::new(),
    })
}

/// Headers that would replace the call's credentials or framing; never taken from `extra_headers`.
/// Besides the gateway's own, every header providers take a credential in (Azure's `api-key`,
/// Google's `x-goog-api-key`, a proxy's `proxy-authorization`): a stored header must not stand
/// in for the key the request was given.
const RESERVED_HEADERS: [&str; 9] = [
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "proxy-authorization",
    "anthropic-version",
    "content-type",
    "content-length",
    "host",
];

/// A provider's `network_config.extra_headers` as header pairs, opened from their sealed form;
/// an unusable one is skipped (logged).
fn extra_headers(provider: &Provider, sealer: &Sealer) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, stored) in &provider.network_config.extra_headers {
        let Some(value) = tollgate_core::provider_headers::open(stored, sealer) else {
            tracing::warn!(provider = %provider.name, header = %name, "extra header not sent: its sealed value cannot be opened");
            continue;
        };
        match extra_header(name, value.expose()) {
            Ok(header) => out.push(header),
            Err(why) => tracing::warn!(provider = %provider.name, header = %name, why, "extra header not sent"),
        }
    }
    out
}

/// An extra header a provider's calls may carry, or why not: it must be a valid header, and it
/// cannot be one that carries the call's credentials or framing.
pub fn extra_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), &'static str> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "not a valid header name")?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err("reserved: the gateway sets it");
    }
    let mut value = HeaderValue::from_str(value).map_err(|_| "not a valid header value")?;
    // It may carry a secret: kept out of logs like the provider key.
    value.set_sensitive(true);
    Ok((name, value))
}

/// The current snapshot, shared by every request.
#[derive(Debug, Clone)]
pub struct SharedSnapshot {
    current: Arc<ArcSwap<Snapshot>>,
    sealer: Sealer,
    rules: Arc<ProviderRules>,
}

impl SharedSnapshot {
    pub fn new(sealer: Sealer, rules: Arc<ProviderRules>) -> Self {
        Self { current: Arc::new(ArcSwap::from_pointee(Snapshot::default())), sealer, rules }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Reads the store and swaps in a fresh snapshot; on failure the old one stays.
    pub async fn reload(&self, store: &dyn UsageStore) -> Result<(), String> {
        let data = store.load_governance().await.map_err(|e| e.to_string())?;
        self.current.store(Arc::new(Snapshot::build(data, &self.sealer, &self.rules)));
        Ok(())
    }
}
