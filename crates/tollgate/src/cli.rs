//! Operator commands beside `serve`: mint a management API key, set the admin password.

use std::sync::Arc;

use tollgate_core::CoreError;
use tollgate_core::auth::{Principal, Secret};
use tollgate_core::permissions::Permission;
use tollgate_core::ports::Store;
use tollgate_core::services::api_keys::{ApiKeyRequest, ApiKeyService, CreatedApiKey};
use tollgate_core::services::auth::{AdminSource, AuthService};
use tollgate_store::SqlStore;

/// Mints a management API key directly in the database, for automation with no admin password.
pub async fn create_api_key(
    database_url: &str,
    name: String,
    description: Option<String>,
    scopes: &[String],
    all_scopes: bool,
    expires_at: Option<String>,
) -> Result<CreatedApiKey, CoreError> {
    let ids: Vec<u64> = if all_scopes {
        Permission::all().map(|p| p.id).collect()
    } else {
        scopes
            .iter()
            .map(|s| {
                Permission::parse(s)
                    .map(|p| p.id)
                    .ok_or_else(|| CoreError::invalid("scope", format!("'{s}' is not a Resource:Operation permission")))
            })
            .collect::<Result<_, _>>()?
    };
    if ids.is_empty() {
        return Err(CoreError::invalid("scope", "give at least one --scope Resource:Operation, or --all-scopes"));
    }
    let store = connect(database_url).await?;
    let request = ApiKeyRequest { name: Some(name), description: Some(description), scopes: Some(ids), expires_at: Some(expires_at) };
    ApiKeyService::new(store).create(&Principal::Admin { username: "cli".into() }, request).await
}

/// Replaces the stored admin credential.
pub async fn set_admin_password(database_url: &str, username: &str, password: &Secret) -> Result<(), CoreError> {
    let store = connect(database_url).await?;
    AuthService::new(store, AdminSource::Stored).set_admin_password(username, password).await
}

async fn connect(database_url: &str) -> Result<Arc<dyn Store>, CoreError> {
    let store = SqlStore::connect(database_url).await.map_err(|e| CoreError::Unavailable(e.to_string()))?;
    Ok(Arc::new(store))
}

/// A database URL fit for a log line: any password is hidden.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_passwords_never_reach_the_log() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://./tollgate.db"), "sqlite://./tollgate.db");
    }
}
