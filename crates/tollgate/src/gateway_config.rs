//! The `[[providers]]`, `[pricing]` and `[gateway]` sections of the config file: upstreams (their
//! API kind, keys given as environment references), price overrides, and data-plane settings,
//! among them the rules for providers the management API defines (`ProviderRules`).

use std::collections::HashMap;
use std::time::Duration;

use tollgate_core::auth::Secret;
use tollgate_core::env_refs::{EnvAllowList, RESERVED_PREFIX};
use tollgate_core::providers::ProviderKind;
use tollgate_core::providers::ProviderRules;
use tollgate_gateway::ProviderSpec;
use tollgate_governance::pricing::{Price, UnpricedModels};

/// Default output tokens assumed when a request sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
pub const DEFAULT_LOG_RETENTION_DAYS: i64 = 30;

/// Data-plane settings, validated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub providers: Vec<ProviderSpec>,
    pub prices: HashMap<String, Price>,
    pub unpriced: UnpricedModels,
    pub default_max_tokens: u64,
    pub log_retention_days: i64,
    /// Counters in Redis, shared by every instance using the same URL and prefix; in this
    /// process's memory when unset (one instance).
    pub redis_url: Option<Secret>,
    pub redis_key_prefix: String,
    /// Upstream addresses (`block_private_upstreams`), environment variables the API may name
    /// (`provider_key_env_allow`) and the names of the providers declared above.
    pub rules: ProviderRules,
}

pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tollgate:";

/// Problems with a Redis URL, without echoing it (it may carry a password). A cluster is named by
/// `redis+cluster://host:port,host:port` (`rediss+cluster://` with TLS): its seed nodes.
pub fn check_redis_url(url: &str) -> Option<String> {
    let schemes = ["redis://", "rediss://", "redis+unix://", "redis+cluster://", "rediss+cluster://"];
    let scheme_ok = schemes.iter().any(|scheme| url.starts_with(scheme));
    (!scheme_ok).then(|| "redis_url: must start with redis://, rediss://, redis+unix://, redis+cluster:// or rediss+cluster://".to_owned())
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            prices: HashMap::new(),
            unpriced: UnpricedModels::Deny,
            default_max_tokens: DEFAULT_MAX_TOKENS,
            log_retention_days: DEFAULT_LOG_RETENTION_DAYS,
            redis_url: None,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            rules: ProviderRules::default(),
        }
    }
}

fn int(problems: &mut Vec<String>, at: &str, value: &toml::Value, min: i64) -> Option<i64> {
    match value.as_integer() {
        Some(n) if n >= min => Some(n),
        _ => {
            problems.push(format!("{at}: must be a whole number of at least {min}"));
            None
        }
    }
}

fn text<'a>(problems: &mut Vec<String>, at: &str, value: &'a toml::Value) -> Option<&'a str> {
    let t = value.as_str();
    if t.is_none() {
        problems.push(format!("{at}: must be a string"));
    }
    t
}

/// An API key: `env.NAME` reads the environment at start; anything else is the key itself. The
/// operator's file may name any variable except Tollgate's own settings.
fn api_key(problems: &mut Vec<String>, at: &str, raw: &str) -> Option<Secret> {
    match raw.strip_prefix("env.") {
        Some(var) if var.to_ascii_uppercase().starts_with(RESERVED_PREFIX) => {
            problems.push(format!("{at}: environment variable {var} is one of Tollgate's own settings, never a provider key"));
            None
        }
        Some(var) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Some(Secret::new(value)),
            _ => {
                problems.push(format!("{at}: environment variable {var} is not set"));
                None
            }
        },
        None => Some(Secret::new(raw)),
    }
}

