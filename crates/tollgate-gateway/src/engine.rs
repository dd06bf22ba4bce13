//! The gateway's shared state and admission: built at start (snapshot loaded, counters rebuilt
//! from stored usage), kept fresh by background tasks; each request admitted once (provider found,
//! key authorized, estimate reserved) and handed a `held::Held` guard that settles it exactly once.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use chrono::{DateTime, Utc};
use tokio_util::task::TaskTracker;
use tollgate_core::auth::Secret;
use tollgate_core::money::Money;
use tollgate_core::usage::{RequestLog, UsageStore};

use crate::authorize::{Estimate, Grant, authorize, presented_key};
use crate::counters::{Claim, Counters, LineKind, Refusal};
use crate::error::GatewayError;
use crate::held::{Held, refusal};
use crate::pricing::{Price, Pricing, UnpricedModels};
use crate::prompt::Prompt;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::writer::{OpenUsageStore, UsageWriter, WriterHandle, line_of};

/// The API an upstream speaks; also names the wire format a client speaks on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions: `POST {base_url}/chat/completions`, key as Bearer.
    #[default]
    OpenAi,
    /// Anthropic Messages: `POST {base_url}/messages`, key in `x-api-key`, `anthropic-version` set.
    Anthropic,
}

impl ProviderKind {
    /// The chat endpoint under the provider's base URL.
    pub fn chat_path(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "/chat/completions",
            ProviderKind::Anthropic => "/messages",
        }
    }

    /// The header that carries a provider key for this kind of API, marked sensitive so it is
    /// never logged; `None` when the key cannot be a header value.
    pub fn auth_header(self, key: &Secret) -> Option<(HeaderName, HeaderValue)> {
        let (name, mut value) = match self {
            ProviderKind::OpenAi => (header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok()?),
            ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), HeaderValue::from_str(key.expose()).ok()?),
        };
        value.set_sensitive(true);
        Some((name, value))
    }
}

/// An upstream provider, from the configuration.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub name: String,
    pub kind: ProviderKind,
    /// Base URL up to and including the API version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Models served when a profile allows all models of this provider (for `/v1/models`).
    pub models: Vec<String>,
    pub timeout: Duration,
    pub max_retries: u32,
    /// Keys of a provider managed through the API; one is picked per request (`api_key` is then
    /// set to it). Empty for a provider declared in the config file, which has one `api_key`.
    pub keys: Vec<WeightedKey>,
    /// True when a key must be picked from `keys` (an API-managed provider that is not key-less):
    /// with none usable the request is refused rather than sent without credentials.
    pub needs_key: bool,
    /// Headers added to every call (`network_config.extra_headers`).
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// The chat endpoint's URL, parsed on first use rather than on every request.
    pub chat_url: OnceLock<Option<reqwest::Url>>,
    /// `api_key` as its header (`ProviderKind::auth_header`), built on first use.
    pub auth_header: OnceLock<Option<(HeaderName, HeaderValue)>>,
    /// `output_cap_member`, decided from the base URL on first use.
    pub output_cap: OnceLock<&'static str>,
}

/// Where one request goes: the provider, and the key picked for it from the provider's `keys`
/// (`None`: the provider's own `api_key`, if it has one).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub spec: Arc<ProviderSpec>,
    pub key: Option<Secret>,
}

/// A provider key with its share of the traffic.
#[derive(Debug, Clone)]
pub struct WeightedKey {
    pub secret: Secret,
    pub weight: f64,
    /// Models it serves; empty or `*` means all.
    pub models: Vec<String>,
}

impl ProviderSpec {
    /// The URL of `path` under the base URL (`None` if it does not parse); the chat endpoint's is
    /// parsed once and kept.
    pub fn url(&self, path: &str) -> Option<reqwest::Url> {
        let parse = || reqwest::Url::parse(&format!("{}{path}", self.base_url.trim_end_matches('/'))).ok();
        if path == self.kind.chat_path() {
            return self.chat_url.get_or_init(parse).clone();
        }
        parse()
    }

