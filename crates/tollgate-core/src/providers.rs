//! Upstream providers and their API keys as the management API keeps them: network settings, the
//! wire format they speak, and keys whose secrets are sealed at rest and redacted when served.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::egress::EgressPolicy;
use crate::env_refs::EnvAllowList;
use crate::error::Problems;
use crate::store_error::StoreError;

/// What the operator decided about the providers the management API defines: which addresses
/// they may have, which environment variables their keys may name, and which names the config
/// file owns (decisions 105–107).
#[derive(Debug, Clone, Default)]
pub struct ProviderRules {
    pub egress: EgressPolicy,
    pub env: EnvAllowList,
    /// Providers the config file declares; the API may not define one of the same name.
    pub declared: Vec<String>,
}

/// The API dialect an upstream speaks (and a client speaks on a route): the one list of provider
/// kinds, read by the configuration file, the store, the governance snapshot and the inference
/// adapters. A new kind is one arm here plus its adapter in the inference crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProviderKind {
    /// OpenAI's chat-completions format (OpenAI, Azure OpenAI, Groq, Mistral, vLLM, Ollama, …).
    #[default]
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl ProviderKind {
    /// Every kind, in the order documentation lists them.
    pub const ALL: [ProviderKind; 2] = [ProviderKind::OpenAi, ProviderKind::Anthropic];

    /// The kind's name in configuration (`kind = "openai"`).
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    /// The kind a configuration names, if it is one.
    pub fn parse(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind spoken by a provider of the contract's `base_provider_type` (or a built-in name):
    /// a kind's own name speaks that kind; every other provider speaks OpenAI's format
    /// (decision 85).
    pub fn of_base_type(base: &str) -> ProviderKind {
        ProviderKind::parse(base).unwrap_or_default()
    }
}

/// Where and how to reach a provider.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct NetworkConfig {
    /// Base URL up to the API version, e.g. `https://api.openai.com/v1`. Link-local and
    /// cloud-metadata hosts are refused, and private or loopback ones when the operator says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^https?://")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub default_request_timeout_in_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 10)]
    pub max_retries: Option<u32>,
}

/// Settings of a provider that is not one of the built-in names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct CustomProviderConfig {
    /// The provider whose API it mimics: `anthropic` is spoken to in Anthropic's format, every
    /// other name in OpenAI's (decision 85).
    #[schema(value_type = ModelProvider)]
    pub base_provider_type: String,
    #[serde(default)]
    pub is_key_less: bool,
}

/// A provider as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Provider {
    pub name: String,
    pub network_config: NetworkConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_provider_config: Option<CustomProviderConfig>,
    /// Always `active` for a stored provider.
    pub provider_status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Provider {
    pub fn kind(&self) -> ProviderKind {
        let base = self.custom_provider_config.as_ref().map_or(self.name.as_str(), |c| c.base_provider_type.as_str());
        ProviderKind::of_base_type(base)
    }

    /// The default base URL of a built-in provider.
    pub fn base_url(&self) -> Option<String> {
        self.network_config.base_url.clone().or_else(|| match self.name.as_str() {
            "openai" => Some("https://api.openai.com/v1".into()),
            "anthropic" => Some("https://api.anthropic.com/v1".into()),
            "groq" => Some("https://api.groq.com/openai/v1".into()),
            "mistral" => Some("https://api.mistral.ai/v1".into()),
            "openrouter" => Some("https://openrouter.ai/api/v1".into()),
            _ => None,
        })
    }
}

/// The provider names of the contract (`ModelProvider`), the values `base_provider_type` takes.
pub const MODEL_PROVIDERS: [&str; 32] = [
    "anthropic",
    "azure",
    "bedrock",
    "bedrock_mantle",
    "cerebras",
    "cohere",
    "deepseek",
    "gemini",
    "groq",
    "mistral",
    "ollama",
    "opencode-go",
    "opencode-zen",
    "openai",
    "parasail",
    "perplexity",
    "sgl",
    "vertex",
    "openrouter",
    "elevenlabs",
    "huggingface",
    "nebius",
    "xai",
    "replicate",
    "vllm",
    "runway",
    "runware",
    "fireworks",
    "sarvam",
    "wafer",
    "zro",
    "databricks",
];

/// The schema of a `ModelProvider` name: a string of `MODEL_PROVIDERS`.
#[derive(Debug)]
pub struct ModelProvider;

impl utoipa::PartialSchema for ModelProvider {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(MODEL_PROVIDERS))
            .description(Some("A provider name of the contract."))
            .into()
    }
}

impl ToSchema for ModelProvider {}

