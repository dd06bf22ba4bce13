//! The one source of "now": UTC truncated to microseconds, the precision every store keeps, so
//! what a write returns equals what a later read returns.

use chrono::{DateTime, SubsecRound, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `at` at the precision every store keeps.
pub fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}
