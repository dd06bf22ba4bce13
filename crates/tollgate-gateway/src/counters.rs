//! Budget, token and request counters behind one trait. A request reserves its estimate on every
//! line that applies, all or nothing, and later settles the real amount; the in-memory store does
//! both under one short lock, so concurrent requests can never take the same room twice.

mod redis;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hashbrown::HashMap;
use tollgate_core::windows::Period;

pub use self::redis::RedisCounters;

/// Where a line is set: on the profile, or on the provider config of the requested provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Profile,
    Provider,
}

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
    /// Unique per line: a budget id, or `<rate limit id>:t` / `<rate limit id>:r` (shared, as a
    /// request's claims are copied into its reservation and its line values).
    pub line: Arc<str>,
    pub kind: LineKind,
    /// The cap (for budgets, including an active override).
    pub limit: u64,
    pub period: Period,
    pub calendar_aligned: bool,
    /// Origin of the rolling window lattice (when the line was created).
    pub anchor: DateTime<Utc>,
    /// What this request reserves (estimated cost, estimated tokens, or 1 request).
    pub estimate: u64,
    /// Whose line it is (named in a refusal).
    pub scope: Scope,
    /// The user copy the line belongs to (every line belongs to one copy, and a request's claims
    /// all come from one): a shared store keeps one copy's lines together (one Redis Cluster slot).
    pub copy: i64,
}

impl Claim {
    /// The refusal of this claim on a line holding `taken` (used plus reserved) in the window
    /// that started at `window_start`.
    pub fn denial(&self, taken: u64, window_start: DateTime<Utc>) -> Denial {
        Denial {
            kind: self.kind,
            scope: self.scope,
            used: taken,
            estimate: self.estimate,
            limit: self.limit,
            period: self.period,
            resets_at: self.period.next_start(self.calendar_aligned, window_start),
        }
    }

    /// Start of this line's window at `now`.
    pub fn window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.period.window_start(self.calendar_aligned, self.anchor, now)
    }
}

/// A line that has no room for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: LineKind,
    pub scope: Scope,
    /// Used plus reserved by requests in flight.
    pub used: u64,
    /// What the refused request asked of the line (its estimate).
    pub estimate: u64,
    pub limit: u64,
    pub period: Period,
    /// When the line's window resets.
    pub resets_at: DateTime<Utc>,
}

/// The latest value of a line, for persistence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineValue {
    pub line: Arc<str>,
    pub kind: LineKind,
    pub used: u64,
    pub window_start: DateTime<Utc>,
}

/// Why a reservation was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Lines without room for the request (every one of them).
    Denied(Vec<Denial>),
    /// The counter store could not be asked; the request is refused rather than let through unchecked.
    Unavailable,
}

/// Receives the new values of the lines a settlement charged, for persistence.
pub type Settled = Box<dyn FnOnce(Vec<LineValue>) + Send>;

