//! The one source of "now": UTC truncated to microseconds, the precision every store keeps, so
//! what a write returns equals what a later read returns.

use chrono::{DateTime, SubsecRound, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
