//! Authenticates management callers: the admin over HTTP Basic, or a management API key as a
//! bearer token. Also bootstraps the admin credential on a new database. Failed admin logins are
//! throttled per client address and username, and Argon2 runs on the blocking pool, a bounded
//! number at a time, never on a request worker.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::auth::{
    API_KEY_PREFIX, MIN_ADMIN_PASSWORD_CHARS, Principal, Secret, constant_time_eq, generate_password, hash_password, sha256_hex,
    verify_password,
};
use crate::error::CoreError;
use crate::ports::{AdminCredential, Store};
use crate::services::throttle::{LoginThrottle, ThrottlePolicy};

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
    throttle: LoginThrottle,
    /// Argon2 verifications running at once (each takes tens of milliseconds of one core).
    hashing: Arc<tokio::sync::Semaphore>,
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
        Self::with_throttle(store, admin, ThrottlePolicy::default())
    }

    /// As [`AuthService::new`], with failed logins throttled by `policy`.
    pub fn with_throttle(store: Arc<dyn Store>, admin: AdminSource, policy: ThrottlePolicy) -> Self {
        // Half the cores at most, so verifications can never take every core from requests.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let hashing = Arc::new(tokio::sync::Semaphore::new((cores / 2).max(1)));
        Self { store, admin, verified: Mutex::new(None), throttle: LoginThrottle::new(policy), hashing }
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

    /// Checks HTTP Basic credentials against the admin credential. `client` is the caller's
    /// address: a pair (address, username) with too many recent failures is refused with
    /// `Throttled` before its password is looked at, even a right one (else the lock-out would
    /// still answer whether a guess was right).
    pub async fn basic(&self, username: &str, password: &str, client: Option<IpAddr>) -> Result<Principal, CoreError> {
        if let Err(wait) = self.throttle.check(client, username, Instant::now()) {
            return Err(CoreError::Throttled {
                message: "too many failed logins from this address for this user; try again later".into(),
                retry_after_secs: wait.as_secs() + 1,
            });
        }
        let ok = match &self.admin {
            AdminSource::Configured { username: u, password: p } => {
                let presented = digest(username, password);
                constant_time_eq(&presented, &digest(u, p.expose()))
            }
            AdminSource::Stored => self.verify_stored(username, password).await?,
        };
        if ok {
            self.throttle.succeeded(client, username);
            Ok(Principal::Admin { username: username.to_owned() })
        } else {
            self.throttle.failed(client, username, Instant::now());
            Err(unauthorized())
        }
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
        let pass_ok = self.verify_off_worker(password, &stored.password_hash).await?;
        if user_ok
            && pass_ok
            && let Ok(mut slot) = self.verified.lock()
        {
            *slot = Some((stored.password_hash, presented));
        }
        Ok(user_ok && pass_ok)
    }

    /// Argon2 on the blocking pool, a bounded number at a time.
    async fn verify_off_worker(&self, password: &str, phc: &str) -> Result<bool, CoreError> {
        let _permit = self.hashing.acquire().await.map_err(|e| CoreError::Internal(format!("password check: {e}")))?;
        let (password, phc) = (Secret::new(password), phc.to_owned());
        tokio::task::spawn_blocking(move || verify_password(password.expose(), &phc))
            .await
            .map_err(|e| CoreError::Internal(format!("password check: {e}")))
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
        if password.expose().chars().count() < MIN_ADMIN_PASSWORD_CHARS {
            return Err(CoreError::invalid("password", format!("must be at least {MIN_ADMIN_PASSWORD_CHARS} characters")));
        }
        let credential = AdminCredential { username: username.to_owned(), password_hash: hash_password(password.expose())? };
        Ok(self.store.set_admin_credential(&credential).await?)
    }
}
