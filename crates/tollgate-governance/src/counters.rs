//! Budget, token and request counters behind one trait. A request reserves its estimate on every
//! line that applies, all or nothing, and later settles the real amount; the in-memory store does
//! both under one short lock, so concurrent requests can never take the same room twice.

mod memory;
mod redis;
mod rows;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use tollgate_core::windows::Period;

pub use self::memory::MemoryCounters;
pub use self::redis::RedisCounters;
pub use self::rows::{line_of, row};

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
    pub fn denial(&self, taken: u64, window_start: DateTime<Utc>) -> Shortfall {
        Shortfall {
            line: self.line.clone(),
            kind: self.kind,
            scope: self.scope,
            used: taken,
            estimate: self.estimate,
            limit: self.limit,
            period: self.period,
            resets_at: self.resets_at(window_start),
        }
    }

    /// When the line's window that started at `window_start` ends.
    pub fn resets_at(&self, window_start: DateTime<Utc>) -> DateTime<Utc> {
        self.period.next_start(self.calendar_aligned, window_start)
    }

    /// Start of this line's window at `now`.
    pub fn window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.period.window_start(self.calendar_aligned, self.anchor, now)
    }
}

/// A line that has no room for the request, with its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// The counter line: a budget id, or `<rate limit id>:t` / `:r`.
    pub line: Arc<str>,
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

/// A reservation made: its id (to settle it), and the room its rate limits have left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserved {
    pub id: u64,
    pub room: Room,
}

/// Per rate-limit kind, the line of a reservation with the least room left once the reservation
/// is held (what the rate-limit headers show); `None` when no line of that kind applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Room {
    pub requests: Option<LineRoom>,
    pub tokens: Option<LineRoom>,
}

/// One rate line's limit, what is left of it, and when its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRoom {
    pub limit: u64,
    pub remaining: u64,
    pub resets_at: DateTime<Utc>,
}

impl Room {
    /// Offers a line of `claim` holding `taken` (used plus reserved, the new reservation
    /// included) in the window that started at `window_start`; kept if it has less room than the
    /// line of its kind kept so far. The reset is worked out only for a line that is kept.
    pub fn offer(&mut self, claim: &Claim, taken: u64, window_start: DateTime<Utc>) {
        let kept = match claim.kind {
            LineKind::Requests => &mut self.requests,
            LineKind::Tokens => &mut self.tokens,
            LineKind::Budget => return,
        };
        let remaining = claim.limit.saturating_sub(taken);
        if kept.is_none_or(|k| remaining < k.remaining) {
            *kept = Some(LineRoom { limit: claim.limit, remaining, resets_at: claim.resets_at(window_start) });
        }
    }
}

/// A line as a request would find it now, read without changing it: used in the current window
/// (nothing when the stored window has passed), reserved by requests in flight, and the window's
/// start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub used: u64,
    pub reserved: u64,
    pub window_start: DateTime<Utc>,
}

impl Reading {
    /// What `claim` finds at `now` on a line stored as (window start, used, reserved), or absent:
    /// the same rule as a reservation's, so a read and a reservation agree.
    pub fn of(stored: Option<(DateTime<Utc>, u64, u64)>, claim: &Claim, now: DateTime<Utc>) -> Reading {
        let start = claim.window_start(now);
        match stored {
            None => Reading { used: 0, reserved: 0, window_start: start },
            Some((window, _, reserved)) if window < start => Reading { used: 0, reserved, window_start: start },
            Some((window, used, reserved)) => Reading { used, reserved, window_start: window },
        }
    }

    /// Used plus reserved.
    pub fn taken(&self) -> u64 {
        self.used.saturating_add(self.reserved)
    }
}

/// Why a reservation was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Lines without room for the request (every one of them).
    Denied(Vec<Shortfall>),
    /// The counter store could not be asked; the request is refused rather than let through unchecked.
    Unavailable,
}

/// Receives the new values of the lines a settlement charged, for persistence.
pub type Settled = Box<dyn FnOnce(Vec<LineValue>) + Send>;

