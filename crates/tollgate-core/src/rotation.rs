//! Automatic rotation of managed keys: the interval (parsed from a day count, a duration or
//! nanoseconds), the schedule's arithmetic, and the port the rotation service reads through.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::ids::ProfileId;
use crate::store_error::StoreError;

/// Shortest allowed rotation interval.
pub const MIN_INTERVAL: Duration = Duration::from_hours(1);
/// Longest allowed rotation interval.
pub const MAX_INTERVAL: Duration = Duration::from_hours(365 * 24);

/// The interval as a client sends it: `"30d"`, `"12h"`, `"1h30m"` or integer nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RotationInterval {
    Nanos(i64),
    Text(String),
}

/// Why an interval was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    #[error("is not a duration (use e.g. \"30d\", \"12h\" or nanoseconds)")]
    Unparsable,
    #[error("must be between 1h and 365d, or \"\"/0 to turn rotation off")]
    OutOfRange,
}

impl RotationInterval {
    /// The interval in nanoseconds; `Ok(0)` means rotation off.
    pub fn to_nanos(&self) -> Result<i64, IntervalError> {
        let duration = match self {
            RotationInterval::Nanos(0) => return Ok(0),
            RotationInterval::Nanos(n) => {
                let n = u64::try_from(*n).map_err(|_| IntervalError::OutOfRange)?;
                Duration::from_nanos(n)
            }
            RotationInterval::Text(text) => {
                let text = text.trim();
                if text.is_empty() || text == "0" {
                    return Ok(0);
                }
                humantime::parse_duration(text).map_err(|_| IntervalError::Unparsable)?
            }
        };
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&duration) {
            return Err(IntervalError::OutOfRange);
        }
        i64::try_from(duration.as_nanos()).map_err(|_| IntervalError::OutOfRange)
    }
}

/// How long a rotated key's previous value keeps working unless configured otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_hours(24);

/// A profile whose rotation round is due: every managed key issued from its copies before
/// `next_rotation_at` gets a new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueProfile {
    pub profile_id: ProfileId,
    /// Nanoseconds, more than 0.
    pub interval: i64,
    pub next_rotation_at: DateTime<Utc>,
}

/// A key to rotate: what the audit names and the hash its rotation is guarded on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueKey {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub value_hash: String,
}

/// One key's rotation as stored: the new value's hash, sealed copy and masked form; the current
/// hash becomes the previous one, which keeps working until `previous_value_expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    pub key_id: String,
    /// The hash of the value being replaced; the write matches nothing if it has changed.
    pub expected_hash: String,
    pub value_hash: String,
    pub value_sealed: String,
    pub value_masked: String,
    pub rotated_at: DateTime<Utc>,
    pub previous_value_expires_at: DateTime<Utc>,
}

/// What the rotation service reads; it writes through `DirectoryStore::apply`.
#[async_trait]
pub trait RotationStore: Send + Sync {
    /// Profiles with rotation on whose `next_rotation_at` is at or before `now`.
    async fn due_profiles(&self, now: DateTime<Utc>) -> Result<Vec<DueProfile>, StoreError>;
    /// Up to `limit` keys issued from copies of `profile` whose current value is older than
    /// `due_at` (rotated, or else created, before it).
    async fn due_keys(&self, profile: ProfileId, due_at: DateTime<Utc>, limit: u32) -> Result<Vec<DueKey>, StoreError>;
}

/// The first rotation after `now` on the schedule that was due at `due` (a server that was down
/// for several intervals rotates once, then keeps the original rhythm).
pub fn next_after(due: DateTime<Utc>, interval_nanos: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    let interval = chrono::Duration::nanoseconds(interval_nanos.max(1));
    let behind = (now - due).num_nanoseconds().unwrap_or(i64::MAX).max(0);
    let steps = behind / interval_nanos.max(1) + 1;
    i32::try_from(steps).ok().and_then(|s| interval.checked_mul(s)).and_then(|d| due.checked_add_signed(d)).unwrap_or(now + interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_rotation_keeps_the_rhythm_and_lies_after_now() {
        let hour = 3_600_000_000_000;
        let due = crate::clock::now();
        assert_eq!(next_after(due, hour, due), due + chrono::Duration::hours(1));
        let late = due + chrono::Duration::minutes(150);
        assert_eq!(next_after(due, hour, late), due + chrono::Duration::hours(3));
    }

    fn text(s: &str) -> RotationInterval {
        RotationInterval::Text(s.to_owned())
    }

    #[test]
    fn day_counts_durations_and_nanoseconds_are_accepted() {
        assert_eq!(text("30d").to_nanos(), Ok(30 * 86_400 * 1_000_000_000));
        assert_eq!(text("12h").to_nanos(), Ok(12 * 3_600 * 1_000_000_000));
        assert_eq!(text("1h30m").to_nanos(), Ok(5_400 * 1_000_000_000));
        assert_eq!(RotationInterval::Nanos(3_600_000_000_000).to_nanos(), Ok(3_600_000_000_000));
    }

    #[test]
    fn empty_and_zero_turn_rotation_off() {
        assert_eq!(text("").to_nanos(), Ok(0));
        assert_eq!(text("0").to_nanos(), Ok(0));
        assert_eq!(RotationInterval::Nanos(0).to_nanos(), Ok(0));
    }

    #[test]
    fn intervals_outside_one_hour_to_a_year_are_refused() {
        assert_eq!(text("59m").to_nanos(), Err(IntervalError::OutOfRange));
        assert_eq!(text("366d").to_nanos(), Err(IntervalError::OutOfRange));
        assert_eq!(RotationInterval::Nanos(-5).to_nanos(), Err(IntervalError::OutOfRange));
        assert_eq!(text("soon").to_nanos(), Err(IntervalError::Unparsable));
    }
}
