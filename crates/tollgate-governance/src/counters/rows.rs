//! Counter lines and stored usage rows, each way: a line's value as the row it is persisted in,
//! and a stored row as the line it fills (a rate limit's rows fill `<id>:t` and `<id>:r`).

use tollgate_core::money::Money;
use tollgate_core::usage::UsageRow;

use super::{LineKind, LineValue};

/// The stored row of a line's value.
pub fn row(value: &LineValue) -> UsageRow {
    let id = value.line.trim_end_matches(":t").trim_end_matches(":r").to_owned();
    match value.kind {
        LineKind::Budget => UsageRow::Budget {
            id,
            used: Money::from_micros(i64::try_from(value.used).unwrap_or(i64::MAX)).unwrap_or(Money::ZERO),
            window_start: value.window_start,
        },
        LineKind::Tokens => UsageRow::Tokens { id, used: value.used, window_start: value.window_start },
        LineKind::Requests => UsageRow::Requests { id, used: value.used, window_start: value.window_start },
    }
}

/// The counter line name of a persisted row.
pub fn line_of(row: &UsageRow) -> (String, LineKind, u64, chrono::DateTime<chrono::Utc>) {
    match row {
        UsageRow::Budget { id, used, window_start } => {
            (id.clone(), LineKind::Budget, u64::try_from(used.micros()).unwrap_or(0), *window_start)
        }
        UsageRow::Tokens { id, used, window_start } => (format!("{id}:t"), LineKind::Tokens, *used, *window_start),
        UsageRow::Requests { id, used, window_start } => (format!("{id}:r"), LineKind::Requests, *used, *window_start),
    }
}
