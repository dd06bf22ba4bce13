//! Governance's metrics, through the `metrics` facade (the binary installs the recorder): their
//! names and descriptions, the facts a request carries to the usage writer for them, and the
//! tally the writer records after each flush, off the request path.

use std::time::Duration;

use hashbrown::HashMap;
use tollgate_core::usage::{RequestLog, ToolCallLog};

/// Requests governance admitted (one per upstream try, whether or not it was sent), by route,
/// provider, model and outcome; counted from the request log as it is written.
pub const REQUESTS: &str = "tollgate_requests_total";
/// Refusals by governance, by route and rule (`type`).
pub const DENIALS: &str = "tollgate_denials_total";
/// Gateway work before a request's first upstream attempt, by route.
pub const OVERHEAD: &str = "tollgate_gateway_overhead_seconds";
/// From a request's first upstream attempt to the provider's answer (its headers), by provider.
pub const UPSTREAM: &str = "tollgate_upstream_latency_seconds";
/// Tokens billed, by provider, model and direction (`in`: prompt, `out`: output).
pub const TOKENS: &str = "tollgate_tokens_total";
/// Cost billed in micro-dollars, by provider and model.
pub const COST: &str = "tollgate_cost_microdollars_total";
/// MCP tool calls, by client and outcome.
pub const TOOL_CALLS: &str = "tollgate_mcp_tool_calls_total";
/// Reservations this instance holds for requests in flight (set at each scrape).
pub const RESERVATIONS: &str = "tollgate_reservations_held";
/// Log lines, tool-call rows and counter lines waiting for the usage writer (set at each scrape).
pub const QUEUE: &str = "tollgate_usage_writer_queue_depth";
/// How long each usage write to the database took.
pub const FLUSH: &str = "tollgate_usage_writer_flush_seconds";
/// Usage writes that failed (their batch is retried).
pub const FLUSH_FAILURES: &str = "tollgate_usage_writer_flush_failures_total";
/// Snapshot rebuilds, by scope (`full`, or `users` for a partial one).
pub const RELOADS: &str = "tollgate_snapshot_reloads_total";
/// Seconds since the snapshot was last rebuilt (set at each scrape).
pub const SNAPSHOT_AGE: &str = "tollgate_snapshot_age_seconds";
/// Round trips to Redis for a counter script.
pub const REDIS: &str = "tollgate_redis_latency_seconds";
/// Counter scripts Redis did not answer or refused.
pub const REDIS_ERRORS: &str = "tollgate_redis_errors_total";
/// Refusals of callers without a valid key beyond what the request log takes per second.
pub const LOG_DROPPED: &str = "tollgate_refusals_not_logged_total";

/// The model label of a model with no price: callers may name any model a wildcard grant lets
/// through, and such names must not become label values.
pub const OTHER_MODEL: &str = "other";

/// The client label of a tool call that named no client.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// Describes every governance metric to the installed recorder (the exposition's `HELP` lines).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "Governed requests as logged (one per try), by route, provider, model (\"other\" if unpriced) and outcome."
    );
    describe_counter!(DENIALS, "Requests refused by governance, by route and rule.");
    describe_histogram!(OVERHEAD, Unit::Seconds, "Gateway time before a request's first upstream attempt, by route.");
    describe_histogram!(UPSTREAM, Unit::Seconds, "Time from a request's first upstream attempt to the provider's answer, by provider.");
    describe_counter!(TOKENS, "Tokens billed, by provider, model and direction (in: prompt, out: output).");
    describe_counter!(COST, "Cost billed in micro-dollars, by provider and model.");
    describe_counter!(TOOL_CALLS, "MCP tool calls, by client and outcome.");
    describe_gauge!(RESERVATIONS, "Reservations this instance holds for requests in flight.");
    describe_gauge!(QUEUE, "Log lines, tool-call rows and counter lines waiting for the usage writer.");
    describe_histogram!(FLUSH, Unit::Seconds, "Duration of each usage write to the database.");
    describe_counter!(FLUSH_FAILURES, "Usage writes that failed and will be retried.");
    describe_counter!(RELOADS, "Governance snapshot rebuilds, by scope (full or users).");
    describe_gauge!(SNAPSHOT_AGE, Unit::Seconds, "Seconds since the governance snapshot was last rebuilt.");
    describe_histogram!(REDIS, Unit::Seconds, "Round trips to Redis for a counter script.");
    describe_counter!(REDIS_ERRORS, "Counter scripts that Redis did not answer or refused.");
    describe_counter!(
        LOG_DROPPED,
        "Refusals of callers without a valid key counted but not written to the request log (over its per-second cap)."
    );
}

/// Counts a refusal by its rule (`DenialKind::name`); rare next to admitted requests, so the
/// labels are built on the spot.
pub fn denied(route: &'static str, rule: &'static str) {
    metrics::counter!(DENIALS, "route" => route, "type" => rule).increment(1);
}

