//! The providers the inference surface calls: their specs (from the config file, or managed
//! through the API and rebuilt from the store on every governance reload, keys opened from their
//! sealed form), the key picked per request, and the extra headers a provider may carry.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{HeaderName, HeaderValue};
use tollgate_core::auth::Secret;
use tollgate_core::providers::{Provider, ProviderKey, ProviderKind, ProviderRules};
use tollgate_core::usage::GovernanceData;
use tollgate_core::vkeys::Sealer;

use crate::adapters::Adapted;

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
    /// `api_key` as its header (its kind's `Adapter::auth_header`), built on first use.
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
        if path == self.kind.adapter().chat_path() {
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

/// The providers managed through the API, by name, swapped as a unit on every governance reload.
#[derive(Debug)]
pub struct ManagedProviders {
    current: ArcSwap<HashMap<String, Arc<ProviderSpec>>>,
    sealer: Sealer,
    rules: ProviderRules,
}

impl ManagedProviders {
    pub fn new(sealer: Sealer, rules: ProviderRules) -> ManagedProviders {
        ManagedProviders { current: ArcSwap::from_pointee(HashMap::new()), sealer, rules }
    }

    /// The providers of `data`; a stored provider the rules refuse is left out (logged).
    fn rebuild(&self, data: &GovernanceData) {
        let specs = data
            .providers
            .iter()
            .filter_map(|p| spec_of(p, &data.provider_keys, &self.sealer, &self.rules))
            .map(|s| (s.name.clone(), Arc::new(s)))
            .collect();
        self.current.store(Arc::new(specs));
    }

    /// The hook that keeps this table current: governance calls it with every reload's data.
    pub fn on_reload(self: &Arc<Self>) -> tollgate_governance::OnReload {
        let table = Arc::clone(self);
        Arc::new(move |data: &GovernanceData| table.rebuild(data))
    }

    pub fn get(&self, name: &str) -> Option<Arc<ProviderSpec>> {
        self.current.load().get(name).cloned()
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
    let kind = provider.kind();
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
}