/// Body of `POST /api/providers`. `provider` is required; it is read as optional so that a
/// missing name is answered like a malformed one, as a validation error on `provider`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AddProviderRequest {
    #[serde(default)]
    #[schema(required = true, value_type = String, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub provider: Option<String>,
    #[serde(default)]
    pub network_config: Option<NetworkConfig>,
    #[serde(default)]
    pub custom_provider_config: Option<CustomProviderConfig>,
    /// Keys given inline on create (older clients do this).
    #[serde(default)]
    pub keys: Option<Vec<KeyRequest>>,
}

/// Body of the full-replacement `PUT /api/providers/{provider}`: the settings without the name.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdateProviderRequest {
    #[serde(default)]
    pub network_config: Option<NetworkConfig>,
    #[serde(default)]
    pub custom_provider_config: Option<CustomProviderConfig>,
}

/// A provider key as sent: `value` is the secret itself or `env.NAME`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct KeyRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The secret, or `env.NAME` to read it from the environment when used (only a name the
    /// operator allows, never one of Tollgate's own settings); not blank.
    #[schema(min_length = 1, pattern = r"\S")]
    pub value: String,
    /// Models this key serves; `["*"]` or omitted means all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A secret as served: never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RedactedSecret {
    /// Masked (`sk-p…wxyz`), or empty for an environment reference.
    pub value: String,
    pub env_var: String,
    pub from_env: bool,
}

/// A provider key as stored (the secret travels separately, sealed).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProviderKey {
    pub id: String,
    #[serde(skip)]
    pub provider: String,
    pub name: String,
    pub value: RedactedSecret,
    pub models: Vec<String>,
    pub weight: f64,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ProviderKey {
    pub fn serves(&self, model: &str) -> bool {
        self.enabled && (self.models.is_empty() || self.models.iter().any(|m| m == "*" || m == model))
    }
}

/// The masked form of a secret: its first four and last four characters.
pub fn redact(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 12 {
        return "****".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

pub(crate) fn checked_provider_name(p: &mut Problems, name: &str) -> String {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        p.add("provider", "must be 1-64 letters, digits, '-', '_' or '.'");
    }
    name.to_owned()
}

pub(crate) fn checked_custom(p: &mut Problems, custom: Option<&CustomProviderConfig>) {
    if let Some(custom) = custom
        && !MODEL_PROVIDERS.contains(&custom.base_provider_type.as_str())
    {
        p.add("custom_provider_config.base_provider_type", "must be a provider name such as openai or anthropic");
    }
}

pub(crate) fn checked_network(p: &mut Problems, network: &NetworkConfig, egress: EgressPolicy) {
    if let Some(Err(why)) = network.base_url.as_deref().map(|url| egress.check_base_url(url)) {
        p.add("network_config.base_url", why);
    }
    if network.default_request_timeout_in_seconds == Some(0) {
        p.add("network_config.default_request_timeout_in_seconds", "must be at least 1");
    }
    if network.max_retries.is_some_and(|r| r > 10) {
        p.add("network_config.max_retries", "must be at most 10");
    }
}

/// Storage of providers and their keys.
#[async_trait]
pub trait ProviderStore: Send + Sync {
    async fn list_providers(&self) -> Result<Vec<Provider>, StoreError>;
    async fn get_provider(&self, name: &str) -> Result<Option<Provider>, StoreError>;
    /// Inserts a provider with its first keys in one transaction; `Duplicate` if it exists.
    async fn insert_provider(&self, provider: &Provider, keys: &[(ProviderKey, String)]) -> Result<(), StoreError>;
    async fn replace_provider(&self, provider: &Provider) -> Result<bool, StoreError>;
    /// Deletes a provider and its keys.
    async fn delete_provider(&self, name: &str) -> Result<bool, StoreError>;
    /// Keys of one provider, or of every provider.
    async fn list_provider_keys(&self, provider: Option<&str>) -> Result<Vec<ProviderKey>, StoreError>;
    /// `Duplicate` when the id or the name is taken.
    async fn insert_provider_key(&self, key: &ProviderKey, sealed: &str) -> Result<(), StoreError>;
    /// Replaces a key; `sealed: None` keeps the stored secret.
    async fn replace_provider_key(&self, key: &ProviderKey, sealed: Option<&str>) -> Result<bool, StoreError>;
    async fn delete_provider_key(&self, provider: &str, id: &str) -> Result<bool, StoreError>;
    /// Every key with its sealed secret, for the data plane.
    async fn sealed_provider_keys(&self) -> Result<Vec<(ProviderKey, String)>, StoreError>;
}
