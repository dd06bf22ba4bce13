//! The model listing of the management API: which models each configured provider offers and
//! which of its enabled keys serve them, filtered, ordered by provider then model, and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::CoreError;
use crate::ports::Store;
use crate::providers::{Provider, ProviderKey};

/// `limit` of a listing that names none.
pub const DEFAULT_MODELS_LIMIT: usize = 5;
/// Largest `limit` of a listing.
pub const MAX_MODELS_LIMIT: usize = 1000;

/// A provider declared in the config file and the models it names there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeclaredProvider {
    pub name: String,
    pub models: Vec<String>,
}

/// What the listing reads besides the store; fixed for the life of the process.
#[derive(Debug, Clone, Default)]
pub struct ModelSources {
    /// Providers declared in the config file (`[[providers]]`).
    pub declared: Vec<DeclaredProvider>,
    /// `provider/model` names of the shipped pricing catalog.
    pub catalog: Vec<String>,
}

/// One listed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ListedModel {
    /// The model name as the provider knows it (without the provider prefix).
    pub name: String,
    pub provider: String,
    /// Ids of the provider's enabled keys that serve the model, sorted; always empty for a
    /// provider declared in the config file (its one key is an environment reference).
    pub accessible_by_keys: Vec<String>,
}

/// A listing request, already checked: `limit` is within 1..=`MAX_MODELS_LIMIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelQuery {
    /// Case-insensitive substring of the model name.
    pub query: Option<String>,
    /// Exact provider name.
    pub provider: Option<String>,
    /// Only models that at least one of these key ids serves (none: no such filter).
    pub keys: Vec<String>,
    pub limit: usize,
    /// Adds the catalog's models of every configured provider.
    pub unfiltered: bool,
}

impl Default for ModelQuery {
    fn default() -> Self {
        Self { query: None, provider: None, keys: Vec::new(), limit: DEFAULT_MODELS_LIMIT, unfiltered: false }
    }
}

/// The first `limit` matches and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPage {
    pub models: Vec<ListedModel>,
    pub total: usize,
}

#[derive(Clone)]
pub struct ModelService {
    store: Arc<dyn Store>,
    sources: Arc<ModelSources>,
}

impl std::fmt::Debug for ModelService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelService").finish_non_exhaustive()
    }
}

impl ModelService {
    pub fn new(store: Arc<dyn Store>, sources: ModelSources) -> Self {
        Self { store, sources: Arc::new(sources) }
    }

    /// The models matching `query`, in provider then model order.
    pub async fn list(&self, query: &ModelQuery) -> Result<ModelPage, CoreError> {
        let providers = self.store.list_providers().await?;
        let keys = self.store.list_provider_keys(None).await?;
        let matching: Vec<ListedModel> =
            offered(&providers, &keys, &self.sources, query.unfiltered).into_iter().filter(|m| matches(m, query)).collect();
        let total = matching.len();
        Ok(ModelPage { models: matching.into_iter().take(query.limit).collect(), total })
    }
}

