//! The metrics recorder: installed once per process (libraries only record through the `metrics`
//! facade), every metric described, histogram buckets chosen, and the exposition rendered for
//! `/metrics` with the gauges that are read rather than recorded brought up to date first.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tollgate_admin::Render;
use tollgate_governance::Governor;
use tollgate_governance::meters;

/// Streamed answers being relayed now (set at each scrape from the inference surface's count).
pub const STREAMS_OPEN: &str = "tollgate_streams_open";

/// Buckets of the gateway's own time: tens of microseconds to a quarter second.
const OVERHEAD_BUCKETS: [f64; 12] = [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];
/// Buckets of calls out (providers, Redis, the database): a millisecond to two minutes.
const CALL_BUCKETS: [f64; 14] = [0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0];

/// How often recorded histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The process's recorder, installed on first use. Every server in the process shares it: the
/// metrics describe the process (tests that read counters run one server per process).
pub fn recorder() -> Result<PrometheusHandle, String> {
    HANDLE.get_or_init(install).clone()
}

fn install() -> Result<PrometheusHandle, String> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(meters::OVERHEAD.to_owned()), &OVERHEAD_BUCKETS)
        .and_then(|b| b.set_buckets(&CALL_BUCKETS))
        .map_err(|e| format!("metrics buckets: {e}"))?;
    let handle = builder.install_recorder().map_err(|e| format!("metrics recorder: {e}"))?;
    meters::describe();
    metrics::describe_gauge!(STREAMS_OPEN, "Streamed answers being relayed now.");
    Ok(handle)
}

/// What `/metrics` renders: the gauges read from governance and the inference surface, set now,
/// then the whole exposition.
pub fn render(handle: PrometheusHandle, governor: Governor) -> Render {
    std::sync::Arc::new(move || {
        governor.gauges().record();
        #[expect(clippy::cast_precision_loss, reason = "a gauge is a float; stream counts are small")]
        let streams = tollgate_gateway::streams_open() as f64;
        metrics::gauge!(STREAMS_OPEN).set(streams);
        handle.render()
    })
}

/// Folds recorded histogram samples into their buckets every `UPKEEP_EVERY`, so memory stays
/// bounded between scrapes; ends when the returned task is aborted.
pub fn upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}