    /// The member that limits an answer's output tokens, sent when a request sets none: OpenAI's
    /// own API (and Azure OpenAI) takes `max_completion_tokens`, which its reasoning models
    /// require; every other OpenAI-compatible server reads `max_tokens`.
    pub fn output_cap_member(&self) -> &'static str {
        self.output_cap.get_or_init(|| {
            let url = reqwest::Url::parse(&self.base_url).ok();
            let host = url.as_ref().and_then(reqwest::Url::host_str).map(str::to_ascii_lowercase).unwrap_or_default();
            if host == "api.openai.com" || host.ends_with(".openai.azure.com") { "max_completion_tokens" } else { "max_tokens" }
        })
    }

    /// A key serving `model`, chosen at random in proportion to the keys' weights.
    pub fn pick_key(&self, model: &str) -> Option<Secret> {
        use rand::Rng;
        let serving: Vec<&WeightedKey> =
            self.keys.iter().filter(|k| k.models.is_empty() || k.models.iter().any(|m| m == "*" || m == model)).collect();
        let total: f64 = serving.iter().map(|k| k.weight.max(0.0)).sum();
        if total <= 0.0 {
            return serving.first().map(|k| k.secret.clone());
        }
        let mut point = rand::thread_rng().gen_range(0.0..total);
        for key in &serving {
            point -= key.weight.max(0.0);
            if point < 0.0 {
                return Some(key.secret.clone());
            }
        }
        serving.last().map(|k| k.secret.clone())
    }
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub providers: Vec<ProviderSpec>,
    pub pricing: Pricing,
    /// Output tokens assumed for a request that sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// Request-log lines older than this are deleted.
    pub log_retention_days: i64,
    /// Which upstream addresses, environment references and provider names are accepted.
    pub rules: tollgate_core::providers::ProviderRules,
}