/// Where a configured provider's models come from.
enum Origin<'a> {
    /// Managed through the API: its enabled keys.
    Api(Vec<&'a ProviderKey>),
    /// Declared in the config file.
    File(&'a DeclaredProvider),
}

/// A name that can be listed as a model (not the `*` wildcard, not blank).
fn is_model_name(name: &str) -> bool {
    name != "*" && !name.trim().is_empty()
}

/// Every model of every configured provider, ordered, without duplicates. A file-declared
/// provider hides a stored one of the same name, as on the data plane (decision 107).
fn offered(providers: &[Provider], keys: &[ProviderKey], sources: &ModelSources, unfiltered: bool) -> Vec<ListedModel> {
    let mut configured: BTreeMap<&str, Origin<'_>> = sources.declared.iter().map(|d| (d.name.as_str(), Origin::File(d))).collect();
    for provider in providers {
        let enabled = keys.iter().filter(|k| k.provider == provider.name && k.enabled).collect();
        configured.entry(provider.name.as_str()).or_insert(Origin::Api(enabled));
    }
    let mut listed = Vec::new();
    for (provider, origin) in &configured {
        let mut names: BTreeSet<&str> = match origin {
            Origin::Api(keys) => keys.iter().flat_map(|k| &k.models).map(String::as_str).filter(|m| is_model_name(m)).collect(),
            Origin::File(declared) => declared.models.iter().map(String::as_str).filter(|m| is_model_name(m)).collect(),
        };
        if unfiltered {
            let catalog = sources.catalog.iter().filter_map(|entry| entry.split_once('/'));
            names.extend(catalog.filter(|(p, m)| p == provider && is_model_name(m)).map(|(_, m)| m));
        }
        for name in names {
            let mut accessible_by_keys: Vec<String> = match origin {
                Origin::Api(keys) => keys.iter().filter(|k| k.serves(name)).map(|k| k.id.clone()).collect(),
                Origin::File(_) => Vec::new(),
            };
            accessible_by_keys.sort();
            listed.push(ListedModel { name: name.to_owned(), provider: (*provider).to_owned(), accessible_by_keys });
        }
    }
    listed
}

fn matches(model: &ListedModel, query: &ModelQuery) -> bool {
    query.query.as_ref().is_none_or(|q| model.name.to_lowercase().contains(&q.to_lowercase()))
        && query.provider.as_ref().is_none_or(|p| *p == model.provider)
        && (query.keys.is_empty() || model.accessible_by_keys.iter().any(|id| query.keys.contains(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str) -> Provider {
        let now = crate::clock::now();
        Provider {
            name: name.into(),
            network_config: crate::providers::NetworkConfig::default(),
            custom_provider_config: None,
            provider_status: "active".into(),
            created_at: now,
            updated_at: now,
        }
    }

    fn key(provider: &str, id: &str, models: &[&str], enabled: bool) -> ProviderKey {
        let now = crate::clock::now();
        ProviderKey {
            id: id.into(),
            provider: provider.into(),
            name: id.into(),
            value: crate::providers::RedactedSecret { value: "****".into(), env_var: String::new(), from_env: false },
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            weight: 1.0,
            enabled,
            created_at: now,
            updated_at: now,
        }
    }

    fn names(listed: &[ListedModel]) -> Vec<String> {
        listed.iter().map(|m| format!("{}/{}", m.provider, m.name)).collect()
    }

    #[test]
    fn file_providers_hide_stored_ones_of_the_same_name_and_order_is_provider_then_model() {
        let sources = ModelSources {
            declared: vec![
                DeclaredProvider { name: "zeta".into(), models: vec!["b".into(), "a".into(), "a".into(), "*".into()] },
                DeclaredProvider { name: "openai".into(), models: vec!["from-file".into()] },
            ],
            catalog: Vec::new(),
        };
        let keys = [
            key("acme", "k2", &["gpt-4o", "*"], true),
            key("acme", "k1", &["gpt-4o"], true),
            key("acme", "k3", &["off"], false),
            key("openai", "k4", &["from-api"], true),
        ];
        let listed = offered(&[provider("acme"), provider("openai")], &keys, &sources, false);
        assert_eq!(names(&listed), ["acme/gpt-4o", "openai/from-file", "zeta/a", "zeta/b"]);
        assert_eq!(listed[0].accessible_by_keys, ["k1", "k2"], "enabled keys serving it, sorted");
        assert!(listed[1].accessible_by_keys.is_empty(), "a file provider's models name no key");
    }

    #[test]
    fn the_catalog_adds_models_of_configured_providers_only_when_unfiltered() {
        let sources = ModelSources {
            declared: Vec::new(),
            catalog: vec!["openai/gpt-4o".into(), "openai/gpt-4o-mini".into(), "anthropic/claude".into()],
        };
        let keys = [key("openai", "all", &[], true), key("openai", "one", &["gpt-4o"], true)];
        assert_eq!(names(&offered(&[provider("openai")], &keys, &sources, false)), ["openai/gpt-4o"]);
        let listed = offered(&[provider("openai")], &keys, &sources, true);
        assert_eq!(names(&listed), ["openai/gpt-4o", "openai/gpt-4o-mini"], "no duplicate, no unconfigured provider");
        assert_eq!(
            (listed[0].accessible_by_keys.clone(), listed[1].accessible_by_keys.clone()),
            (vec!["all".to_owned(), "one".to_owned()], vec!["all".to_owned()])
        );
    }

    #[test]
    fn filters_combine() {
        let model = ListedModel { name: "GPT-4o".into(), provider: "openai".into(), accessible_by_keys: vec!["k1".into()] };
        let q = |query: Option<&str>, provider: Option<&str>, keys: &[&str]| ModelQuery {
            query: query.map(str::to_owned),
            provider: provider.map(str::to_owned),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..ModelQuery::default()
        };
        assert!(matches(&model, &q(Some("gpt-4O"), Some("openai"), &["x", "k1"])));
        assert!(!matches(&model, &q(Some("mini"), None, &[])));
        assert!(!matches(&model, &q(None, Some("open"), &[])), "the provider must match exactly");
        assert!(!matches(&model, &q(None, None, &["k2"])));
    }
}
