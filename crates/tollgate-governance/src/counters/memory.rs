//! Counters in this process, for one instance: lines in a vector found by name once per
//! reservation, reserved and settled under one short lock.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hashbrown::HashMap;
use tollgate_core::windows::Period;

use super::{Actual, Claim, Counters, LineKind, LineValue, Reading, Refusal, Reserved, Room, Settled};

#[derive(Debug, Clone)]
struct Line {
    /// The line's name, shared with the slot table; reported with the line's value when charged.
    name: Arc<str>,
    kind: LineKind,
    /// Charged since the writer last took the charged lines (listed in `State::charged`).
    charged: bool,
    window_start: DateTime<Utc>,
    used: u64,
    reserved: u64,
    /// The window lattice the line was last placed on (period, calendar alignment, anchor) and
    /// when that window ends: until then a claim on the same lattice needs no date arithmetic.
    lattice: (Period, bool, DateTime<Utc>),
    until: DateTime<Utc>,
}

impl Line {
    fn new(name: Arc<str>, kind: LineKind, window_start: DateTime<Utc>, used: u64) -> Line {
        let lattice = (Period::Day, false, DateTime::<Utc>::MIN_UTC);
        Line { name, kind, charged: false, window_start, used, reserved: 0, lattice, until: DateTime::<Utc>::MIN_UTC }
    }

    /// Moves the line into its window on `lattice` at `now` (usage of a past window is dropped).
    fn roll(&mut self, lattice: Lattice, now: DateTime<Utc>) {
        if now < self.until && self.lattice == lattice {
            return;
        }
        let (period, aligned, anchor) = lattice;
        let start = period.window_start(aligned, anchor, now);
        if self.window_start < start {
            self.window_start = start;
            self.used = 0;
        }
        self.lattice = lattice;
        self.until = period.next_start(aligned, start);
    }
}

/// A claim's windows: period, calendar alignment, anchor.
type Lattice = (Period, bool, DateTime<Utc>);

/// A claim as its reservation keeps it: the slot of its line and what settling needs. It holds
/// nothing shared, so a request counts no line name up and down on its way through.
#[derive(Debug, Clone, Copy)]
struct Taken {
    slot: usize,
    kind: LineKind,
    estimate: u64,
    lattice: Lattice,
}

#[derive(Debug)]
struct Held {
    claims: Vec<Taken>,
}

/// Lines live in a vector and are found by name once per reservation; the reservation keeps
/// their slots, so settling it hashes nothing. Lines are never removed, so slots stay valid.
#[derive(Debug, Default)]
struct State {
    slots: HashMap<Arc<str>, usize>,
    lines: Vec<Line>,
    held: HashMap<u64, Held>,
    next: u64,
    /// Slots of the lines charged since the writer last took them.
    charged: Vec<usize>,
}