fn provider(problems: &mut Vec<String>, at: &str, value: &toml::Value) -> Option<ProviderSpec> {
    let Some(table) = value.as_table() else {
        problems.push(format!("{at}: must be a table"));
        return None;
    };
    let mut spec = ProviderSpec {
        name: String::new(),
        kind: ProviderKind::default(),
        base_url: String::new(),
        api_key: None,
        models: Vec::new(),
        timeout: Duration::from_mins(2),
        max_retries: 2,
        keys: Vec::new(),
        needs_key: false,
        extra_headers: Vec::new(),
        chat_url: std::sync::OnceLock::new(),
        auth_header: std::sync::OnceLock::new(),
        output_cap: std::sync::OnceLock::new(),
    };
    for (key, v) in table {
        let path = format!("{at}.{key}");
        match key.as_str() {
            "name" => text(problems, &path, v).unwrap_or_default().clone_into(&mut spec.name),
            "kind" => {
                if let Some(name) = text(problems, &path, v) {
                    if let Some(kind) = ProviderKind::parse(name) {
                        spec.kind = kind;
                    } else {
                        let kinds: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.name()).collect();
                        problems.push(format!("{path}: must be one of {} (\"openai\" is any OpenAI-compatible API)", kinds.join(", ")));
                    }
                }
            }
            "base_url" => text(problems, &path, v).unwrap_or_default().clone_into(&mut spec.base_url),
            "api_key" => spec.api_key = text(problems, &path, v).and_then(|raw| api_key(problems, &path, raw)),
            "models" => match v.as_array() {
                Some(items) => spec.models = items.iter().filter_map(|m| text(problems, &path, m)).map(str::to_owned).collect(),
                None => problems.push(format!("{path}: must be a list of model names")),
            },
            "timeout_secs" => {
                spec.timeout = Duration::from_secs(int(problems, &path, v, 1).and_then(|n| u64::try_from(n).ok()).unwrap_or(120));
            }
            "extra_headers" => match v.as_table() {
                Some(headers) => {
                    for (name, value) in headers {
                        let at = format!("{path}.{name}");
                        let Some(value) = text(problems, &at, value) else { continue };
                        match tollgate_gateway::extra_header(name, value) {
                            Ok(header) => spec.extra_headers.push(header),
                            Err(why) => problems.push(format!("{at}: {why}")),
                        }
                    }
                }
                None => problems.push(format!("{path}: must be a table of header names and values")),
            },
            "max_retries" => spec.max_retries = int(problems, &path, v, 0).and_then(|n| u32::try_from(n).ok()).unwrap_or(2),
            _ => problems.push(format!("{path}: unknown setting")),
        }
    }
    if spec.name.is_empty() || !spec.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        problems.push(format!("{at}.name: required; letters, digits, '-', '_' and '.'"));
    }
    if !(spec.base_url.starts_with("http://") || spec.base_url.starts_with("https://")) {
        problems.push(format!("{at}.base_url: required; an http(s) URL up to the API version, e.g. https://api.openai.com/v1"));
    }
    // Its host is checked against the egress policy once `[gateway]` has been read (`parse`).
    Some(spec)
}

/// Dollars per million tokens → micro-dollars per million tokens.
fn per_mtok(problems: &mut Vec<String>, at: &str, value: &toml::Value) -> u64 {
    let dollars = value.as_float().or_else(|| value.as_integer().and_then(|i| i32::try_from(i).ok()).map(f64::from));
    match dollars {
        Some(d) if d.is_finite() && (0.0..=1_000_000.0).contains(&d) => {
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "bounded to 0..=1e12 micro-dollars")]
            let micros = (d * 1_000_000.0).round() as u64;
            micros
        }
        _ => {
            problems.push(format!("{at}: must be US dollars per million tokens, 0 to 1000000"));
            0
        }
    }
}

