//! A reservation's life after admission: the `Held` guard that settles it exactly once, with the
//! real usage or, on drop, with what may have been consumed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tollgate_core::money::Money;
use tollgate_core::usage::{RequestLog, content_text};

use crate::writer::LogLine;

use crate::authorize::Estimate;
use crate::counters::{Actual, Claim, Room};
use crate::governor::Governor;
use crate::pricing::Price;
use crate::usage::Usage;

/// A reservation in flight. It is settled exactly once: by one of the ways a call ends
/// (`answered`, `upstream_failed`, `unread`, `release`), or — when the request errors, times out
/// or its task is cancelled — by `Drop`, which charges the whole reservation once the request
/// may have reached the provider and releases it otherwise.
pub struct Held {
    governor: Governor,
    reservation: Option<u64>,
    price: Option<Price>,
    /// What was reserved, and the output tokens in it: charged whole (and logged as prompt and
    /// output) when a sent request's answer cannot be read.
    estimate: Estimate,
    max_out: u64,
    /// The request-limit lines the request was admitted on (estimate 1 each): a retry of the
    /// call takes one more request on each, as every attempt upstream counts.
    request_lines: Vec<Claim>,
    /// When the request arrived (the surface's `Ask::arrived`; admission by default).
    arrived: Instant,
    /// Nanoseconds from `arrived` to the first upstream attempt, plus one (0: not sent yet): the
    /// request may have reached the provider once this is set.
    sent_after: AtomicU64,
    /// Nanoseconds from `arrived` to the provider's answer (its headers), plus one (0: none).
    answered_after: AtomicU64,
    started: Instant,
    /// The request's log line (or a tool call's audit row), completed and handed to the writer
    /// when the reservation settles.
    log: Option<LogLine>,
    /// The room the rate limits had left once the reservation was made (the rate-limit headers).
    room: Room,
    /// The governing copy's policy keeps the prompt and the answer in the log (`log_content`).
    keeps_content: bool,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("reservation", &self.reservation).finish_non_exhaustive()
    }
}

impl Held {
    pub(crate) fn new(
        governor: Governor,
        reservation: u64,
        price: Option<Price>,
        (estimate, max_out): (Estimate, u64),
        request_lines: Vec<Claim>,
        log: LogLine,
    ) -> Held {
        governor.0.held.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        Held {
            governor,
            reservation: Some(reservation),
            price,
            estimate,
            max_out,
            request_lines,
            arrived: now,
            sent_after: AtomicU64::new(0),
            answered_after: AtomicU64::new(0),
            started: now,
            log: Some(log),
            room: Room::default(),
            keeps_content: false,
        }
    }

    /// Marks the request as one whose prompt and answer the log keeps.
    pub(crate) fn keeping_content(mut self, keep: bool) -> Held {
        self.keeps_content = keep;
        self
    }

    /// Keeps the request as the client sent it in its log line (only when `keeps_content`).
    pub fn keep_request(&mut self, body: &[u8]) {
        if let (true, Some(LogLine::Request(log, _))) = (self.keeps_content, &mut self.log) {
            log.request_content = Some(content_text(body));
        }
    }

    /// Keeps the answer as the client received it (a stream's text) in its log line (only when
    /// `keeps_content`).
    pub fn keep_answer(&mut self, body: &[u8]) {
        if let (true, Some(LogLine::Request(log, _))) = (self.keeps_content, &mut self.log) {
            log.response_content = Some(content_text(body));
        }
    }

    /// The estimate's cost reserved, in micro-dollars.
    pub fn estimate_micros(&self) -> u64 {
        self.estimate.cost_micros
    }

    /// The model the request was admitted for (empty for a tool call).
    pub fn model(&self) -> &str {
        match &self.log {
            Some(LogLine::Request(log, _)) => &log.model,
            _ => "",
        }
    }

    /// Keeps the room the reservation left on the rate limits.
    pub(crate) fn with_room(mut self, room: Room) -> Held {
        self.room = room;
        self
    }

    /// The room the request's rate limits had left once its reservation was made: per kind, the
    /// line with the least (`None` where no line of the kind applies).
    pub fn room(&self) -> Room {
        self.room
    }

    /// The provider answered: charges the tokens it reports (or the caller's stand-in for them)
    /// and one request, and logs the request.
    pub fn answered(mut self, usage: Usage, status: u16) {
        self.settle(Some(usage), status);
    }

    /// The call was tried and failed without a bill (an error answer, or no connection): one
    /// request on the request limits, nothing on budgets or token limits.
    pub fn upstream_failed(mut self, status: u16) {
        self.settle(None, status);
    }

    /// The request reached the provider but its answer could not be read (a timeout, a broken
    /// answer): the provider may have billed up to what was reserved, so all of it is charged.
    pub fn unread(mut self, status: u16) {
        self.charge_reservation(status);
    }

    /// The request never left the gateway: the reservation is released, nothing is charged.
    pub fn release(mut self, status: u16) {
        self.end(Actual::default(), Usage::default(), Money::ZERO, status);
    }

