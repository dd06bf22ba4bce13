//! Rebuilding counter lines Redis lost (a restart without persistence, `FLUSHALL`, eviction, an
//! expired key): a missing line is set from its stored usage, or from the last value this instance
//! itself saw of it if that is later, before a reservation or settlement touches it — never taken
//! as empty, which would serve a spent budget again from zero.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use hashbrown::HashMap;

use super::{Claim, LineKind, LineValue, RedisCounters, expires_at};
use crate::counters::line_of;

/// How long the last seen value of a line is kept: the usage writer persists within about a
/// second, so stored usage catches up long before; the day covers a database that was away.
const SEEN_KEPT: Duration = Duration::days(1);

/// The last value this instance saw of a line (a settlement's or a sweep's answer), and when.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    window_start: DateTime<Utc>,
    used: u64,
    at: DateTime<Utc>,
}

pub(super) type SeenLines = HashMap<Arc<str>, Seen>;

/// Remembers the new values of charged lines (the later of the kept one and each new one).
pub(super) fn note(seen: &Mutex<SeenLines>, values: &[LineValue], now: DateTime<Utc>) {
    let Ok(mut seen) = seen.lock() else { return };
    for value in values {
        let new = Seen { window_start: value.window_start, used: value.used, at: now };
        match seen.get_mut(&*value.line) {
            Some(kept) if (kept.window_start, kept.used) > (new.window_start, new.used) => kept.at = now,
            Some(kept) => *kept = new,
            None => {
                seen.insert(value.line.clone(), new);
            }
        }
    }
}

/// The later of `value` (window start, used) and the last value seen of `line`: stored usage lags
/// by the charges of about the last second, which this instance may have seen.
pub(super) fn with_seen(seen: &Mutex<SeenLines>, line: &str, value: (DateTime<Utc>, u64)) -> (DateTime<Utc>, u64) {
    let kept = seen.lock().ok().and_then(|seen| seen.get(line).map(|s| (s.window_start, s.used)));
    kept.map_or(value, |kept| kept.max(value))
}

/// Forgets lines not charged for `SEEN_KEPT`.
pub(super) fn forget_old(seen: &Mutex<SeenLines>, now: DateTime<Utc>) {
    if let Ok(mut seen) = seen.lock() {
        seen.retain(|_, kept| now - kept.at < SEEN_KEPT);
    }
}

/// The store's ids of the lines of `claims`: budget ids, and rate-limit ids (a rate limit's token
/// line is `<id>:t`, its request line `<id>:r`).
fn store_ids(claims: &[&Claim]) -> (Vec<String>, Vec<String>) {
    let (mut budgets, mut limits) = (Vec::new(), Vec::new());
    for claim in claims {
        let line = &*claim.line;
        match claim.kind {
            LineKind::Budget => budgets.push(line.to_owned()),
            LineKind::Tokens => limits.push(line.strip_suffix(":t").unwrap_or(line).to_owned()),
            LineKind::Requests => limits.push(line.strip_suffix(":r").unwrap_or(line).to_owned()),
        }
    }
    limits.sort_unstable();
    limits.dedup();
    (budgets, limits)
}

impl RedisCounters {
    /// Sets each missing line of `claims` to the latest of: its stored row, the last value this
    /// instance saw, or empty in the claim's current window (so a line that exists is a line whose
    /// value is known). An instance that finds the line already set by another keeps the larger
    /// value of the same window (`adopt.lua`).
    pub(super) async fn rebuild(&self, claims: &[&Claim], now: DateTime<Utc>) -> Result<(), String> {
        let (budgets, limits) = store_ids(claims);
        let rows = self.store.load_lines(&budgets, &limits).await.map_err(|e| format!("stored usage: {e}"))?;
        let stored: HashMap<String, (DateTime<Utc>, u64)> =
            rows.iter().map(line_of).map(|(line, _, used, window_start)| (line, (window_start, used))).collect();
        let mut restored = 0;
        for claim in claims {
            let current = (claim.window_start(now), 0);
            let stored = stored.get(&*claim.line).copied().map_or(current, |row| row.max(current));
            let (window_start, used) = with_seen(&self.seen, &claim.line, stored);
            if window_start >= current.0 && used > 0 {
                restored += 1;
            }
            self.adopt_line(claim.copy, &claim.line, used, window_start, expires_at(claim, now)).await?;
        }
        if restored > 0 {
            tracing::warn!(restored, lines = claims.len(), "redis had lost counter lines; rebuilt them from stored usage");
        } else {
            tracing::debug!(lines = claims.len(), "counter lines new to redis (or expired) set from stored usage");
        }
        Ok(())
    }
}
