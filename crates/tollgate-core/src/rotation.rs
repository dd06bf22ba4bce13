//! The automatic-rotation interval: parsed once from a day count, a duration or nanoseconds.

use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;

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

#[cfg(test)]
mod tests {
    use super::*;

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
