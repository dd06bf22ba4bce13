//! Budget, token and request counters behind one trait. A request reserves its estimate on every
//! line that applies, all or nothing, and later settles the real amount; the in-memory store does
//! both under one short lock, so concurrent requests can never take the same room twice.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use tollgate_core::windows::Period;

/// What a line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// Micro-dollars.
    Budget,
    Tokens,
    Requests,
}

/// One line a request must fit into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Unique per line: a budget id, or `<rate limit id>:t` / `<rate limit id>:r`.
    pub line: String,
    pub kind: LineKind,
    /// The cap (for budgets, including an active override).
    pub limit: u64,
    pub period: Period,
    pub calendar_aligned: bool,
    /// Origin of the rolling window lattice (when the line was created).
    pub anchor: DateTime<Utc>,
    /// What this request reserves (estimated cost, estimated tokens, or 1 request).
    pub estimate: u64,
    /// How the line is named in a refusal (`profile budget`, `provider 'openai' rate limit`, …).
    pub label: String,
}

/// A line that has no room for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: LineKind,
    pub label: String,
    /// Used plus reserved by requests in flight.
    pub used: u64,
    pub limit: u64,
    pub period: Period,
    /// When the line's window resets.
    pub resets_at: DateTime<Utc>,
}

/// The latest value of a line, for persistence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineValue {
    pub line: String,
    pub kind: LineKind,
    pub used: u64,
    pub window_start: DateTime<Utc>,
}

/// Counter stores: in memory for one instance (Redis for several is a planned implementation).
pub trait Counters: Send + Sync {
    /// Reserves every claim or none. Refusals list every line without room.
    fn reserve(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<u64, Vec<Denial>>;
    /// Ends a reservation, charging `actual` per kind (0 releases it). Returns the new line values.
    fn settle(&self, reservation: u64, actual: &Actual, now: DateTime<Utc>) -> Vec<LineValue>;
    /// Seeds a line from persisted usage (at start).
    fn seed(&self, line: &str, kind: LineKind, used: u64, window_start: DateTime<Utc>);
    /// Releases reservations older than `max_age`; returns how many.
    fn sweep(&self, max_age: Duration, now: DateTime<Utc>) -> usize;
    /// Used and reserved of a line in its current window (for reads and tests).
    fn peek(&self, line: &str) -> Option<(u64, u64)>;
}

/// What a finished request really consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actual {
    pub cost_micros: u64,
    pub tokens: u64,
    pub requests: u64,
}

impl Actual {
    fn of(self, kind: LineKind) -> u64 {
        match kind {
            LineKind::Budget => self.cost_micros,
            LineKind::Tokens => self.tokens,
            LineKind::Requests => self.requests,
        }
    }
}

#[derive(Debug, Clone)]
struct Line {
    window_start: DateTime<Utc>,
    used: u64,
    reserved: u64,
}

#[derive(Debug)]
struct Held {
    at: DateTime<Utc>,
    claims: Vec<Claim>,
}

#[derive(Debug, Default)]
struct State {
    lines: HashMap<String, Line>,
    held: HashMap<u64, Held>,
    next: u64,
}

/// Counters in this process.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    state: Mutex<State>,
}

impl MemoryCounters {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The line, moved into the window that contains `now` (usage of a past window is dropped).
fn current<'a>(lines: &'a mut HashMap<String, Line>, claim: &Claim, now: DateTime<Utc>) -> &'a mut Line {
    let start = claim.period.window_start(claim.calendar_aligned, claim.anchor, now);
    let line = lines.entry(claim.line.clone()).or_insert(Line { window_start: start, used: 0, reserved: 0 });
    if line.window_start < start {
        line.window_start = start;
        line.used = 0;
    }
    line
}