    /// Sets when the request arrived, for the gateway-overhead metric.
    pub(crate) fn arrived_at(mut self, arrived: Instant) -> Held {
        self.arrived = arrived;
        self
    }

    /// Nanoseconds since the request arrived, plus one (so that 0 can mean "not yet").
    fn since_arrival(&self) -> u64 {
        u64::try_from(self.arrived.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Notes that the request is about to go out (it may reach the provider from here on); the
    /// first attempt ends the gateway's overhead.
    pub fn mark_sent(&self) {
        let _ = self.sent_after.compare_exchange(0, self.since_arrival(), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Notes that the provider answered (its status and headers arrived).
    pub fn mark_answered(&self) {
        self.answered_after.store(self.since_arrival(), Ordering::Relaxed);
    }

    /// Takes one more request on every request limit the request was admitted on, for a retry;
    /// false when a limit has no room left (the retry must not be made).
    pub async fn count_retry(&self) -> bool {
        if self.request_lines.is_empty() {
            return true;
        }
        let now = tollgate_core::clock::now();
        let Ok(reserved) = self.governor.0.counters.reserve(&self.request_lines, now).await else { return false };
        let id = reserved.id;
        let writer = self.governor.0.writer.clone();
        let taken = Actual { requests: 1, ..Actual::default() };
        self.governor.0.counters.settle(id, taken, now, Box::new(move |values| writer.record(values, None)));
        true
    }

    fn settle(&mut self, usage: Option<Usage>, status: u16) {
        let used = usage.unwrap_or_default();
        let cost = self.price.map_or(Money::ZERO, |p| p.cost_of(&used));
        let actual = match usage {
            Some(_) => Actual { cost_micros: u64::try_from(cost.micros()).unwrap_or(0), tokens: used.tokens(), requests: 1 },
            None => Actual { requests: 1, ..Actual::default() },
        };
        self.end(actual, used, cost, status);
    }

    fn charge_reservation(&mut self, status: u16) {
        let Estimate { cost_micros, tokens } = self.estimate;
        let actual = Actual { cost_micros, tokens, requests: 1 };
        let cost = Money::from_micros(i64::try_from(cost_micros).unwrap_or(i64::MAX)).unwrap_or(Money::ZERO);
        let output = self.max_out.min(tokens);
        self.end(actual, Usage::plain(tokens - output, output), cost, status);
    }

    fn end(&mut self, actual: Actual, used: Usage, cost: Money, status: u16) {
        let Some(id) = self.reservation.take() else { return };
        self.governor.0.held.fetch_sub(1, Ordering::Relaxed);
        let latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let log = self.log.take().map(|log| match log {
            LogLine::Request(log, mut facts) => {
                let (sent, answered) = (self.sent_after.load(Ordering::Relaxed), self.answered_after.load(Ordering::Relaxed));
                facts.overhead = (sent > 0).then(|| Duration::from_nanos(sent - 1));
                facts.upstream = (sent > 0 && answered >= sent).then(|| Duration::from_nanos(answered - sent));
                let log = RequestLog { prompt_tokens: used.prompt(), completion_tokens: used.output, cost, status, latency_ms, ..log };
                LogLine::Request(log, facts)
            }
            LogLine::ToolCall(mut call) => {
                call.latency_ms = latency_ms;
                call.cost = cost;
                if status == 499 {
                    "abandoned".clone_into(&mut call.outcome);
                }
                LogLine::ToolCall(call)
            }
        });
        let writer = self.governor.0.writer.clone();
        self.governor.0.counters.settle(id, actual, tollgate_core::clock::now(), Box::new(move |values| writer.record(values, log)));
    }

    /// A tool call ended: `ran` when the tool may have run upstream (an answer, also an error
    /// answer from the tool, or a call lost after it was sent), which charges its price; otherwise
    /// (the upstream refused the call without running it) one request and nothing on budgets.
    /// `outcome` and `result_bytes` complete the call's audit row.
    pub fn tool_finished(mut self, ran: bool, outcome: &str, result_bytes: u64) {
        if let Some(LogLine::ToolCall(call)) = &mut self.log {
            outcome.clone_into(&mut call.outcome);
            call.result_bytes = result_bytes;
        }
        if ran {
            self.charge_reservation(200);
        } else {
            self.settle(None, 200);
        }
    }

    /// A tool call that never reached its upstream (not connected): released, and its audit row
    /// records `outcome`.
    pub fn tool_not_sent(mut self, outcome: &str) {
        if let Some(LogLine::ToolCall(call)) = &mut self.log {
            outcome.clone_into(&mut call.outcome);
        }
        self.end(Actual::default(), Usage::default(), Money::ZERO, 503);
    }

    /// Settles what a stream consumed when it ends or is abandoned.
    pub fn settle_stream(&mut self, usage: Usage, status: u16) {
        self.settle(Some(usage), status);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.reservation.is_none() {
            return;
        }
        if self.sent_after.load(Ordering::Relaxed) > 0 {
            self.charge_reservation(499);
        } else {
            self.end(Actual::default(), Usage::default(), Money::ZERO, 499);
        }
    }
}
