//! Window arithmetic for budgets and rate limits: current window start, next reset, elapsed windows and override cycles.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeDelta, Utc};

use crate::window::{BudgetResetConfig, BudgetResetDuration, RateLimitResetDuration};

/// The length/alignment of a window, unified over both enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
    Quarter { start_month: u8 },
    Year,
}

impl From<RateLimitResetDuration> for Period {
    fn from(duration: RateLimitResetDuration) -> Self {
        match duration {
            RateLimitResetDuration::Hour => Period::Hour,
            RateLimitResetDuration::Day => Period::Day,
            RateLimitResetDuration::Week => Period::Week,
            RateLimitResetDuration::Month => Period::Month,
            RateLimitResetDuration::Year => Period::Year,
        }
    }
}

impl Period {
    /// From a budget line's duration and optional reset config (quarter start month defaults to 1).
    pub fn of_budget(duration: BudgetResetDuration, config: Option<BudgetResetConfig>) -> Period {
        match duration {
            BudgetResetDuration::Hour => Period::Hour,
            BudgetResetDuration::Day => Period::Day,
            BudgetResetDuration::Week => Period::Week,
            BudgetResetDuration::Month => Period::Month,
            BudgetResetDuration::Quarter => Period::Quarter { start_month: config.and_then(|c| c.quarter_start_month).unwrap_or(1) },
            BudgetResetDuration::Year => Period::Year,
        }
    }

    /// Start of the window containing `now`. `anchor` is the lattice origin for rolling windows
    /// (e.g. when the budget line was created); ignored when `calendar_aligned` and the period is day or longer.
    pub fn window_start(self, calendar_aligned: bool, anchor: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_calendar(calendar_aligned) {
            return self.calendar_start(now).unwrap_or(now);
        }
        if now <= anchor {
            return anchor;
        }
        let length = self.rolling_seconds();
        let steps = (now - anchor).num_seconds().div_euclid(length);
        TimeDelta::try_seconds(steps * length).and_then(|offset| anchor.checked_add_signed(offset)).unwrap_or(now)
    }

    /// Start of the window after the one that starts at `start` (the next reset).
    pub fn next_start(self, calendar_aligned: bool, start: DateTime<Utc>) -> DateTime<Utc> {
        let next = if self.is_calendar(calendar_aligned) {
            self.calendar_start(start).and_then(|current| {
                let date = current.date_naive();
                let next = match self {
                    Period::Day => date.checked_add_days(Days::new(1)),
                    Period::Week => date.checked_add_days(Days::new(7)),
                    Period::Month => date.checked_add_months(Months::new(1)),
                    Period::Quarter { .. } => date.checked_add_months(Months::new(3)),
                    Period::Year => date.checked_add_months(Months::new(12)),
                    Period::Hour => None,
                };
                next.map(midnight)
            })
        } else {
            TimeDelta::try_seconds(self.rolling_seconds()).and_then(|length| start.checked_add_signed(length))
        };
        // No representable next boundary: the window never resets.
        next.unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// How many window boundaries lie in (from, to], i.e. windows elapsed since the window starting at `from`.
    pub fn windows_between(self, calendar_aligned: bool, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        if to <= from {
            return 0;
        }
        let count = if self.is_calendar(calendar_aligned) {
            match (self.calendar_start(from), self.calendar_start(to)) {
                (Some(first), Some(last)) => self.calendar_index(last) - self.calendar_index(first),
                _ => 0,
            }
        } else {
            (to - from).num_seconds().div_euclid(self.rolling_seconds())
        };
        u64::try_from(count).unwrap_or(0)
    }

    /// Whether this period follows calendar boundaries (sub-day windows never do).
    fn is_calendar(self, calendar_aligned: bool) -> bool {
        calendar_aligned && self != Period::Hour
    }

    /// Fixed length used by rolling windows.
    fn rolling_seconds(self) -> i64 {
        const HOUR: i64 = 3600;
        const DAY: i64 = 24 * HOUR;
        match self {
            Period::Hour => HOUR,
            Period::Day => DAY,
            Period::Week => 7 * DAY,
            Period::Month => 30 * DAY,
            Period::Quarter { .. } => 90 * DAY,
            Period::Year => 365 * DAY,
        }
    }

    /// Calendar boundary at or before `at`; `None` only when chrono cannot represent it.
    fn calendar_start(self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let date = at.date_naive();
        let start = match self {
            Period::Hour => return None,
            Period::Day => Some(date),
            Period::Week => date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday()))),
            Period::Month => date.with_day(1),
            Period::Quarter { start_month } => {
                // Only the month modulo 3 matters; `+ 2` is `- 1` (to zero-based) without underflow.
                let offset = (u32::from(start_month) + 2) % 3;
                let back = (date.month0() + 3 - offset) % 3;
                date.with_day(1).and_then(|first| first.checked_sub_months(Months::new(back)))
            }
            Period::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1),
        };
        start.map(midnight)
    }

    /// Monotone position of a calendar boundary, so that boundary counts are plain differences.
    fn calendar_index(self, start: DateTime<Utc>) -> i64 {
        let date = start.date_naive();
        let months = i64::from(date.year()) * 12 + i64::from(date.month0());
        match self {
            Period::Hour | Period::Day => i64::from(date.num_days_from_ce()),
            Period::Week => i64::from(date.num_days_from_ce()).div_euclid(7),
            Period::Month => months,
            Period::Quarter { .. } => months.div_euclid(3),
            Period::Year => i64::from(date.year()),
        }
    }
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN).and_utc()
}

