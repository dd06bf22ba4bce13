//! Who is calling the management API, and the secret handling behind it: hashing, constant-time
//! comparison, generation of passwords and API keys, a secret type that never prints itself.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::CoreError;
use crate::ids::ApiKeyId;
use crate::permissions::Permission;

/// Prefix of every management API key value.
pub const API_KEY_PREFIX: &str = "bfst-";
const API_KEY_RANDOM_CHARS: usize = 44;

/// An authenticated caller of the management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The local admin (HTTP Basic); never refused by permission checks.
    Admin { username: String },
    /// A management API key; its power is exactly its scopes.
    ApiKey { id: ApiKeyId, name: String, scopes: Vec<u64> },
}

impl Principal {
    /// How the caller is named in versions and audit logs.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin { username } => username.clone(),
            Principal::ApiKey { id, name, .. } => format!("api-key:{id}:{name}"),
        }
    }

    pub fn may(&self, permission: Permission) -> bool {
        match self {
            Principal::Admin { .. } => true,
            Principal::ApiKey { scopes, .. } => scopes.contains(&permission.id),
        }
    }

    /// Whether the caller holds every one of `scopes` (permission ids): the condition for changing
    /// or deleting a key that has them, so no key can act on one more powerful than itself.
    pub fn holds_all(&self, scopes: &[u64]) -> bool {
        match self {
            Principal::Admin { .. } => true,
            Principal::ApiKey { scopes: own, .. } => scopes.iter().all(|id| own.contains(id)),
        }
    }

    /// Refuses with 403 unless the caller holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), CoreError> {
        if self.may(permission) { Ok(()) } else { Err(CoreError::Forbidden(format!("missing permission {permission}"))) }
    }
}

/// A secret held in memory; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// SHA-256 of a high-entropy secret, hex encoded (for API keys; never for passwords).
pub fn sha256_hex(value: &str) -> String {
    hex::encode(sha256(value))
}

/// SHA-256 of a high-entropy secret (for look-ups; never for passwords).
pub fn sha256(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// An Argon2id hash of a password, in PHC string form.
/// Shortest admin password accepted anywhere: the environment, the config file and the CLI.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 12;

pub fn hash_password(password: &str) -> Result<String, CoreError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(format!("password hashing failed: {e}")))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

fn random_alphanumeric(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// A strong generated admin password (32 alphanumeric characters, ~190 bits).
pub fn generate_password() -> Secret {
    Secret(random_alphanumeric(32))
}

/// A new API key value and its display prefix (`bfst-` + 8 characters + `...`).
pub fn generate_api_key() -> (Secret, String) {
    let random = random_alphanumeric(API_KEY_RANDOM_CHARS);
    let prefix = format!("{API_KEY_PREFIX}{}...", &random[..8]);
    (Secret(format!("{API_KEY_PREFIX}{random}")), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").unwrap_or_default();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn api_keys_have_the_published_shape() {
        let (value, prefix) = generate_api_key();
        assert!(value.expose().starts_with("bfst-"));
        assert_eq!(value.expose().len(), 49);
        assert!(prefix.starts_with(&value.expose()[..13]) && prefix.ends_with("..."));
        assert_eq!(format!("{value:?}"), "Secret(***)");
    }

    #[test]
    fn an_api_key_holds_exactly_its_scopes_and_the_admin_everything() {
        let view = Permission::of("AccessProfiles", "View").unwrap_or_else(|| Permission::all().next().unwrap_or_else(|| unreachable!()));
        let key = Principal::ApiKey { id: ApiKeyId(1), name: "ci".into(), scopes: vec![view.id] };
        assert!(key.may(view));
        assert!(Permission::all().filter(|p| *p != view).all(|p| !key.may(p)));
        assert!(Principal::Admin { username: "admin".into() }.may(view));
    }

    #[test]
    fn holding_all_scopes_means_every_one_of_them() {
        let key = Principal::ApiKey { id: ApiKeyId(1), name: "ci".into(), scopes: vec![1, 2, 3] };
        assert!(key.holds_all(&[]));
        assert!(key.holds_all(&[3, 1]));
        assert!(!key.holds_all(&[1, 4]));
        assert!(Principal::Admin { username: "admin".into() }.holds_all(&[1, 99]));
    }
}
