//! Where an inference request carries its virtual key: the headers tried, in the contract's
//! order, and the value that counts as a key (`sk-bf-…`, prefix case-insensitive).

use axum::http::{HeaderMap, HeaderName, header};
use tollgate_core::vkeys::VIRTUAL_KEY_PREFIX;

/// Headers that may carry a virtual key, in the order they are tried. Names made once, so a
/// look-up does not parse and check the name again on every request.
pub const KEY_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-bf-vk"),
    header::AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("x-goog-api-key"),
    HeaderName::from_static("api-key"),
];

/// The first header value that is a virtual key.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    KEY_HEADERS.iter().find_map(|name| {
        let value = headers.get(name)?.to_str().ok()?.trim();
        let value = if name == header::AUTHORIZATION {
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