/// Shared by every inference request.
#[derive(Clone)]
pub struct Gateway(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub snapshot: SharedSnapshot,
    pub counters: Arc<dyn Counters>,
    pub writer: UsageWriter,
    pub pricing: Pricing,
    pub providers: HashMap<String, Arc<ProviderSpec>>,
    pub http: reqwest::Client,
    pub store: Arc<dyn UsageStore>,
    pub default_max_tokens: u64,
    /// When stored usage was last read into the counters.
    pub adopted_at: std::sync::Mutex<DateTime<Utc>>,
    /// Plain upstream calls, each on its own task so a client's hang-up does not cancel it;
    /// shutdown waits for them.
    pub inflight: TaskTracker,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// Background work that ends with the gateway.
#[derive(Debug)]
pub struct GatewayTasks {
    writer: WriterHandle,
    sweeper: tokio::task::JoinHandle<()>,
    reloader: tokio::task::JoinHandle<()>,
    counters: Arc<dyn Counters>,
    inflight: TaskTracker,
}

impl GatewayTasks {
    /// Stops the timers, lets the calls still in flight finish and drains the usage writer. A
    /// plain call ends within its provider's timeout (and retries), so the wait is bounded; a
    /// process killed while it waits leaves them to the crash journal (or, with Redis, to the
    /// sweep), which charges their reservations.
    pub async fn shutdown(self) {
        self.sweeper.abort();
        self.reloader.abort();
        self.inflight.close();
        if !self.inflight.is_empty() {
            tracing::info!(calls = self.inflight.len(), "waiting for upstream calls whose clients have left, to bill them");
        }
        self.inflight.wait().await;
        self.counters.drain().await;
        self.writer.close().await;
    }
}

/// Snapshots are also reloaded this often, as a safety net behind change notifications.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// A reservation older than this is released (no request lives that long).
pub const RESERVATION_TTL_MINUTES: i64 = 30;

impl Gateway {
    /// Loads the snapshot, rebuilds the counters from stored usage and starts the tasks.
    /// `open_writer_store` opens the usage writer's own store on the writer's thread.
    pub async fn start(
        store: Arc<dyn UsageStore>,
        open_writer_store: OpenUsageStore,
        counters: Arc<dyn Counters>,
        settings: GatewaySettings,
        sealer: tollgate_core::vkeys::Sealer,
    ) -> Result<(Gateway, GatewayTasks), String> {
        let snapshot = SharedSnapshot::new(sealer, Arc::new(settings.rules.clone()));
        snapshot.reload(store.as_ref()).await?;
        // Requests a crash left unsettled are charged whole before the counters are rebuilt.
        let unsettled = store.charge_journal().await.map_err(|e| e.to_string())?;
        if unsettled > 0 {
            tracing::warn!(requests = unsettled, "charged the reservations of requests a crash left unsettled");
        }
        let adopted_at = tollgate_core::clock::now();
        adopt_stored_usage(&snapshot.load(), store.as_ref(), counters.as_ref(), None).await?;
        // Redirects are never followed (they would take the credentials and the body to a host
        // nobody checked), and names resolve only to addresses the egress policy allows.
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(crate::egress::GuardedResolver::new(settings.rules.egress)))
            .build()
            .map_err(|e| e.to_string())?;
        let (writer, writer_handle) = UsageWriter::spawn_on_own_thread(open_writer_store, counters.clone()).await?;
        let providers = settings.providers.into_iter().map(|p| (p.name.clone(), Arc::new(p))).collect();
        let inner = Inner {
            snapshot,
            counters,
            writer,
            pricing: settings.pricing,
            providers,
            http,
            store,
            default_max_tokens: settings.default_max_tokens,
            adopted_at: std::sync::Mutex::new(adopted_at),
            inflight: TaskTracker::new(),
        };
        let gateway = Gateway(Arc::new(inner));
        let sweeper = tokio::spawn(sweep_and_prune(gateway.clone(), settings.log_retention_days));
        let reloader = tokio::spawn(reload_periodically(gateway.clone()));
        let counters = gateway.0.counters.clone();
        let inflight = gateway.0.inflight.clone();
        Ok((gateway, GatewayTasks { writer: writer_handle, sweeper, reloader, counters, inflight }))
    }

    /// Rebuilds the snapshot now (called after every management write), and takes up stored
    /// usage from newer windows than the counters hold — a line a management write zeroed.
    pub async fn reload(&self) {
        if let Err(e) = self.0.snapshot.reload(self.0.store.as_ref()).await {
            tracing::error!(error = %e, "governance snapshot reload failed; serving the previous one");
        }
        // Only rows whose window began since shortly before the last look: a zeroed line's window
        // begins at its reset. The margin covers a write that committed while the last look ran.
        let started = tollgate_core::clock::now();
        let since = self.0.adopted_at.lock().map_or(None, |at| Some(*at - chrono::Duration::minutes(1)));
        match adopt_stored_usage(&self.0.snapshot.load(), self.0.store.as_ref(), self.0.counters.as_ref(), since).await {
            Ok(()) => {
                if let Ok(mut at) = self.0.adopted_at.lock() {
                    *at = (*at).max(started);
                }
            }
            Err(e) => tracing::error!(error = %e, "stored usage could not be read; counters keep their values"),
        }
    }

    /// Used and reserved of a counter line of user copy `copy` (for tests and diagnostics).
    pub async fn counter(&self, line: &str, copy: i64) -> Option<(u64, u64)> {
        self.0.counters.peek(line, copy).await
    }

    /// The one way to an upstream call, whatever the route's format: finds the provider,
    /// authorizes the key, prices the estimate and reserves it on every line that applies.
    /// The returned guard settles the reservation exactly once.
    /// The prompt is reserved at its bound first; only if that is refused on a budget or token
    /// line is it tokenized and tried again at its count. So an unauthenticated request never
    /// pays for tokenizing its body, and one with room never tokenizes at all.
    pub(crate) async fn admit(&self, headers: &HeaderMap, ask: &Ask<'_>, prompt: &Prompt) -> Result<(Target, Held), GatewayError> {
        let (provider, model) = (ask.provider, ask.model);
        let (target, price, mut claims, log) = self.check(headers, ask, prompt.bound())?;
        let mut reserved = estimate(price, prompt.bound(), ask.max_out);
        let mut outcome = self.0.counters.reserve(&claims, log.created_at).await;
        if let Err(Refusal::Denied(denials)) = &outcome
            && denials.iter().all(|d| d.kind != LineKind::Requests)
            && prompt.count().await? < prompt.bound()
        {
            reserved = estimate(price, prompt.tokens(), ask.max_out);
            for claim in &mut claims {
                claim.estimate = reserved.of(claim.kind);
            }
            outcome = self.0.counters.reserve(&claims, log.created_at).await;
        }
        let reservation = match outcome {
            Ok(id) => id,
            Err(Refusal::Denied(denials)) => return Err(refusal(&denials, log.created_at, provider).for_model(provider, model)),
            Err(Refusal::Unavailable) => {
                return Err(GatewayError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "counters_unavailable",
                    "usage counters cannot be reached, so the request cannot be checked; try again shortly",
                )
                .for_model(provider, model));
            }
        };
        claims.retain(|c| c.kind == LineKind::Requests);
        Ok((target, Held::new(self.clone(), reservation, price, (reserved, ask.max_out), claims, log)))
    }

    /// Everything before the reservation, against one snapshot: provider, key, price, and the
    /// claims for a prompt of `prompt` tokens.
    fn check(
        &self,
        headers: &HeaderMap,
        ask: &Ask<'_>,
        prompt: u64,
    ) -> Result<(Target, Option<Price>, Vec<Claim>, RequestLog), GatewayError> {
        let (provider, model) = (ask.provider, ask.model);
        let now = tollgate_core::clock::now();
        let snapshot = self.0.snapshot.load();
        let (target, grant) = self.resolve(&snapshot, headers, provider, model, now)?;
        let price = self.0.pricing.price(provider, model);
        if price.is_none() && grant.has_budgets() && self.0.pricing.unpriced == UnpricedModels::Deny {
            return Err(GatewayError::new(
                StatusCode::FORBIDDEN,
                "model_unpriced",
                format!("no price is known for '{provider}/{model}', so its budget cannot be charged; add one under [pricing]"),
            )
            .for_model(provider, model));
        }
        let claims = grant.claims(&snapshot, estimate(price, prompt, ask.max_out), now);
        let log = RequestLog {
            created_at: now,
            user_id: Some(grant.user_id.to_owned()),
            virtual_key_id: Some(grant.key_id.to_owned()),
            provider: provider.to_owned(),
            model: model.to_owned(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost: Money::ZERO,
            status: 0,
            latency_ms: 0,
            streamed: ask.stream,
        };
        Ok((target, price, claims, log))
    }

    /// The identity and access checks alone, for a call nothing is charged for (counting tokens):
    /// where it goes, once the key may use `provider/model`.
    pub(crate) fn authorized_target(&self, headers: &HeaderMap, provider: &str, model: &str) -> Result<Target, GatewayError> {
        let snapshot = self.0.snapshot.load();
        self.resolve(&snapshot, headers, provider, model, tollgate_core::clock::now()).map(|(target, _)| target)
    }

    /// Authorizes the caller, then finds the provider (API-managed first) and picks its key.
    fn resolve<'s>(
        &self,
        snapshot: &'s Snapshot,
        headers: &HeaderMap,
        provider: &str,
        model: &str,
        now: DateTime<Utc>,
    ) -> Result<(Target, Grant<'s>), GatewayError> {
        if provider.chars().chain(model.chars()).any(char::is_control) {
            return Err(GatewayError::bad_request("the model name must not contain control characters"));
        }
        // The caller first: one without a valid key learns nothing about the providers.
        let grant = authorize(snapshot, presented_key(headers), provider, model, now).map_err(|e| e.for_model(provider, model))?;
        // A provider managed through the API takes precedence over one of the same name in the file.
        let spec = snapshot
            .providers
            .get(provider)
            .or_else(|| self.0.providers.get(provider))
            .map(Arc::clone)
            .ok_or_else(|| GatewayError::bad_request(format!("provider '{provider}' is not configured")))?;
        let mut key = None;
        if spec.needs_key {
            let picked = spec.pick_key(model).ok_or_else(|| {
                GatewayError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_provider_key",
                    format!("provider '{provider}' has no enabled key for model '{model}'"),
                )
                .for_model(provider, model)
            })?;
            key = Some(picked);
        }
        Ok((Target { spec, key }, grant))
    }
}

