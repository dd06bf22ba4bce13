//! Managed virtual keys: their `sk-bf-` values, the masked form shown in lists, and the sealing
//! (authenticated encryption) of the one stored copy that an audited reveal can open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Secret;
use crate::error::CoreError;

/// Prefix of every virtual key value.
pub const VIRTUAL_KEY_PREFIX: &str = "sk-bf-";

/// A virtual key as stored (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualKey {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub value_masked: String,
    pub user_id: String,
    /// The copy that issued it; `None` for an extra key minted for the user.
    pub copy_id: Option<i64>,
    pub is_active: bool,
    /// When the key stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the current value replaced the previous one (scheduled rotation); `None`: never rotated.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the previous value still works, after a rotation.
    pub previous_value_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A key in the user-key lists: the value is masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserVirtualKey {
    pub id: String,
    pub name: String,
    /// Masked; the full value is shown once, at creation, or by an audited reveal.
    pub value: String,
    /// Always true: every key of a user is governed by the user's access profiles.
    pub is_access_profile_managed: bool,
}

/// A key with its full value (creation and reveal answers only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VirtualKeySummary {
    pub id: String,
    pub name: String,
    pub value: String,
}

/// A fresh key value: the prefix and a random UUID.
/// Headers that may carry a virtual key on a governed route, in the order they are tried.
pub const KEY_HEADER_NAMES: [&str; 5] = ["x-bf-vk", "authorization", "x-api-key", "x-goog-api-key", "api-key"];

/// The first header value that is a virtual key (`sk-bf-…`, prefix case-insensitive; on
/// `authorization` after `Bearer `), given each header's value by its index in `KEY_HEADER_NAMES`.
pub fn presented_key<'a>(value_of: impl Fn(usize) -> Option<&'a str>) -> Option<&'a str> {
    KEY_HEADER_NAMES.iter().enumerate().find_map(|(at, name)| {
        let value = value_of(at)?.trim();
        let value = if *name == "authorization" {
            let (scheme, rest) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            rest.trim()
        } else {
            value
        };
        value.get(..VIRTUAL_KEY_PREFIX.len()).filter(|p| p.eq_ignore_ascii_case(VIRTUAL_KEY_PREFIX)).map(|_| value)
    })
}

pub fn generate_value() -> Secret {
    Secret::new(format!("{VIRTUAL_KEY_PREFIX}{}", uuid::Uuid::new_v4()))
}

/// `sk-bf-1b4e…a427`: enough to recognise a key, never enough to use it.
pub fn mask(value: &str) -> String {
    let body = value.strip_prefix(VIRTUAL_KEY_PREFIX).unwrap_or(value);
    let head: String = body.chars().take(4).collect();
    let tail: String = body.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{VIRTUAL_KEY_PREFIX}{head}…{tail}")
}

/// Seals and opens secrets with a 256-bit key (XChaCha20-Poly1305, random nonce per value).
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

const SEALED_PREFIX: &str = "v1:";

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    /// A new random 256-bit key.
    pub fn generate_key() -> [u8; 32] {
        XChaCha20Poly1305::generate_key(&mut OsRng).into()
    }

    pub fn seal(&self, plain: &str) -> Result<String, CoreError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self.cipher.encrypt(&nonce, plain.as_bytes()).map_err(|_| CoreError::Internal("sealing failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(bytes)))
    }

    pub fn open(&self, sealed: &str) -> Result<Secret, CoreError> {
        let wrong = || CoreError::Internal("a sealed value cannot be opened: is this the encryption key it was sealed with?".into());
        let bytes = STANDARD.decode(sealed.strip_prefix(SEALED_PREFIX).ok_or_else(wrong)?).map_err(|_| wrong())?;
        if bytes.len() < 24 {
            return Err(wrong());
        }
        let (nonce, body) = bytes.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), body).map_err(|_| wrong())?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key() {
        let key = Sealer::new(&Sealer::generate_key());
        let value = generate_value();
        let sealed = key.seal(value.expose()).unwrap_or_default();
        assert!(!sealed.contains(value.expose()));
        assert_eq!(key.open(&sealed).map(|s| s.expose().to_owned()).ok(), Some(value.expose().to_owned()));
        let other = Sealer::new(&Sealer::generate_key());
        assert!(other.open(&sealed).is_err());
        assert!(key.open("v1:not-base64!").is_err());
    }

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask("sk-bf-1b4e28ba-2fa1-41d2-883f-0016d3cca427"), "sk-bf-1b4e…a427");
        assert!(generate_value().expose().starts_with(VIRTUAL_KEY_PREFIX));
    }
}
