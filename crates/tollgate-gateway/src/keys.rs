//! Where an inference request carries its virtual key: the headers tried, in the contract's
//! order, and the value that counts as a key (`sk-bf-…`, prefix case-insensitive).

use axum::http::{HeaderMap, HeaderName};
use tollgate_core::vkeys::{self, KEY_HEADER_NAMES};

/// Headers that may carry a virtual key, in core's order (`KEY_HEADER_NAMES`). Names made once,
/// so a look-up does not parse and check the name again on every request.
pub const KEY_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static(KEY_HEADER_NAMES[0]),
    HeaderName::from_static(KEY_HEADER_NAMES[1]),
    HeaderName::from_static(KEY_HEADER_NAMES[2]),
    HeaderName::from_static(KEY_HEADER_NAMES[3]),
    HeaderName::from_static(KEY_HEADER_NAMES[4]),
];

/// The first header value that is a virtual key.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    vkeys::presented_key(|at| headers.get(&KEY_HEADERS[at])?.to_str().ok())
}