impl Counters for MemoryCounters {
    fn reserve(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<u64, Vec<Denial>> {
        let Ok(mut state) = self.state.lock() else { return Err(Vec::new()) };
        let mut denials = Vec::new();
        for claim in claims {
            let line = current(&mut state.lines, claim, now);
            let taken = line.used.saturating_add(line.reserved);
            if taken.saturating_add(claim.estimate) > claim.limit {
                let resets_at = claim.period.next_start(claim.calendar_aligned, line.window_start);
                denials.push(Denial {
                    kind: claim.kind,
                    label: claim.label.clone(),
                    used: taken,
                    limit: claim.limit,
                    period: claim.period,
                    resets_at,
                });
            }
        }
        if !denials.is_empty() {
            return Err(denials);
        }
        for claim in claims {
            let line = current(&mut state.lines, claim, now);
            line.reserved = line.reserved.saturating_add(claim.estimate);
        }
        state.next += 1;
        let id = state.next;
        state.held.insert(id, Held { at: now, claims: claims.to_vec() });
        Ok(id)
    }

    fn settle(&self, reservation: u64, actual: &Actual, now: DateTime<Utc>) -> Vec<LineValue> {
        let Ok(mut state) = self.state.lock() else { return Vec::new() };
        let Some(held) = state.held.remove(&reservation) else { return Vec::new() };
        let mut values = Vec::with_capacity(held.claims.len());
        for claim in &held.claims {
            let line = current(&mut state.lines, claim, now);
            line.reserved = line.reserved.saturating_sub(claim.estimate);
            let charge = actual.of(claim.kind);
            line.used = line.used.saturating_add(charge);
            if charge > 0 {
                values.push(LineValue { line: claim.line.clone(), kind: claim.kind, used: line.used, window_start: line.window_start });
            }
        }
        values
    }

    fn seed(&self, line: &str, kind: LineKind, used: u64, window_start: DateTime<Utc>) {
        let _ = kind;
        if let Ok(mut state) = self.state.lock() {
            state.lines.insert(line.to_owned(), Line { window_start, used, reserved: 0 });
        }
    }

    fn sweep(&self, max_age: Duration, now: DateTime<Utc>) -> usize {
        let stale: Vec<u64> = match self.state.lock() {
            Ok(state) => state.held.iter().filter(|(_, h)| now - h.at > max_age).map(|(id, _)| *id).collect(),
            Err(_) => return 0,
        };
        for id in &stale {
            self.settle(*id, &Actual::default(), now);
        }
        stale.len()
    }

    fn peek(&self, line: &str) -> Option<(u64, u64)> {
        self.state.lock().ok()?.lines.get(line).map(|l| (l.used, l.reserved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: u64, estimate: u64) -> Claim {
        Claim {
            line: "b1".into(),
            kind: LineKind::Budget,
            limit,
            period: Period::Day,
            calendar_aligned: true,
            anchor: DateTime::<Utc>::UNIX_EPOCH,
            estimate,
            label: "profile budget".into(),
        }
    }

    #[test]
    fn a_request_is_admitted_only_if_its_estimate_fits() {
        let c = MemoryCounters::new();
        let now = tollgate_core::clock::now();
        let first = c.reserve(&[budget(100, 60)], now);
        assert!(first.is_ok());
        let second = c.reserve(&[budget(100, 60)], now);
        assert_eq!(second.err().map(|d| d[0].used), Some(60), "in-flight reservations count");
        c.settle(first.unwrap_or_default(), &Actual { cost_micros: 30, ..Actual::default() }, now);
        assert_eq!(c.peek("b1"), Some((30, 0)));
        assert!(c.reserve(&[budget(100, 60)], now).is_ok());
    }

    #[test]
    fn all_lines_or_none_are_reserved() {
        let c = MemoryCounters::new();
        let now = tollgate_core::clock::now();
        let mut tight = budget(5, 10);
        tight.line = "b2".into();
        assert!(c.reserve(&[budget(100, 10), tight], now).is_err());
        assert_eq!(c.peek("b1"), Some((0, 0)), "the line with room was not touched");
    }

    #[test]
    fn stale_reservations_are_swept() {
        let c = MemoryCounters::new();
        let now = tollgate_core::clock::now();
        assert!(c.reserve(&[budget(100, 90)], now).is_ok());
        assert_eq!(c.sweep(Duration::minutes(10), now + Duration::minutes(11)), 1);
        assert_eq!(c.peek("b1"), Some((0, 0)));
    }

    #[test]
    fn usage_of_a_past_window_does_not_count() {
        let c = MemoryCounters::new();
        let now = tollgate_core::clock::now();
        c.seed("b1", LineKind::Budget, 100, now - Duration::days(2));
        assert!(c.reserve(&[budget(100, 50)], now).is_ok(), "yesterday's spend is gone");
    }
}
