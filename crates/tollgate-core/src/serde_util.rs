//! Serde helpers for request bodies where an absent member and `null` mean different things.

use serde::{Deserialize, Deserializer};

/// Deserialises a present member into `Some(inner)`, so `null` becomes `Some(None)` and an
/// absent member (with `#[serde(default)]`) stays `None`.
#[expect(clippy::option_option, reason = "absent, null and a value are three different requests")]
pub(crate) fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
