//! Authenticates management callers: the admin over HTTP Basic, or a management API key as a
//! bearer token. Also bootstraps the admin credential on a new database.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::auth::{API_KEY_PREFIX, Principal, Secret, constant_time_eq, generate_password, hash_password, sha256_hex, verify_password};
use crate::error::CoreError;
use crate::ports::{AdminCredential, Store};

/// Username of a generated admin credential.
pub const DEFAULT_ADMIN_USERNAME: &str = "admin";

/// Where the admin password is checked against.
#[derive(Debug, Clone)]
pub enum AdminSource {
    /// Given by the operator (environment or config file); held in memory only.
    Configured { username: String, password: Secret },
    /// A hash stored in the database.
    Stored,
}

/// What start-up learned about the admin credential.
#[derive(Debug, Clone)]
pub enum AdminBootstrap {
    Configured,
    Stored,
    /// A new password was generated and its hash stored; this is the only time it is known.
    Generated {
        username: String,
        password: Secret,
    },
}

pub struct AuthService {
    store: Arc<dyn Store>,
    admin: AdminSource,
    /// The last (stored hash, digest of the presented credential) that verified, so a valid
    /// admin pays for Argon2 once per credential rather than on every call.
    verified: Mutex<Option<(String, [u8; 32])>>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").field("admin", &self.admin).finish_non_exhaustive()
    }
}

fn unauthorized() -> CoreError {
    CoreError::Unauthorized("a valid admin credential or management API key is required".into())
}

fn digest(username: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update([0u8]);
    h.update(password.as_bytes());
    h.finalize().into()
}

impl AuthService {
    pub fn new(store: Arc<dyn Store>, admin: AdminSource) -> Self {
        Self { store, admin, verified: Mutex::new(None) }
    }

    /// Makes sure an admin credential exists; generates and stores one on a new database when
    /// none is configured.
    pub async fn bootstrap(&self) -> Result<AdminBootstrap, CoreError> {
        if matches!(self.admin, AdminSource::Configured { .. }) {
            return Ok(AdminBootstrap::Configured);
        }
        if self.store.admin_credential().await?.is_some() {
            return Ok(AdminBootstrap::Stored);
        }
        let password = generate_password();
        let credential = AdminCredential { username: DEFAULT_ADMIN_USERNAME.into(), password_hash: hash_password(password.expose())? };
        self.store.set_admin_credential(&credential).await?;
        Ok(AdminBootstrap::Generated { username: credential.username, password })
    }

    /// Checks HTTP Basic credentials against the admin credential.
    pub async fn basic(&self, username: &str, password: &str) -> Result<Principal, CoreError> {
        let ok = match &self.admin {
            AdminSource::Configured { username: u, password: p } => {
                let presented = digest(username, password);
                constant_time_eq(&presented, &digest(u, p.expose()))
            }
            AdminSource::Stored => self.verify_stored(username, password).await?,
        };
        if ok { Ok(Principal::Admin { username: username.to_owned() }) } else { Err(unauthorized()) }
    }

    async fn verify_stored(&self, username: &str, password: &str) -> Result<bool, CoreError> {
        let Some(stored) = self.store.admin_credential().await? else { return Ok(false) };
        let presented = digest(username, password);
        let cached = self.verified.lock().ok().and_then(|c| c.clone());
        if let Some((hash, known)) = cached
            && hash == stored.password_hash
        {
            return Ok(constant_time_eq(&known, &presented));
        }
        let user_ok = constant_time_eq(username.as_bytes(), stored.username.as_bytes());
        // Argon2 is deliberately slow; the cache above means a valid admin pays it once.
        let pass_ok = verify_password(password, &stored.password_hash);
        if user_ok
            && pass_ok
            && let Ok(mut slot) = self.verified.lock()
        {
            *slot = Some((stored.password_hash, presented));
        }
        Ok(user_ok && pass_ok)
    }

    /// Checks a bearer token: only management API keys (`bfst-…`) are accepted.
    pub async fn bearer(&self, token: &str) -> Result<Principal, CoreError> {
        if !token.starts_with(API_KEY_PREFIX) {
            return Err(unauthorized());
        }
        let key = self.store.find_api_key_by_hash(&sha256_hex(token)).await?.ok_or_else(unauthorized)?;
        let now = crate::clock::now();
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(CoreError::Unauthorized("this management API key has expired".into()));
        }
        if let Err(e) = self.store.touch_api_key(key.id, now).await {
            tracing::warn!(error = %e, key_id = %key.id, "could not record API key use");
        }
        Ok(Principal::ApiKey { id: key.id, name: key.name, scopes: key.scopes })
    }

    /// Replaces the stored admin credential (used by the CLI).
    pub async fn set_admin_password(&self, username: &str, password: &Secret) -> Result<(), CoreError> {
        if password.expose().chars().count() < 12 {
            return Err(CoreError::invalid("password", "must be at least 12 characters"));
        }
        let credential = AdminCredential { username: username.to_owned(), password_hash: hash_password(password.expose())? };
        Ok(self.store.set_admin_credential(&credential).await?)
    }
}
