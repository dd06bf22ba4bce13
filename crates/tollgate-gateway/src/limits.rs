//! OpenAI-style rate-limit headers on an admitted request's answer, from the room its reservation
//! left (`Held::room`, worked out by the reservation itself, so no second counter read): per
//! kind, the applying line with the least room; absent where no line of the kind applies.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use tollgate_governance::Room;

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// The answer with the headers of `room` (unchanged when no rate line applied).
pub(crate) fn with(mut response: axum::response::Response, room: Room) -> axum::response::Response {
    if room != Room::default() {
        add(response.headers_mut(), room, tollgate_core::clock::now());
    }
    response
}

/// Adds the headers of the kinds `room` has a line for. The values are written into one buffer
/// that every value shares (two allocations rather than one per header: this runs per request).
pub(crate) fn add(headers: &mut HeaderMap, room: Room, now: DateTime<Utc>) {
    let lines = [
        (room.requests, [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS]),
        (room.tokens, [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS]),
    ];
    let mut text = BytesMut::with_capacity(96);
    let mut ends = [[0; 3]; 2];
    for ((line, _), ends) in lines.iter().zip(&mut ends) {
        let Some(line) = line else { continue };
        let mut digits = itoa::Buffer::new();
        text.extend_from_slice(digits.format(line.limit).as_bytes());
        ends[0] = text.len();
        text.extend_from_slice(digits.format(line.remaining).as_bytes());
        ends[1] = text.len();
        until(line.resets_at, now, &mut text);
        ends[2] = text.len();
    }
    let text = text.freeze();
    headers.reserve(6);
    let mut start = 0;
    for ((line, names), ends) in lines.into_iter().zip(ends) {
        if line.is_none() {
            continue;
        }
        for (name, end) in names.into_iter().zip(ends) {
            if let Ok(value) = HeaderValue::from_maybe_shared(text.slice(start..end)) {
                headers.insert(name, value);
            }
            start = end;
        }
    }
}

/// Writes the time until `at`, in whole seconds rounded up, as OpenAI writes it (`59s`, `6m0s`,
/// `23h59m12s`), without the formatting machinery.
fn until(at: DateTime<Utc>, now: DateTime<Utc>, text: &mut BytesMut) {
    let millis = u64::try_from(at.timestamp_millis() - now.timestamp_millis()).unwrap_or(0);
    let seconds = millis.div_ceil(1000);
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut digits = itoa::Buffer::new();
    if hours > 0 {
        text.extend_from_slice(digits.format(hours).as_bytes());
        text.extend_from_slice(b"h");
    }
    if hours > 0 || minutes > 0 {
        text.extend_from_slice(digits.format(minutes).as_bytes());
        text.extend_from_slice(b"m");
    }
    text.extend_from_slice(digits.format(seconds).as_bytes());
    text.extend_from_slice(b"s");
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use tollgate_governance::LineRoom;

    use super::*;

    #[test]
    fn a_reset_is_written_in_openai_style_rounded_up_to_the_second() {
        let now = tollgate_core::clock::now();
        let written = |at| {
            let mut text = BytesMut::new();
            until(at, now, &mut text);
            String::from_utf8_lossy(&text).into_owned()
        };
        assert_eq!(written(now + Duration::milliseconds(200)), "1s");
        assert_eq!(written(now + Duration::seconds(59)), "59s");
        assert_eq!(written(now + Duration::seconds(360)), "6m0s");
        assert_eq!(written(now + Duration::seconds(86_352)), "23h59m12s");
        assert_eq!(written(now + Duration::days(400)), "9600h0m0s");
        assert_eq!(written(now - Duration::seconds(3)), "0s", "a window already over resets now");
    }

    #[test]
    fn only_the_kinds_with_a_line_get_headers() {
        let now = tollgate_core::clock::now();
        let mut headers = HeaderMap::new();
        let requests = LineRoom { limit: 5, remaining: 2, resets_at: now + Duration::seconds(90) };
        add(&mut headers, Room { requests: Some(requests), tokens: None }, now);
        assert_eq!(headers.get("x-ratelimit-limit-requests").map(HeaderValue::as_bytes), Some(&b"5"[..]));
        assert_eq!(headers.get("x-ratelimit-remaining-requests").map(HeaderValue::as_bytes), Some(&b"2"[..]));
        assert_eq!(headers.get("x-ratelimit-reset-requests").map(HeaderValue::as_bytes), Some(&b"1m30s"[..]));
        assert!(headers.get("x-ratelimit-limit-tokens").is_none());
    }

    #[test]
    fn both_kinds_get_their_own_three_values() {
        let now = tollgate_core::clock::now();
        let mut headers = HeaderMap::new();
        let requests = LineRoom { limit: 100, remaining: 99, resets_at: now + Duration::seconds(59) };
        let tokens = LineRoom { limit: 40_000, remaining: 12_345, resets_at: now + Duration::seconds(7_322) };
        add(&mut headers, Room { requests: Some(requests), tokens: Some(tokens) }, now);
        let seen: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (name.as_str(), value.to_str().unwrap_or_default())).collect();
        assert_eq!(
            seen,
            [
                ("x-ratelimit-limit-requests", "100"),
                ("x-ratelimit-remaining-requests", "99"),
                ("x-ratelimit-reset-requests", "59s"),
                ("x-ratelimit-limit-tokens", "40000"),
                ("x-ratelimit-remaining-tokens", "12345"),
                ("x-ratelimit-reset-tokens", "2h2m2s"),
            ]
        );
        let mut only_tokens = HeaderMap::new();
        add(&mut only_tokens, Room { requests: None, tokens: Some(tokens) }, now);
        assert_eq!(only_tokens.get("x-ratelimit-remaining-tokens").map(HeaderValue::as_bytes), Some(&b"12345"[..]));
        assert_eq!(only_tokens.len(), 3);
    }
}