/// What a request's log line does not hold but its metrics need, carried beside it to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub route: &'static str,
    /// The model has a price, so it is one the configuration or the catalog names.
    pub priced: bool,
    /// Gateway time before the first upstream attempt (none if nothing was sent).
    pub overhead: Option<Duration>,
    /// From the first upstream attempt to the answer's headers (none without an answer).
    pub upstream: Option<Duration>,
    /// Governance refused the request: its line is logged but not counted here (the refusal
    /// was counted as a denial when made, and its provider and model are the caller's text).
    pub denied: bool,
}

/// The outcome label of a logged request's status.
fn outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        499 => "cancelled",
        400..=498 => "rejected",
        _ => "failed",
    }
}

/// One label set of the requests counter, borrowed from the written lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Labels<'a> {
    route: &'static str,
    provider: &'a str,
    model: &'a str,
    outcome: &'static str,
}

#[derive(Debug, Default)]
struct Sums {
    requests: u64,
    tokens_in: u64,
    tokens_out: u64,
    cost_micros: u64,
    overhead: Vec<f64>,
    upstream: Vec<f64>,
}

/// Records what a written batch holds, grouped first so the recorder is asked once per label set
/// rather than once per request.
pub(crate) fn tally(logs: &[RequestLog], facts: &[Facts], calls: &[ToolCallLog]) {
    let mut groups: HashMap<Labels<'_>, Sums> = HashMap::new();
    for (log, facts) in logs.iter().zip(facts).filter(|(_, facts)| !facts.denied) {
        let labels = Labels {
            route: facts.route,
            provider: &log.provider,
            model: if facts.priced { log.model.as_str() } else { OTHER_MODEL },
            outcome: outcome(log.status),
        };
        let sums = groups.entry(labels).or_default();
        sums.requests += 1;
        sums.tokens_in += log.prompt_tokens;
        sums.tokens_out += log.completion_tokens;
        sums.cost_micros += u64::try_from(log.cost.micros()).unwrap_or(0);
        sums.overhead.extend(facts.overhead.map(|d| d.as_secs_f64()));
        sums.upstream.extend(facts.upstream.map(|d| d.as_secs_f64()));
    }
    // The requests counter goes last: a reader that sees a batch's requests sees the rest of it.
    let mut requests = Vec::with_capacity(groups.len());
    for (l, sums) in groups {
        let (provider, model) = (l.provider.to_owned(), l.model.to_owned());
        requests.push((l, sums.requests));
        if sums.tokens_in > 0 {
            metrics::counter!(TOKENS, "provider" => provider.clone(), "model" => model.clone(), "direction" => "in")
                .increment(sums.tokens_in);
        }
        if sums.tokens_out > 0 {
            metrics::counter!(TOKENS, "provider" => provider.clone(), "model" => model.clone(), "direction" => "out")
                .increment(sums.tokens_out);
        }
        if sums.cost_micros > 0 {
            metrics::counter!(COST, "provider" => provider.clone(), "model" => model).increment(sums.cost_micros);
        }
        if !sums.overhead.is_empty() {
            let overhead = metrics::histogram!(OVERHEAD, "route" => l.route);
            sums.overhead.into_iter().for_each(|s| overhead.record(s));
        }
        if !sums.upstream.is_empty() {
            let upstream = metrics::histogram!(UPSTREAM, "provider" => provider);
            sums.upstream.into_iter().for_each(|s| upstream.record(s));
        }
    }
    let mut tools: HashMap<(&str, &str), u64> = HashMap::new();
    for call in calls {
        // A call naming no client is audited with an empty client id.
        let client = if call.client_id.is_empty() { UNKNOWN_CLIENT } else { call.client_id.as_str() };
        *tools.entry((client, call.outcome.as_str())).or_default() += 1;
    }
    for ((client, outcome), n) in tools {
        metrics::counter!(TOOL_CALLS, "client" => client.to_owned(), "outcome" => outcome.to_owned()).increment(n);
    }
    for (l, n) in requests {
        let (provider, model) = (l.provider.to_owned(), l.model.to_owned());
        metrics::counter!(REQUESTS, "route" => l.route, "provider" => provider, "model" => model, "outcome" => l.outcome).increment(n);
    }
}

/// Governance's state as gauges, read when the metrics are scraped (nothing on the request path).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauges {
    pub reservations: usize,
    pub queued: usize,
    pub snapshot_age: Duration,
}

impl Gauges {
    /// Sets the gauges to these values.
    #[expect(clippy::cast_precision_loss, reason = "gauges are floats; counts this large are not exact anywhere")]
    pub fn record(self) {
        metrics::gauge!(RESERVATIONS).set(self.reservations as f64);
        metrics::gauge!(QUEUE).set(self.queued as f64);
        metrics::gauge!(SNAPSHOT_AGE).set(self.snapshot_age.as_secs_f64());
    }
}
