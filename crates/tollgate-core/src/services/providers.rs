//! Provider use cases: add, read, replace and delete providers and their keys. Key secrets and
//! extra-header values are sealed before they reach the store; answers carry only redacted forms.
//! The operator's `ProviderRules` decide which base URLs, environment references and names are accepted.

use std::sync::Arc;

use crate::error::{CoreError, Problems};
use crate::ports::{Store, StoreError};
use crate::provider_headers;
use crate::providers::{
    AddProviderRequest, KeyRequest, Provider, ProviderKey, ProviderRules, RedactedSecret, UpdateProviderRequest, checked_custom,
    checked_network, checked_provider_name, redact,
};
use crate::vkeys::Sealer;

pub use crate::providers::ProviderStore;

#[derive(Clone)]
pub struct ProviderService {
    store: Arc<dyn Store>,
    sealer: Sealer,
    rules: Arc<ProviderRules>,
}

impl std::fmt::Debug for ProviderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderService").finish_non_exhaustive()
    }
}

fn provider_missing(name: &str) -> CoreError {
    CoreError::NotFound(format!("provider '{name}' not found"))
}

fn key_missing(id: &str) -> CoreError {
    CoreError::NotFound(format!("provider key '{id}' not found"))
}

impl ProviderService {
    /// A service under the default rules (no private-range refusal, no environment references,
    /// no file-declared providers); the binary adds the operator's with [`Self::with_rules`].
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        Self { store, sealer, rules: Arc::default() }
    }

    #[must_use]
    pub fn with_rules(self, rules: ProviderRules) -> Self {
        Self { rules: Arc::new(rules), ..self }
    }

    pub async fn list(&self) -> Result<Vec<Provider>, CoreError> {
        Ok(self.store.list_providers().await?.into_iter().map(|p| self.served(p)).collect())
    }

    pub async fn get(&self, name: &str) -> Result<Provider, CoreError> {
        self.stored(name).await.map(|p| self.served(p))
    }

    /// The provider as stored: extra-header values sealed.
    async fn stored(&self, name: &str) -> Result<Provider, CoreError> {
        self.store.get_provider(name).await?.ok_or_else(|| provider_missing(name))
    }

    /// The provider as answered: extra-header values redacted.
    fn served(&self, mut provider: Provider) -> Provider {
        provider_headers::redacted(&mut provider.network_config, &self.sealer);
        provider
    }

    pub async fn create(&self, req: AddProviderRequest) -> Result<Provider, CoreError> {
        let mut p = Problems::default();
        let name = checked_provider_name(&mut p, req.provider.as_deref().unwrap_or_default());
        let network = req.network_config.unwrap_or_default();
        checked_network(&mut p, &network, self.rules.egress);
        checked_custom(&mut p, req.custom_provider_config.as_ref());
        p.into_result(())?;
        if self.rules.declared.contains(&name) {
            return Err(CoreError::Conflict(format!(
                "provider '{name}' is declared in the config file, which owns it; change it there or choose another name"
            )));
        }
        let mut network = network;
        provider_headers::sealed(&mut network, None, &self.sealer)?;
        let now = crate::clock::now();
        let provider = Provider {
            name: name.clone(),
            network_config: network,
            custom_provider_config: req.custom_provider_config,
            provider_status: "active".into(),
            created_at: now,
            updated_at: now,
        };
        let mut keys = Vec::new();
        for (i, key) in req.keys.unwrap_or_default().into_iter().enumerate() {
            keys.push(self.new_key(&name, key).map_err(|e| prefix(e, &format!("keys[{i}]")))?);
        }
        match self.store.insert_provider(&provider, &keys).await {
            Ok(()) => Ok(self.served(provider)),
            Err(StoreError::Duplicate) => {
                Err(CoreError::Conflict(format!("provider '{name}' already exists (or one of its key ids or names is taken)")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Full replacement: members left out return to their defaults; an extra header sent back
    /// redacted keeps its stored value.
    pub async fn replace(&self, name: &str, req: UpdateProviderRequest) -> Result<Provider, CoreError> {
        let mut provider = self.stored(name).await?;
        let mut p = Problems::default();
        let mut network = req.network_config.unwrap_or_default();
        checked_network(&mut p, &network, self.rules.egress);
        checked_custom(&mut p, req.custom_provider_config.as_ref());
        p.into_result(())?;
        provider_headers::sealed(&mut network, Some(&provider.network_config), &self.sealer)?;
        provider.network_config = network;
        provider.custom_provider_config = req.custom_provider_config;
        provider.updated_at = crate::clock::now();
        if self.store.replace_provider(&provider).await? { Ok(self.served(provider)) } else { Err(provider_missing(name)) }
    }

    /// Deletes a provider and its keys; answers with what was removed.
    pub async fn delete(&self, name: &str) -> Result<Provider, CoreError> {
        let provider = self.get(name).await?;
        if self.store.delete_provider(name).await? { Ok(provider) } else { Err(provider_missing(name)) }
    }

    pub async fn keys(&self, provider: &str) -> Result<Vec<ProviderKey>, CoreError> {
        self.get(provider).await?;
        Ok(self.store.list_provider_keys(Some(provider)).await?)
    }

    pub async fn all_keys(&self) -> Result<Vec<ProviderKey>, CoreError> {
        Ok(self.store.list_provider_keys(None).await?)
    }

    pub async fn key(&self, provider: &str, id: &str) -> Result<ProviderKey, CoreError> {
        self.keys(provider).await?.into_iter().find(|k| k.id == id).ok_or_else(|| key_missing(id))
    }

    pub async fn add_key(&self, provider: &str, req: KeyRequest) -> Result<ProviderKey, CoreError> {
        self.get(provider).await?;
        let (key, sealed) = self.new_key(provider, req)?;
        match self.store.insert_provider_key(&key, &sealed).await {
            Ok(()) => Ok(key),
            Err(StoreError::Duplicate) => {
                Err(CoreError::Conflict(format!("a key with id '{}' or name '{}' already exists", key.id, key.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Full replacement of a key; sending back the redacted value keeps the stored secret.
    pub async fn replace_key(&self, provider: &str, id: &str, req: KeyRequest) -> Result<ProviderKey, CoreError> {
        let current = self.key(provider, id).await?;
        let keep_secret =
            req.value == current.value.value || (current.value.from_env && req.value == format!("env.{}", current.value.env_var));
        let (mut key, sealed) = self.new_key(provider, KeyRequest { id: Some(id.to_owned()), ..req })?;
        if keep_secret {
            key.value = current.value.clone();
        }
        key.created_at = current.created_at;
        let sealed = (!keep_secret).then_some(sealed);
        match self.store.replace_provider_key(&key, sealed.as_deref()).await {
            Ok(true) => Ok(key),
            Ok(false) => Err(key_missing(id)),
            Err(StoreError::Duplicate) => Err(CoreError::Conflict(format!("a key named '{}' already exists", key.name))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_key(&self, provider: &str, id: &str) -> Result<ProviderKey, CoreError> {
        let key = self.key(provider, id).await?;
        if self.store.delete_provider_key(provider, id).await? { Ok(key) } else { Err(key_missing(id)) }
    }

    /// Validates a key request into the stored key and its sealed secret.
    fn new_key(&self, provider: &str, req: KeyRequest) -> Result<(ProviderKey, String), CoreError> {
        let mut p = Problems::default();
        let value = req.value.trim().to_owned();
        if value.is_empty() {
            p.add("value", "is required");
        }
        if let Some(why) = value.strip_prefix("env.").and_then(|var| self.rules.env.refusal(var)) {
            p.add("value", why);
        }
        let weight = req.weight.unwrap_or(1.0);
        if !weight.is_finite() || weight < 0.0 {
            p.add("weight", "must be a non-negative number");
        }
        p.into_result(())?;
        let id = req.id.filter(|i| !i.trim().is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (redacted, secret) = match value.strip_prefix("env.") {
            Some(var) => (RedactedSecret { value: String::new(), env_var: var.to_owned(), from_env: true }, String::new()),
            None => (RedactedSecret { value: redact(&value), env_var: String::new(), from_env: false }, value),
        };
        let now = crate::clock::now();
        let key = ProviderKey {
            name: req.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("{provider}-{}", &id[..id.len().min(8)])),
            id,
            provider: provider.to_owned(),
            value: redacted,
            models: req.models.unwrap_or_default(),
            weight,
            enabled: req.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        };
        Ok((key, self.sealer.seal(&secret)?))
    }
}

fn prefix(e: CoreError, at: &str) -> CoreError {
    match e {
        CoreError::Validation(problems) => CoreError::Validation(
            problems.into_iter().map(|f| crate::error::FieldError::new(format!("{at}.{}", f.param), f.message)).collect(),
        ),
        other => other,
    }
}
