//! OpenAI-style rate-limit headers on an admitted request's answer, from the room its reservation
//! left (`Held::room`, worked out by the reservation itself, so no second counter read): per
//! kind, the applying line with the least room; absent where no line of the kind applies.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use tollgate_governance::{LineRoom, Room};

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

/// Adds the headers of the kinds `room` has a line for.
pub(crate) fn add(headers: &mut HeaderMap, room: Room, now: DateTime<Utc>) {
    if let Some(line) = room.requests {
        trio(headers, line, now, [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS]);
    }
    if let Some(line) = room.tokens {
        trio(headers, line, now, [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS]);
    }
}

fn trio(headers: &mut HeaderMap, line: LineRoom, now: DateTime<Utc>, [limit, remaining, reset]: [HeaderName; 3]) {
    headers.insert(limit, HeaderValue::from(line.limit));
    headers.insert(remaining, HeaderValue::from(line.remaining));
    if let Ok(value) = HeaderValue::from_str(&until(line.resets_at, now)) {
        headers.insert(reset, value);
    }
}

/// The time until `at`, in whole seconds rounded up, written as OpenAI writes it: `59s`,
/// `6m0s`, `23h59m12s`.
fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let millis = (at - now).num_milliseconds().max(0);
    let seconds = (millis + 999) / 1000;
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn a_reset_is_written_in_openai_style_rounded_up_to_the_second() {
        let now = tollgate_core::clock::now();
        assert_eq!(until(now + Duration::milliseconds(200), now), "1s");
        assert_eq!(until(now + Duration::seconds(59), now), "59s");
        assert_eq!(until(now + Duration::seconds(360), now), "6m0s");
        assert_eq!(until(now + Duration::seconds(86_352), now), "23h59m12s");
        assert_eq!(until(now - Duration::seconds(3), now), "0s", "a window already over resets now");
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
}