impl State {
    /// The slot of `name`, made (empty, in a window starting at `start`) if it is new.
    fn slot(&mut self, name: &Arc<str>, kind: LineKind, start: impl FnOnce() -> DateTime<Utc>) -> usize {
        if let Some(slot) = self.slots.get(&**name) {
            return *slot;
        }
        self.lines.push(Line::new(name.clone(), kind, start(), 0));
        self.slots.insert(name.clone(), self.lines.len() - 1);
        self.lines.len() - 1
    }
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

impl MemoryCounters {
    fn reserve_now(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<Reserved, Refusal> {
        let Ok(mut state) = self.state.lock() else { return Err(Refusal::Unavailable) };
        let mut denials = Vec::new();
        let mut held = Vec::with_capacity(claims.len());
        for claim in claims {
            let slot = state.slot(&claim.line, claim.kind, || claim.window_start(now));
            let line = &mut state.lines[slot];
            let lattice = (claim.period, claim.calendar_aligned, claim.anchor);
            line.roll(lattice, now);
            let taken = line.used.saturating_add(line.reserved);
            if taken.saturating_add(claim.estimate) > claim.limit {
                denials.push(claim.denial(taken, line.window_start));
            }
            held.push(Taken { slot, kind: claim.kind, estimate: claim.estimate, lattice });
        }
        if !denials.is_empty() {
            return Err(Refusal::Denied(denials));
        }
        let mut room = Room::default();
        for (taken, claim) in held.iter().zip(claims) {
            let line = &mut state.lines[taken.slot];
            line.reserved = line.reserved.saturating_add(taken.estimate);
            if taken.kind != LineKind::Budget {
                room.offer(claim, line.used.saturating_add(line.reserved), line.window_start);
            }
        }
        state.next += 1;
        let id = state.next;
        state.held.insert(id, Held { claims: held });
        Ok(Reserved { id, room })
    }

    /// Charges `actual` and releases the rest; charged lines are marked for the writer, which
    /// reads their values at its next flush (no value travels with each request).
    fn settle_now(&self, reservation: u64, actual: Actual, now: DateTime<Utc>) {
        let Ok(mut state) = self.state.lock() else { return };
        let Some(held) = state.held.remove(&reservation) else { return };
        for taken in held.claims {
            let line = &mut state.lines[taken.slot];
            line.roll(taken.lattice, now);
            line.reserved = line.reserved.saturating_sub(taken.estimate);
            let charge = actual.of(taken.kind);
            line.used = line.used.saturating_add(charge);
            if charge > 0 && !line.charged {
                line.charged = true;
                state.charged.push(taken.slot);
            }
        }
    }
}

#[async_trait]
impl Counters for MemoryCounters {
    async fn reserve(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<Reserved, Refusal> {
        self.reserve_now(claims, now)
    }

    async fn read(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<Vec<Reading>, Refusal> {
        let state = self.state.lock().map_err(|_| Refusal::Unavailable)?;
        Ok(claims
            .iter()
            .map(|claim| {
                let stored = state.slots.get(&*claim.line).map(|slot| &state.lines[*slot]);
                Reading::of(stored.map(|l| (l.window_start, l.used, l.reserved)), claim, now)
            })
            .collect())
    }

    fn settle(&self, reservation: u64, actual: Actual, now: DateTime<Utc>, done: Settled) {
        self.settle_now(reservation, actual, now);
        done(Vec::new());
    }

    fn charged(&self) -> Vec<LineValue> {
        let Ok(mut state) = self.state.lock() else { return Vec::new() };
        let State { lines, charged, .. } = &mut *state;
        charged
            .drain(..)
            .map(|slot| {
                let line = &mut lines[slot];
                line.charged = false;
                LineValue { line: Arc::clone(&line.name), kind: line.kind, used: line.used, window_start: line.window_start }
            })
            .collect()
    }

    fn open_reservations(&self, wanted: &dyn Fn(u64) -> bool) -> (Vec<u64>, Vec<(u64, Vec<LineValue>)>) {
        let Ok(state) = self.state.lock() else { return (Vec::new(), Vec::new()) };
        let ids: Vec<u64> = state.held.keys().copied().collect();
        let lines = ids
            .iter()
            .filter(|id| wanted(**id))
            .filter_map(|id| {
                let held = state.held.get(id)?;
                let lines = held
                    .claims
                    .iter()
                    .map(|taken| {
                        let line = &state.lines[taken.slot];
                        LineValue { line: Arc::clone(&line.name), kind: taken.kind, used: taken.estimate, window_start: line.window_start }
                    })
                    .collect();
                Some((*id, lines))
            })
            .collect();
        (ids, lines)
    }

    async fn adopt(&self, line: &str, _copy: Option<i64>, kind: LineKind, used: u64, window_start: DateTime<Utc>) -> Result<(), String> {
        let mut state = self.state.lock().map_err(|_| "counter lock poisoned".to_owned())?;
        let State { slots, lines, .. } = &mut *state;
        let Some(slot) = slots.get(line) else {
            let name: Arc<str> = Arc::from(line);
            lines.push(Line::new(name.clone(), kind, window_start, used));
            slots.insert(name, lines.len() - 1);
            return Ok(());
        };
        let kept = &mut lines[*slot];
        if kept.window_start < window_start {
            (kept.window_start, kept.used) = (window_start, used);
        }
        Ok(())
    }

    /// Releases nothing: every reservation here belongs to a `Held` guard of this process,
    /// which settles it on every path (answer, error, hang-up, cancellation, panic), however long
    /// the request runs. Releasing one by age freed the room of a long stream still running.
    async fn sweep(&self, _max_age: Duration, _now: DateTime<Utc>) -> usize {
        0
    }

    async fn peek(&self, line: &str, _copy: i64) -> Option<(u64, u64)> {
        let state = self.state.lock().ok()?;
        state.slots.get(line).map(|slot| (state.lines[*slot].used, state.lines[*slot].reserved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::tests::*;

    #[tokio::test]
    async fn memory_a_line_moves_on_when_its_window_ends_or_its_window_changes() {
        let c = MemoryCounters::new();
        let at = |hh: u32, mm: u32| {
            DateTime::<Utc>::from_naive_utc_and_offset(
                chrono::NaiveDate::from_ymd_opt(2026, 1, 1).and_then(|d| d.and_hms_opt(hh, mm, 0)).unwrap_or_default(),
                Utc,
            )
        };
        let hourly = |estimate: u64, anchor: DateTime<Utc>| Claim {
            period: Period::Hour,
            calendar_aligned: false,
            anchor,
            ..budget("b1", 100, estimate)
        };
        let id = c.reserve(&[hourly(10, at(0, 0))], at(10, 30)).await.unwrap_or_default().id;
        settle(&c, id, Actual { cost_micros: 60, ..Actual::default() }, at(10, 31)).await;
        assert!(c.reserve(&[hourly(50, at(0, 0))], at(10, 59)).await.is_err(), "the same window: 60 + 50 > 100");
        assert!(c.reserve(&[hourly(50, at(0, 0))], at(11, 0)).await.is_ok(), "the next window starts empty");
        assert_eq!(c.peek("b1", COPY).await, Some((0, 50)));
        let id = c.reserve(&[hourly(0, at(0, 0))], at(11, 10)).await.unwrap_or_default().id;
        settle(&c, id, Actual { cost_micros: 40, ..Actual::default() }, at(11, 10)).await;
        // A budget reset moves the anchor: the window starting at 11:20 replaces the one that
        // started at 11:00, though that one has not ended yet.
        assert!(c.reserve(&[hourly(10, at(11, 20))], at(11, 25)).await.is_ok());
        assert_eq!(c.peek("b1", COPY).await, Some((0, 60)), "the old window's 40 used are gone, reservations stay");
    }

    /// The writer reads a memory line's value at its flush: once per line however many requests
    /// charged it, at its latest value, and never for a reservation released without a charge.
    #[tokio::test]
    async fn memory_charged_lines_are_reported_once_at_their_latest_value() {
        let c = MemoryCounters::new();
        let now = tollgate_core::clock::now();
        for cost in [10, 20, 30] {
            let id = c.reserve(&[budget("b1", 1_000, 50), budget("b2", 1_000, 50)], now).await.unwrap_or_default().id;
            c.settle_now(id, Actual { cost_micros: cost, ..Actual::default() }, now);
        }
        let released = c.reserve(&[budget("b3", 1_000, 50)], now).await.unwrap_or_default().id;
        c.settle_now(released, Actual::default(), now);
        let mut charged: Vec<(String, u64)> = c.charged().into_iter().map(|v| (v.line.to_string(), v.used)).collect();
        charged.sort();
        assert_eq!(charged, vec![("b1".to_owned(), 60), ("b2".to_owned(), 60)], "each line once, at its latest value");
        assert!(c.charged().is_empty(), "nothing is charged twice");
        let id = c.reserve(&[budget("b1", 1_000, 50)], now).await.unwrap_or_default().id;
        c.settle_now(id, Actual { cost_micros: 5, ..Actual::default() }, now);
        assert_eq!(c.charged().into_iter().map(|v| v.used).collect::<Vec<_>>(), vec![65], "charged again after a flush");
    }

    #[tokio::test]
    async fn memory_a_request_is_admitted_only_if_its_estimate_fits() {
        a_request_is_admitted_only_if_its_estimate_fits(&MemoryCounters::new(), "b1").await;
    }

    #[tokio::test]
    async fn memory_all_lines_or_none_are_reserved() {
        all_lines_or_none_are_reserved(&MemoryCounters::new(), "b1").await;
    }

    /// A stream may run for hours: its reservation stays, and its settlement charges in full.
    #[tokio::test]
    async fn memory_a_long_request_keeps_its_reservation_and_its_settle_charges() {
        let c = MemoryCounters::new();
        let now = tollgate_core::clock::now();
        let id = c.reserve(&[budget("b1", 100, 90)], now).await.unwrap_or_default().id;
        assert_eq!(c.sweep(Duration::minutes(30), now + Duration::hours(3)).await, 0, "nothing is released by age");
        assert_eq!(c.peek("b1", COPY).await, Some((0, 90)), "the room stays held while the request lives");
        settle(&c, id, Actual { cost_micros: 70, ..Actual::default() }, now + Duration::hours(3)).await;
        assert_eq!(c.peek("b1", COPY).await, Some((70, 0)), "the late settlement is charged");
    }

    #[tokio::test]
    async fn memory_a_read_counts_only_the_current_window_and_changes_nothing() {
        a_read_counts_only_the_current_window_and_changes_nothing(&MemoryCounters::new(), "b1").await;
    }

    #[tokio::test]
    async fn memory_a_reservation_reports_the_tightest_rate_line_of_each_kind() {
        a_reservation_reports_the_tightest_rate_line_of_each_kind(&MemoryCounters::new(), "rl").await;
    }

    #[tokio::test]
    async fn memory_usage_of_a_past_window_does_not_count() {
        usage_of_a_past_window_does_not_count(&MemoryCounters::new(), "b1").await;
    }

    #[tokio::test]
    async fn memory_a_newer_persisted_window_replaces_the_counter() {
        a_newer_persisted_window_replaces_the_counter(&MemoryCounters::new(), "b1").await;
    }
}
