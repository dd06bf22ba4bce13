//! Management API keys: minted with a value shown once, stored as a hash, scoped by permissions.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{Principal, Secret, generate_api_key, sha256_hex};
use crate::error::{CoreError, Problems};
use crate::ids::{ApiKeyId, Sequence};
use crate::paging::{Page, Paging};
use crate::permissions::Permission;
use crate::ports::{Store, StoreError};
use crate::serde_util::present;

pub use crate::api_key::ApiKey;

/// Body of API-key create (name required) and update (every member optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ApiKeyRequest {
    #[serde(default)]
    #[schema(max_length = 255)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub scopes: Option<Vec<u64>>,
    /// RFC 3339 time; omitted or null means never. On update `""` or null clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub expires_at: Option<Option<String>>,
}

/// A freshly minted key: the only moment its value is known.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    pub key: Secret,
}

#[derive(Clone)]
pub struct ApiKeyService {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for ApiKeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService").finish_non_exhaustive()
    }
}

fn not_found(id: ApiKeyId) -> CoreError {
    CoreError::NotFound(format!("API key {id} not found"))
}

fn name_taken(name: &str) -> CoreError {
    CoreError::Conflict(format!("an API key named '{name}' already exists"))
}

impl ApiKeyService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn create(&self, actor: &Principal, req: ApiKeyRequest) -> Result<CreatedApiKey, CoreError> {
        let mut p = Problems::default();
        let name = checked_name(&mut p, req.name.as_deref().unwrap_or_default());
        let scopes = checked_scopes(&mut p, actor, req.scopes.unwrap_or_default())?;
        let expires_at = checked_expiry(&mut p, req.expires_at.flatten());
        p.into_result(())?;
        let id = self.store.next_ids(Sequence::ApiKey, 1).await?.first().copied().map(ApiKeyId);
        let id = id.ok_or_else(|| CoreError::Internal("id sequence returned nothing".into()))?;
        let (value, key_prefix) = generate_api_key();
        let now = crate::clock::now();
        let api_key = ApiKey {
            id,
            name,
            key_prefix,
            description: req.description.flatten().filter(|d| !d.trim().is_empty()),
            scopes,
            created_by_user_id: None,
            expires_at,
            last_used_at: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_api_key(&api_key, &sha256_hex(value.expose())).await {
            Ok(()) => Ok(CreatedApiKey { api_key, key: value }),
            Err(StoreError::Duplicate) => Err(name_taken(&api_key.name)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list(&self, search: Option<&str>, paging: Paging) -> Result<Page<ApiKey>, CoreError> {
        Ok(self.store.list_api_keys(search, paging).await?)
    }

    pub async fn get(&self, id: ApiKeyId) -> Result<ApiKey, CoreError> {
        self.store.get_api_key(id).await?.ok_or_else(|| not_found(id))
    }

    /// Partial update: absent members keep their value; the secret can never change. The caller
    /// must hold every scope the key has, and an expired key's expiry cannot be changed.
    pub async fn update(&self, actor: &Principal, id: ApiKeyId, req: ApiKeyRequest) -> Result<ApiKey, CoreError> {
        let mut key = self.get(id).await?;
        may_act_on(actor, &key)?;
        if req.expires_at.is_some() && key.expires_at.is_some_and(|at| at <= crate::clock::now()) {
            return Err(CoreError::Conflict(format!("API key {id} has expired and cannot be revived; create a new key")));
        }
        let mut p = Problems::default();
        if let Some(name) = req.name.filter(|n| !n.trim().is_empty()) {
            key.name = checked_name(&mut p, &name);
        }
        if let Some(description) = req.description {
            key.description = description.filter(|d| !d.trim().is_empty());
        }
        if let Some(scopes) = req.scopes {
            key.scopes = checked_scopes(&mut p, actor, scopes)?;
        }
        if let Some(expiry) = req.expires_at {
            key.expires_at = checked_expiry(&mut p, expiry);
        }
        p.into_result(())?;
        key.updated_at = crate::clock::now();
        match self.store.update_api_key(&key).await {
            Ok(true) => Ok(key),
            Ok(false) => Err(not_found(id)),
            Err(StoreError::Duplicate) => Err(name_taken(&key.name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes a key; the caller must hold every scope it has.
    pub async fn delete(&self, actor: &Principal, id: ApiKeyId) -> Result<(), CoreError> {
        may_act_on(actor, &self.get(id).await?)?;
        if self.store.delete_api_key(id).await? { Ok(()) } else { Err(not_found(id)) }
    }
}

/// A caller may change or delete only a key with no scope beyond its own: otherwise a key holding
/// just `APIKeys:*` could strip, re-time or revoke keys more powerful than itself.
fn may_act_on(actor: &Principal, key: &ApiKey) -> Result<(), CoreError> {
    if actor.holds_all(&key.scopes) {
        Ok(())
    } else {
        Err(CoreError::Forbidden(format!("API key {} has scopes the caller does not hold", key.id)))
    }
}

fn checked_name(p: &mut Problems, name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        p.add("name", "is required");
    } else if name.chars().count() > 255 {
        p.add("name", "must be at most 255 characters");
    }
    name.to_owned()
}

/// Scopes must name catalogue permissions, and a caller can only grant what it holds itself.
fn checked_scopes(p: &mut Problems, actor: &Principal, scopes: Vec<u64>) -> Result<Vec<u64>, CoreError> {
    let mut out = Vec::with_capacity(scopes.len());
    for (i, id) in scopes.into_iter().enumerate() {
        match Permission::by_id(id) {
            None => p.add(format!("scopes[{i}]"), format!("{id} is not a permission id")),
            Some(permission) => {
                if !actor.may(permission) {
                    return Err(CoreError::Forbidden(format!("cannot grant {permission}: the caller does not hold it")));
                }
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
    Ok(out)
}

fn checked_expiry(p: &mut Problems, text: Option<String>) -> Option<DateTime<Utc>> {
    let text = text.filter(|t| !t.trim().is_empty())?;
    match DateTime::parse_from_rfc3339(text.trim()) {
        Ok(at) if at <= crate::clock::now() => {
            p.add("expires_at", "must be in the future");
            None
        }
        Ok(at) => Some(at.with_timezone(&Utc)),
        Err(_) => {
            p.add("expires_at", "must be an RFC 3339 date-time");
            None
        }
    }
}