/// What a route read from a request, before governance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    /// Output tokens the request allows.
    pub max_out: u64,
    pub stream: bool,
}

/// Offers stored line values (those of windows begun after `since`, or all) to the counters,
/// which keep whichever window is newer, each with the user copy that owns it in `snapshot`.
async fn adopt_stored_usage(
    snapshot: &Snapshot,
    store: &dyn UsageStore,
    counters: &dyn Counters,
    since: Option<DateTime<Utc>>,
) -> Result<(), String> {
    let rows = store.load_usage(since).await.map_err(|e| e.to_string())?;
    let owners = if rows.is_empty() { hashbrown::HashMap::new() } else { snapshot.line_owners() };
    for row in rows {
        let (line, kind, used, window_start) = line_of(&row);
        counters.adopt(&line, owners.get(line.as_str()).copied(), kind, used, window_start).await?;
    }
    Ok(())
}

/// What a request of `prompt` tokens that may write `max_out` is expected to consume.
fn estimate(price: Option<Price>, prompt: u64, max_out: u64) -> Estimate {
    let cost = price.map_or(Money::ZERO, |p| p.cost(prompt, max_out));
    Estimate { cost_micros: u64::try_from(cost.micros()).unwrap_or(0), tokens: prompt.saturating_add(max_out) }
}