/// Reads the three sections; every problem goes to `problems`.
pub fn parse(
    providers: Option<&toml::Value>,
    pricing: Option<&toml::Value>,
    gateway: Option<&toml::Value>,
    problems: &mut Vec<String>,
) -> GatewayConfig {
    let mut config = GatewayConfig::default();
    if let Some(list) = providers {
        match list.as_array() {
            Some(items) => {
                config.providers =
                    items.iter().enumerate().filter_map(|(i, v)| provider(problems, &format!("providers[{i}]"), v)).collect();
            }
            None => problems.push("providers: must be a list of [[providers]] tables".to_owned()),
        }
        let mut seen = std::collections::HashSet::new();
        for p in &config.providers {
            if !seen.insert(p.name.clone()) {
                problems.push(format!("providers: '{}' is declared twice", p.name));
            }
        }
    }
    for (key, v) in pricing.and_then(toml::Value::as_table).into_iter().flatten() {
        match key.as_str() {
            "unpriced_models" => match v.as_str() {
                Some("deny") => config.unpriced = UnpricedModels::Deny,
                Some("free") => config.unpriced = UnpricedModels::Free,
                _ => problems.push("pricing.unpriced_models: must be \"deny\" or \"free\"".to_owned()),
            },
            "models" => {
                for (model, price) in v.as_table().into_iter().flatten() {
                    let at = format!("pricing.models.\"{model}\"");
                    let get = |name: &str| price.get(name).cloned().unwrap_or(toml::Value::Integer(-1));
                    let input = per_mtok(problems, &format!("{at}.input"), &get("input"));
                    let output = per_mtok(problems, &format!("{at}.output"), &get("output"));
                    let cached = price.get("cached_input").map(|v| per_mtok(problems, &format!("{at}.cached_input"), v));
                    if let Some(unknown) = price
                        .as_table()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k)
                        .find(|k| !["input", "output", "cached_input"].contains(&k.as_str()))
                    {
                        problems.push(format!("{at}.{unknown}: unknown setting (input, output and cached_input are)"));
                    }
                    if !model.contains('/') {
                        problems.push(format!("{at}: name the model as provider/model"));
                    }
                    config
                        .prices
                        .insert(model.clone(), Price { input_per_mtok: input, output_per_mtok: output, cached_input_per_mtok: cached });
                }
            }
            _ => problems.push(format!("pricing.{key}: unknown setting")),
        }
    }
    for (key, v) in gateway.and_then(toml::Value::as_table).into_iter().flatten() {
        let at = format!("gateway.{key}");
        match key.as_str() {
            "default_max_tokens" => {
                config.default_max_tokens = int(problems, &at, v, 1).and_then(|n| u64::try_from(n).ok()).unwrap_or(DEFAULT_MAX_TOKENS);
            }
            "request_log_retention_days" => config.log_retention_days = int(problems, &at, v, 1).unwrap_or(DEFAULT_LOG_RETENTION_DAYS),
            "redis_url" => {
                if let Some(url) = text(problems, &at, v) {
                    problems.extend(check_redis_url(url).map(|p| format!("gateway.{p}")));
                    config.redis_url = Some(Secret::new(url.to_owned()));
                }
            }
            "redis_key_prefix" => match text(problems, &at, v) {
                Some(prefix) if !prefix.is_empty() => prefix.clone_into(&mut config.redis_key_prefix),
                Some(_) => problems.push(format!("{at}: must not be empty")),
                None => {}
            },
            "block_private_upstreams" => match v.as_bool() {
                Some(flag) => config.rules.egress.block_private = flag,
                None => problems.push(format!("{at}: must be true or false")),
            },
            "provider_key_env_allow" => {
                let names = v.as_array().map(|items| items.iter().map(|n| n.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>());
                match names.flatten().map(EnvAllowList::new) {
                    Some(Ok(list)) => config.rules.env = list,
                    Some(Err(bad)) => problems.extend(bad.into_iter().map(|b| format!("{at}: {b}"))),
                    None => problems.push(format!("{at}: must be a list of variable names or prefixes ending in '*'")),
                }
            }
            _ => problems.push(format!("{at}: unknown setting")),
        }
    }
    for (i, spec) in config.providers.iter().enumerate() {
        if spec.base_url.starts_with("http://") || spec.base_url.starts_with("https://") {
            problems.extend(config.rules.egress.check_base_url(&spec.base_url).err().map(|why| format!("providers[{i}].base_url: {why}")));
        }
    }
    config.rules.declared = config.providers.iter().map(|p| p.name.clone()).collect();
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_prices_and_settings_parse() {
        let doc: toml::Table = r#"
            [[providers]]
            name = "openai"
            base_url = "https://api.openai.com/v1"
            api_key = "sk-literal"
            models = ["gpt-4o"]
            extra_headers = { "OpenAI-Organization" = "org-1" }
            [[providers]]
            name = "anthropic"
            kind = "anthropic"
            base_url = "https://api.anthropic.com/v1"
            api_key = "sk-ant-literal"
            [pricing]
            unpriced_models = "free"
            [pricing.models."openai/gpt-4o"]
            input = 2.5
            output = 10
            cached_input = 1.25
            [gateway]
            default_max_tokens = 1000
            block_private_upstreams = true
            provider_key_env_allow = ["OPENAI_API_KEY", "LLM_*"]
        "#
        .parse()
        .unwrap_or_default();
        let mut problems = Vec::new();
        let c = parse(doc.get("providers"), doc.get("pricing"), doc.get("gateway"), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((c.providers[0].name.as_str(), c.providers[0].kind), ("openai", ProviderKind::OpenAi), "openai is the default kind");
        assert_eq!((c.providers[1].name.as_str(), c.providers[1].kind), ("anthropic", ProviderKind::Anthropic));
        let headers: Vec<(&str, &str)> =
            c.providers[0].extra_headers.iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap_or_default())).collect();
        assert_eq!(headers, vec![("openai-organization", "org-1")], "extra headers of a declared provider");
        assert_eq!(
            c.prices["openai/gpt-4o"],
            Price { input_per_mtok: 2_500_000, output_per_mtok: 10_000_000, cached_input_per_mtok: Some(1_250_000) }
        );
        assert_eq!((c.unpriced, c.default_max_tokens), (UnpricedModels::Free, 1000));
        assert!(c.rules.egress.block_private);
        assert_eq!((c.rules.env.refusal("LLM_GROQ"), c.rules.env.refusal("OPENAI_API_KEY")), (None, None));
        assert!(c.rules.env.refusal("HOME").is_some());
        assert_eq!(c.rules.declared, ["openai", "anthropic"], "the file's providers are its own");
    }

    #[test]
    fn upstream_addresses_and_environment_references_follow_the_rules() {
        let doc = |gateway: &str| -> toml::Table {
            format!(
                r#"
                [[providers]]
                name = "metadata"
                base_url = "http://169.254.169.254/latest"
                api_key = "env.TOLLGATE_ADMIN_PASSWORD"
                [[providers]]
                name = "ollama"
                base_url = "http://localhost:11434/v1"
                [gateway]
                {gateway}
            "#
            )
            .parse()
            .unwrap_or_default()
        };
        let problems_of = |gateway: &str| {
            let doc = doc(gateway);
            let mut problems = Vec::new();
            parse(doc.get("providers"), doc.get("pricing"), doc.get("gateway"), &mut problems);
            problems
        };
        let open = problems_of("");
        assert!(open.iter().any(|p| p.contains("providers[0].base_url: must not point at a link-local")), "{open:?}");
        assert!(open.iter().any(|p| p.contains("TOLLGATE_ADMIN_PASSWORD is one of Tollgate's own settings")), "{open:?}");
        assert!(!open.iter().any(|p| p.contains("providers[1]")), "localhost is allowed by default: {open:?}");
        let closed = problems_of("block_private_upstreams = true\nprovider_key_env_allow = [\"BAD NAME\"]");
        assert!(closed.iter().any(|p| p.contains("providers[1].base_url: must not point at a private or loopback")), "{closed:?}");
        assert!(closed.iter().any(|p| p.contains("gateway.provider_key_env_allow: 'BAD NAME'")), "{closed:?}");
        let wrong = problems_of("block_private_upstreams = \"yes\"\nprovider_key_env_allow = \"X\"");
        assert!(wrong.iter().any(|p| p.contains("gateway.block_private_upstreams: must be true or false")), "{wrong:?}");
        assert!(wrong.iter().any(|p| p.contains("gateway.provider_key_env_allow: must be a list")), "{wrong:?}");
    }

    #[test]
    fn every_problem_is_named() {
        let doc: toml::Table = r#"
            [[providers]]
            name = "bad name"
            base_url = "ftp://x"
            api_key = "env.TOLLGATE_TEST_SURELY_UNSET_VARIABLE"
            colour = 1
            extra_headers = { "Authorization" = "Bearer x", "bad header" = "y" }
            [[providers]]
            name = "other"
            kind = "gemini"
            base_url = "https://example.com/v1"
            [pricing.models."gpt-4o"]
            input = -1
            output = 1
            cache_input = 1
            cached_input = "cheap"
        "#
        .parse()
        .unwrap_or_default();
        let mut problems = Vec::new();
        parse(doc.get("providers"), doc.get("pricing"), doc.get("gateway"), &mut problems);
        for needle in [
            "providers[0].name",
            "providers[0].base_url",
            "providers[1].kind",
            "TOLLGATE_TEST_SURELY_UNSET_VARIABLE",
            "colour",
            ".input",
            "provider/model",
            "extra_headers.Authorization: reserved",
            "extra_headers.bad header: not a valid header name",
            "\"gpt-4o\".cache_input: unknown setting",
            ".cached_input",
        ] {
            assert!(problems.iter().any(|p| p.contains(needle)), "{needle} missing from {problems:?}");
        }
    }
}