/// Remaining cycles of a `cycles` override anchored at `anchor` (a window start), granted for `total` cycles, at `now`.
pub fn override_cycles_remaining(period: Period, calendar_aligned: bool, anchor: DateTime<Utc>, total: u32, now: DateTime<Utc>) -> u32 {
    let elapsed = period.windows_between(calendar_aligned, anchor, now);
    u32::try_from(u64::from(total).saturating_sub(elapsed)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    const ALL_ROLLING: [(Period, i64); 6] = [
        (Period::Hour, 3600),
        (Period::Day, 86_400),
        (Period::Week, 7 * 86_400),
        (Period::Month, 30 * 86_400),
        (Period::Quarter { start_month: 1 }, 90 * 86_400),
        (Period::Year, 365 * 86_400),
    ];

    #[test]
    fn rolling_start_is_latest_lattice_point_for_every_length() {
        let anchor = at("2024-03-10T07:13:00Z");
        for (period, seconds) in ALL_ROLLING {
            let now = anchor + TimeDelta::seconds(2 * seconds + 17);
            assert_eq!(period.window_start(false, anchor, now), anchor + TimeDelta::seconds(2 * seconds), "{period:?}");
        }
    }

    #[test]
    fn rolling_start_on_exact_boundary_is_that_boundary() {
        let anchor = at("2024-03-10T07:13:00Z");
        for (period, seconds) in ALL_ROLLING {
            let boundary = anchor + TimeDelta::seconds(3 * seconds);
            assert_eq!(period.window_start(false, anchor, boundary), boundary, "{period:?}");
            let before = boundary - TimeDelta::seconds(1);
            assert_eq!(period.window_start(false, anchor, before), anchor + TimeDelta::seconds(2 * seconds), "{period:?}");
        }
    }

    #[test]
    fn rolling_start_is_anchor_when_now_precedes_anchor() {
        let anchor = at("2024-03-10T07:13:00Z");
        for (period, _) in ALL_ROLLING {
            assert_eq!(period.window_start(false, anchor, at("2023-01-01T00:00:00Z")), anchor);
        }
    }

    #[test]
    fn rolling_quarter_ignores_start_month() {
        let anchor = at("2024-03-10T07:13:00Z");
        let now = at("2024-07-01T00:00:00Z");
        let expected = anchor + TimeDelta::days(90);
        for start_month in [1, 2, 3, 12] {
            assert_eq!(Period::Quarter { start_month }.window_start(false, anchor, now), expected);
        }
    }

    #[test]
    fn hour_stays_rolling_when_calendar_aligned() {
        let anchor = at("2024-03-10T07:13:00Z");
        let now = at("2024-03-10T09:05:00Z");
        assert_eq!(Period::Hour.window_start(true, anchor, now), at("2024-03-10T08:13:00Z"));
        assert_eq!(Period::Hour.next_start(true, at("2024-03-10T08:13:00Z")), at("2024-03-10T09:13:00Z"));
        assert_eq!(Period::Hour.windows_between(true, anchor, now), 1);
    }

    #[test]
    fn calendar_day_starts_at_utc_midnight() {
        let anchor = at("2020-01-01T05:00:00Z");
        assert_eq!(Period::Day.window_start(true, anchor, at("2024-03-10T23:59:59Z")), at("2024-03-10T00:00:00Z"));
    }

    #[test]
    fn calendar_week_on_sunday_goes_back_to_monday() {
        let anchor = at("2020-01-01T05:00:00Z");
        // 2024-03-10 is a Sunday.
        assert_eq!(Period::Week.window_start(true, anchor, at("2024-03-10T18:00:00Z")), at("2024-03-04T00:00:00Z"));
    }

    #[test]
    fn calendar_week_on_monday_is_that_monday() {
        let anchor = at("2020-01-01T05:00:00Z");
        assert_eq!(Period::Week.window_start(true, anchor, at("2024-03-11T00:00:01Z")), at("2024-03-11T00:00:00Z"));
    }

    #[test]
    fn calendar_month_on_31st_starts_on_1st() {
        let anchor = at("2020-01-01T05:00:00Z");
        assert_eq!(Period::Month.window_start(true, anchor, at("2024-01-31T12:00:00Z")), at("2024-01-01T00:00:00Z"));
        assert_eq!(Period::Month.window_start(true, anchor, at("2024-02-01T00:00:00Z")), at("2024-02-01T00:00:00Z"));
    }

    #[test]
    fn calendar_month_handles_leap_february() {
        let anchor = at("2020-01-01T05:00:00Z");
        assert_eq!(Period::Month.window_start(true, anchor, at("2024-02-29T23:00:00Z")), at("2024-02-01T00:00:00Z"));
        assert_eq!(Period::Month.next_start(true, at("2024-02-01T00:00:00Z")), at("2024-03-01T00:00:00Z"));
    }

    #[test]
    fn calendar_quarter_follows_start_month_modulo_three() {
        let anchor = at("2020-01-01T05:00:00Z");
        let now = at("2024-03-15T10:00:00Z");
        let start = |start_month| Period::Quarter { start_month }.window_start(true, anchor, now);
        assert_eq!(start(1), at("2024-01-01T00:00:00Z"));
        assert_eq!(start(4), at("2024-01-01T00:00:00Z"));
        assert_eq!(start(2), at("2024-02-01T00:00:00Z"));
        assert_eq!(start(12), at("2024-03-01T00:00:00Z"));
    }

    #[test]
    fn calendar_quarter_can_reach_back_into_previous_year() {
        let anchor = at("2020-01-01T05:00:00Z");
        let now = at("2024-01-20T10:00:00Z");
        assert_eq!(Period::Quarter { start_month: 2 }.window_start(true, anchor, now), at("2023-11-01T00:00:00Z"));
        assert_eq!(Period::Quarter { start_month: 12 }.window_start(true, anchor, now), at("2023-12-01T00:00:00Z"));
    }

    #[test]
    fn calendar_year_starts_on_first_of_january() {
        let anchor = at("2020-06-01T05:00:00Z");
        assert_eq!(Period::Year.window_start(true, anchor, at("2024-12-31T23:59:59Z")), at("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn next_start_rolling_adds_fixed_length() {
        let start = at("2024-03-10T07:13:00Z");
        for (period, seconds) in ALL_ROLLING {
            assert_eq!(period.next_start(false, start), start + TimeDelta::seconds(seconds), "{period:?}");
        }
    }

    #[test]
    fn next_start_calendar_moves_to_next_boundary() {
        assert_eq!(Period::Day.next_start(true, at("2024-12-31T00:00:00Z")), at("2025-01-01T00:00:00Z"));
        assert_eq!(Period::Week.next_start(true, at("2024-03-04T00:00:00Z")), at("2024-03-11T00:00:00Z"));
        assert_eq!(Period::Month.next_start(true, at("2024-01-01T00:00:00Z")), at("2024-02-01T00:00:00Z"));
        assert_eq!(Period::Quarter { start_month: 2 }.next_start(true, at("2023-11-01T00:00:00Z")), at("2024-02-01T00:00:00Z"));
        assert_eq!(Period::Year.next_start(true, at("2024-01-01T00:00:00Z")), at("2025-01-01T00:00:00Z"));
    }

    #[test]
    fn windows_between_counts_month_and_year_boundaries() {
        let from = at("2024-11-01T00:00:00Z");
        assert_eq!(Period::Month.windows_between(true, from, at("2024-11-30T23:59:59Z")), 0);
        assert_eq!(Period::Month.windows_between(true, from, at("2024-12-01T00:00:00Z")), 1);
        assert_eq!(Period::Month.windows_between(true, from, at("2025-02-10T00:00:00Z")), 3);
        assert_eq!(Period::Year.windows_between(true, at("2024-01-01T00:00:00Z"), at("2024-12-31T23:59:59Z")), 0);
        assert_eq!(Period::Year.windows_between(true, at("2024-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")), 2);
        assert_eq!(Period::Quarter { start_month: 1 }.windows_between(true, from, at("2025-04-01T00:00:00Z")), 2);
    }

    #[test]
    fn windows_between_counts_rolling_steps_and_never_goes_negative() {
        let from = at("2024-01-31T10:00:00Z");
        assert_eq!(Period::Month.windows_between(false, from, at("2024-03-01T09:59:59Z")), 0);
        assert_eq!(Period::Month.windows_between(false, from, at("2024-03-01T10:00:00Z")), 1);
        assert_eq!(Period::Day.windows_between(false, from, from + TimeDelta::hours(49)), 2);
        assert_eq!(Period::Day.windows_between(false, from, from - TimeDelta::hours(49)), 0);
    }

    #[test]
    fn single_cycle_override_expires_at_next_boundary() {
        let anchor = Period::Month.window_start(true, at("2024-01-01T00:00:00Z"), at("2024-01-20T15:00:00Z"));
        assert_eq!(override_cycles_remaining(Period::Month, true, anchor, 1, at("2024-01-31T23:59:59Z")), 1);
        assert_eq!(override_cycles_remaining(Period::Month, true, anchor, 1, at("2024-02-01T00:00:00Z")), 0);
    }

    #[test]
    fn three_cycle_override_spans_month_ends() {
        let anchor = at("2024-01-01T00:00:00Z");
        let remaining = |now| override_cycles_remaining(Period::Month, true, anchor, 3, at(now));
        assert_eq!(remaining("2024-01-31T12:00:00Z"), 3);
        assert_eq!(remaining("2024-02-29T12:00:00Z"), 2);
        assert_eq!(remaining("2024-03-31T23:59:59Z"), 1);
        assert_eq!(remaining("2024-04-01T00:00:00Z"), 0);
    }

    #[test]
    fn override_remaining_never_drops_below_zero() {
        let anchor = at("2024-01-01T00:00:00Z");
        assert_eq!(override_cycles_remaining(Period::Day, true, anchor, 2, at("2030-01-01T00:00:00Z")), 0);
        assert_eq!(override_cycles_remaining(Period::Hour, false, anchor, 2, at("2024-01-01T05:00:00Z")), 0);
        assert_eq!(override_cycles_remaining(Period::Hour, false, anchor, 0, anchor), 0);
    }

    #[test]
    fn period_conversions_default_quarter_to_january() {
        assert_eq!(Period::of_budget(BudgetResetDuration::Quarter, None), Period::Quarter { start_month: 1 });
        let config = BudgetResetConfig { quarter_start_month: Some(11) };
        assert_eq!(Period::of_budget(BudgetResetDuration::Quarter, Some(config)), Period::Quarter { start_month: 11 });
        assert_eq!(Period::of_budget(BudgetResetDuration::Week, Some(config)), Period::Week);
        assert_eq!(Period::from(RateLimitResetDuration::Month), Period::Month);
    }
}