/// Counter stores: in memory for one instance, or in Redis (`redis`) shared by several.
#[async_trait]
pub trait Counters: Send + Sync + std::fmt::Debug {
    /// Reserves every claim or none; says how much room the rate lines have left.
    async fn reserve(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<Reserved, Refusal>;
    /// Reads the lines of `claims` as a reservation at `now` would find them (`Reading::of`),
    /// changing nothing: for explanations and the quota, never on the request path.
    async fn read(&self, claims: &[Claim], now: DateTime<Utc>) -> Result<Vec<Reading>, Refusal>;
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
    /// Used and reserved of a line (of user copy `copy`) as stored, whatever its window (for
    /// tests; `read` is window-aware).
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
        let values = settle(c, first.unwrap_or_default().id, Actual { cost_micros: 30, ..Actual::default() }, now).await;
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
        let id = c.reserve(&[budget(line, 100, 10)], now).await.unwrap_or_default().id;
        settle(c, id, Actual { cost_micros: 80, ..Actual::default() }, now).await;
        assert!(c.adopt(line, Some(COPY), LineKind::Budget, 5, now - Duration::days(1)).await.is_ok());
        assert_eq!(c.peek(line, COPY).await, Some((80, 0)), "an older value never overwrites a newer one");
        assert!(c.adopt(line, Some(COPY), LineKind::Budget, 0, now).await.is_ok());
        assert_eq!(c.peek(line, COPY).await, Some((0, 0)), "a reset (a window starting now) zeroes the line");
        assert!(c.reserve(&[budget(line, 100, 90)], now).await.is_ok(), "the room is back at once");
    }

    pub fn rate(line: &str, kind: LineKind, limit: u64, estimate: u64) -> Claim {
        Claim { kind, period: Period::Hour, calendar_aligned: true, ..budget(line, limit, estimate) }
    }

    pub async fn a_read_counts_only_the_current_window_and_changes_nothing(c: &dyn Counters, line: &str) {
        let now = tollgate_core::clock::now();
        let claim = budget(line, 1_000, 10);
        let today = claim.window_start(now);
        let fresh = Reading { used: 0, reserved: 0, window_start: today };
        assert_eq!(c.read(std::slice::from_ref(&claim), now).await, Ok(vec![fresh]), "a line never charged reads empty");
        assert!(c.adopt(line, Some(COPY), LineKind::Budget, 400, now - Duration::days(2)).await.is_ok());
        assert_eq!(c.read(std::slice::from_ref(&claim), now).await, Ok(vec![fresh]), "a past window's usage does not count");
        let id = c.reserve(std::slice::from_ref(&claim), now).await.unwrap_or_default().id;
        settle(c, id, Actual { cost_micros: 30, ..Actual::default() }, now).await;
        let held = c.reserve(std::slice::from_ref(&claim), now).await.unwrap_or_default().id;
        let read = Reading { used: 30, reserved: 10, window_start: today };
        assert_eq!(c.read(std::slice::from_ref(&claim), now).await, Ok(vec![read]));
        assert_eq!(c.read(std::slice::from_ref(&claim), now).await, Ok(vec![read]), "reading took nothing");
        assert_eq!(c.peek(line, COPY).await, Some((30, 10)));
        let tomorrow = now + Duration::days(1);
        let later = Reading { used: 0, reserved: 10, window_start: claim.window_start(tomorrow) };
        assert_eq!(
            c.read(std::slice::from_ref(&claim), tomorrow).await,
            Ok(vec![later]),
            "once the window turns, only reservations remain"
        );
        settle(c, held, Actual::default(), now).await;
    }

    pub async fn a_reservation_reports_the_tightest_rate_line_of_each_kind(c: &dyn Counters, line: &str) {
        let now = tollgate_core::clock::now();
        let (wide, tight) =
            (rate(&format!("{line}-a:r"), LineKind::Requests, 5, 1), rate(&format!("{line}-b:r"), LineKind::Requests, 3, 1));
        let tokens = rate(&format!("{line}-a:t"), LineKind::Tokens, 1_000, 120);
        let claims = [wide, tight.clone(), tokens.clone(), budget(&format!("{line}-budget"), 100, 10)];
        let first = c.reserve(&claims, now).await.unwrap_or_default();
        let resets_at = tight.resets_at(tight.window_start(now));
        assert_eq!(first.room.requests, Some(LineRoom { limit: 3, remaining: 2, resets_at }), "the line with least room left");
        assert_eq!(first.room.tokens, Some(LineRoom { limit: 1_000, remaining: 880, resets_at }));
        let second = c.reserve(&claims, now).await.unwrap_or_default();
        assert_eq!(second.room.requests.map(|r| r.remaining), Some(1), "the first request, still in flight, counts");
        let bare = c.reserve(&[budget(&format!("{line}-budget"), 100, 10)], now).await.unwrap_or_default();
        assert_eq!(bare.room, Room::default(), "no rate line, no room to report");
        for id in [first.id, second.id, bare.id] {
            settle(c, id, Actual::default(), now).await;
        }
    }
}