async fn reload_periodically(gateway: Gateway) {
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        gateway.reload().await;
    }
}

async fn sweep_and_prune(gateway: Gateway, retention_days: i64) {
    let mut tick = tokio::time::interval(Duration::from_mins(1));
    loop {
        tick.tick().await;
        let now = tollgate_core::clock::now();
        gateway.0.counters.refresh(now).await;
        let swept = gateway.0.counters.sweep(chrono::Duration::minutes(RESERVATION_TTL_MINUTES), now).await;
        if swept > 0 {
            tracing::warn!(swept, "swept reservations that outlived their request or their instance");
        }
        if let Err(e) = gateway.0.store.prune_request_logs(now - chrono::Duration::days(retention_days)).await {
            tracing::warn!(error = %e, "request-log pruning failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(base_url: &str) -> ProviderSpec {
        ProviderSpec {
            name: "p".into(),
            kind: ProviderKind::OpenAi,
            base_url: base_url.into(),
            api_key: None,
            models: Vec::new(),
            timeout: Duration::from_secs(1),
            max_retries: 0,
            keys: Vec::new(),
            needs_key: false,
            extra_headers: Vec::new(),
            chat_url: OnceLock::new(),
            auth_header: OnceLock::new(),
            output_cap: OnceLock::new(),
        }
    }

    #[test]
    fn the_output_limit_member_follows_the_provider() {
        assert_eq!(spec("https://api.openai.com/v1").output_cap_member(), "max_completion_tokens");
        assert_eq!(spec("https://team.openai.azure.com/openai/deployments/x").output_cap_member(), "max_completion_tokens");
        for other in ["http://127.0.0.1:11434/v1", "https://api.groq.com/openai/v1", "https://api.openai.com.evil.example/v1", "not a url"]
        {
            assert_eq!(spec(other).output_cap_member(), "max_tokens", "{other}");
        }
    }

    #[test]
    fn a_provider_key_becomes_the_sensitive_header_its_kind_expects_or_none_if_it_cannot() {
        let key = Secret::new("sk-provider".to_owned());
        let openai = ProviderKind::OpenAi.auth_header(&key);
        assert_eq!(openai.as_ref().map(|(n, v)| (n.as_str(), v.to_str().ok())), Some(("authorization", Some("Bearer sk-provider"))));
        assert!(openai.is_some_and(|(_, v)| v.is_sensitive()), "kept out of logs");
        let anthropic = ProviderKind::Anthropic.auth_header(&key);
        assert_eq!(anthropic.as_ref().map(|(n, v)| (n.as_str(), v.to_str().ok())), Some(("x-api-key", Some("sk-provider"))));
        assert!(anthropic.is_some_and(|(_, v)| v.is_sensitive()));
        assert!(ProviderKind::OpenAi.auth_header(&Secret::new("line\nbreak".to_owned())).is_none());
    }
}
