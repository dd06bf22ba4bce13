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
    let mut digits = itoa::Buffer::new();
    for (name, value) in [(limit, line.limit), (remaining, line.remaining)] {
        if let Ok(value) = HeaderValue::from_str(digits.format(value)) {
            headers.insert(name, value);
        }
    }
    let mut text = [0; 40];
    if let Ok(value) = HeaderValue::from_bytes(until(line.resets_at, now, &mut text)) {
        headers.insert(reset, value);
    }
}

/// The time until `at`, in whole seconds rounded up, written as OpenAI writes it (`59s`,
/// `6m0s`, `23h59m12s`) into `text` without the formatting machinery (this runs per request).
fn until(at: DateTime<Utc>, now: DateTime<Utc>, text: &mut [u8; 40]) -> &[u8] {
    let millis = u64::try_from((at - now).num_milliseconds()).unwrap_or(0);
    let seconds = millis.div_ceil(1000);
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut digits = itoa::Buffer::new();
    let mut len = 0;
    let mut push = |number: u64, unit: u8| {
        for byte in digits.format(number).bytes().chain(std::iter::once(unit)) {
            text[len] = byte;
            len += 1;
        }
    };
    if hours > 0 {
        push(hours, b'h');
    }
    if hours > 0 || minutes > 0 {
        push(minutes, b'm');
    }
    push(seconds, b's');
    &text[..len]
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn a_reset_is_written_in_openai_style_rounded_up_to_the_second() {
        let now = tollgate_core::clock::now();
        let written = |at| {
            let mut text = [0; 40];
            String::from_utf8_lossy(until(at, now, &mut text)).into_owned()
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
}