/// Counter stores: in memory for one instance, or in Redis (`redis`) shared by several.
#[async_trait]
pub trait Counters: Send + Sync + std::fmt::Debug {
    /// Reserves every claim or none.
    async fn reserve(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<u64, Refusal>;
    /// Ends a reservation, charging `actual` per kind (0 releases it), and hands the charged lines'
    /// new values to `done` — or, for a store that keeps its lines in this process, leaves them to
    /// `charged`. Never waits: a store that must do I/O does it in the background.
    fn settle(&self, reservation: u64, actual: Actual, now: DateTime<Utc>, done: Settled);
    /// The lines charged since the last call other than through `settle`, at their current
    /// values (the writer asks at every flush): all charged lines of a store that keeps its lines
    /// in this process; the lines a shared store's sweep charged.
    fn charged(&self) -> Vec<LineValue> {
        Vec::new()
    }
    /// Reservations open now, for the crash journal: the ids of all of them, and the lines (each
    /// at its reserved amount, in its window) of those `wanted` names. A store whose reservations
    /// outlive this process (Redis) has none here: it charges a dead instance's itself.
    fn open_reservations(&self, wanted: &dyn Fn(u64) -> bool) -> (Vec<u64>, Vec<(u64, Vec<LineValue>)>) {
        let _ = wanted;
        (Vec::new(), Vec::new())
    }
    /// Takes a persisted line value if the store has none for the line or holds an older window
    /// (at start, and on reload after a management write zeroed a line). `copy` owns the line
    /// (`Claim::copy`); a store that places lines by copy skips a line whose owner is unknown
    /// (no request can claim it, and a line it lacks is rebuilt when one does).
    async fn adopt(&self, line: &str, copy: Option<i64>, kind: LineKind, used: u64, window_start: DateTime<Utc>) -> Result<(), String>;
    /// Marks this instance's reservations in flight as alive (every minute, before `sweep`), for
    /// a store shared with other instances, whose sweeps would otherwise take them for a dead
    /// instance's.
    async fn refresh(&self, _now: DateTime<Utc>) {}
    /// Ends reservations older than `max_age` (a shared store: those nobody refreshed, charging
    /// their estimates); returns how many.
    async fn sweep(&self, max_age: Duration, now: DateTime<Utc>) -> usize;
    /// Used and reserved of a line (of user copy `copy`) in its current window (for reads and tests).
    async fn peek(&self, line: &str, copy: i64) -> Option<(u64, u64)>;
    /// Waits for settlements still being written (graceful shutdown).
    async fn drain(&self) {}
    /// Whether the store answers, for readiness: memory always does.
    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }
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
    fn reserve_now(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<u64, Refusal> {
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
        for taken in &held {
            let line = &mut state.lines[taken.slot];
            line.reserved = line.reserved.saturating_add(taken.estimate);
        }
        state.next += 1;
        let id = state.next;
        state.held.insert(id, Held { claims: held });
        Ok(id)
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
    async fn reserve(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<u64, Refusal> {
        self.reserve_now(claims, now)
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
pub(crate) mod tests {
    //! The counter contract, run against every store (the Redis store's tests call these too).
    use super::*;

    /// The user copy every contract line belongs to.
    pub const COPY: i64 = 7;

    pub fn budget(line: &str, limit: u64, estimate: u64) -> Claim {
        Claim {
            line: line.into(),
            kind: LineKind::Budget,
            limit,
            period: Period::Day,
            calendar_aligned: true,
            anchor: DateTime::<Utc>::UNIX_EPOCH,
            estimate,
            scope: Scope::Profile,
            copy: COPY,
        }
    }

    /// Settles and waits for the new line values, however the store reports them (with the
    /// settlement, or as charged lines for the writer's next flush).
    pub async fn settle(c: &dyn Counters, id: u64, actual: Actual, now: DateTime<Utc>) -> Vec<LineValue> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        c.settle(id, actual, now, Box::new(move |values| drop(tx.send(values))));
        let mut values = rx.await.unwrap_or_default();
        values.extend(c.charged());
        values
    }

    pub async fn a_request_is_admitted_only_if_its_estimate_fits(c: &dyn Counters, line: &str) {
        let now = tollgate_core::clock::now();
        let first = c.reserve(&[budget(line, 100, 60)], now).await;
        assert!(first.is_ok());
        let second = c.reserve(&[budget(line, 100, 60)], now).await;
        let Err(Refusal::Denied(denials)) = second else { panic!("expected a denial, got {second:?}") };
        assert_eq!(denials[0].used, 60, "in-flight reservations count");
        let values = settle(c, first.unwrap_or_default(), Actual { cost_micros: 30, ..Actual::default() }, now).await;
        assert_eq!(values.iter().map(|v| v.used).collect::<Vec<_>>(), vec![30], "the charged line's new value is reported");
        assert_eq!(c.peek(line, COPY).await, Some((30, 0)));
        assert!(c.reserve(&[budget(line, 100, 60)], now).await.is_ok());
    }

    pub async fn all_lines_or_none_are_reserved(c: &dyn Counters, line: &str) {
        let now = tollgate_core::clock::now();
        let tight = budget(&format!("{line}-tight"), 5, 10);
        assert!(c.reserve(&[budget(line, 100, 10), tight], now).await.is_err());
        assert_eq!(c.peek(line, COPY).await.unwrap_or_default(), (0, 0), "the line with room was not touched");
    }

    pub async fn usage_of_a_past_window_does_not_count(c: &dyn Counters, line: &str) {
        let now = tollgate_core::clock::now();
        assert!(c.adopt(line, Some(COPY), LineKind::Budget, 100, now - Duration::days(2)).await.is_ok());
        assert!(c.reserve(&[budget(line, 100, 50)], now).await.is_ok(), "yesterday's spend is gone");
    }

    pub async fn a_newer_persisted_window_replaces_the_counter(c: &dyn Counters, line: &str) {
        let now = tollgate_core::clock::now();
        let id = c.reserve(&[budget(line, 100, 10)], now).await.unwrap_or_default();
        settle(c, id, Actual { cost_micros: 80, ..Actual::default() }, now).await;
        assert!(c.adopt(line, Some(COPY), LineKind::Budget, 5, now - Duration::days(1)).await.is_ok());
        assert_eq!(c.peek(line, COPY).await, Some((80, 0)), "an older value never overwrites a newer one");
        assert!(c.adopt(line, Some(COPY), LineKind::Budget, 0, now).await.is_ok());
        assert_eq!(c.peek(line, COPY).await, Some((0, 0)), "a reset (a window starting now) zeroes the line");
        assert!(c.reserve(&[budget(line, 100, 90)], now).await.is_ok(), "the room is back at once");
    }

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
        let id = c.reserve(&[hourly(10, at(0, 0))], at(10, 30)).await.unwrap_or_default();
        settle(&c, id, Actual { cost_micros: 60, ..Actual::default() }, at(10, 31)).await;
        assert!(c.reserve(&[hourly(50, at(0, 0))], at(10, 59)).await.is_err(), "the same window: 60 + 50 > 100");
        assert!(c.reserve(&[hourly(50, at(0, 0))], at(11, 0)).await.is_ok(), "the next window starts empty");
        assert_eq!(c.peek("b1", COPY).await, Some((0, 50)));
        let id = c.reserve(&[hourly(0, at(0, 0))], at(11, 10)).await.unwrap_or_default();
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
            let id = c.reserve(&[budget("b1", 1_000, 50), budget("b2", 1_000, 50)], now).await.unwrap_or_default();
            c.settle_now(id, Actual { cost_micros: cost, ..Actual::default() }, now);
        }
        let released = c.reserve(&[budget("b3", 1_000, 50)], now).await.unwrap_or_default();
        c.settle_now(released, Actual::default(), now);
        let mut charged: Vec<(String, u64)> = c.charged().into_iter().map(|v| (v.line.to_string(), v.used)).collect();
        charged.sort();
        assert_eq!(charged, vec![("b1".to_owned(), 60), ("b2".to_owned(), 60)], "each line once, at its latest value");
        assert!(c.charged().is_empty(), "nothing is charged twice");
        let id = c.reserve(&[budget("b1", 1_000, 50)], now).await.unwrap_or_default();
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
        let id = c.reserve(&[budget("b1", 100, 90)], now).await.unwrap_or_default();
        assert_eq!(c.sweep(Duration::minutes(30), now + Duration::hours(3)).await, 0, "nothing is released by age");
        assert_eq!(c.peek("b1", COPY).await, Some((0, 90)), "the room stays held while the request lives");
        settle(&c, id, Actual { cost_micros: 70, ..Actual::default() }, now + Duration::hours(3)).await;
        assert_eq!(c.peek("b1", COPY).await, Some((70, 0)), "the late settlement is charged");
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
