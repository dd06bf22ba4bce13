//! The process's `tracing` subscriber: log lines to stderr (filtered by `RUST_LOG`, else the `log`
//! setting) and, when `[traces]` names an endpoint, Tollgate's spans exported over OTLP/HTTP
//! (protobuf) by the OpenTelemetry SDK's batch thread. Installed once per process — by the binary
//! before anything else, or by the first server a test builds with tracing on — and flushed when a
//! server stops.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::traces_config::TracesConfig;

/// The span exporter's provider, once installed (`None`: tracing is off in this process).
static PIPELINE: OnceLock<Option<SdkTracerProvider>> = OnceLock::new();

/// Installs the subscriber, unless this process already has one from an earlier call: the first
/// call's settings hold for the whole process, as with the metrics recorder. With tracing off the
/// subscriber is the plain log writer it always was, so a request pays nothing for traces.
pub fn install(log: &str, config: &TracesConfig) -> Result<(), String> {
    let mut failed = None;
    PIPELINE.get_or_init(|| {
        build(log, config).unwrap_or_else(|e| {
            failed = Some(e);
            None
        })
    });
    failed.map_or(Ok(()), Err)
}

fn build(log: &str, config: &TracesConfig) -> Result<Option<SdkTracerProvider>, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log));
    // Colour codes only for a terminal: in a file or a log collector they are noise.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let Some(endpoint) = &config.endpoint else {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours).try_init();
        return Ok(None);
    };
    // The exporter's HTTP client (reqwest 0.13, as rmcp's) takes the process's rustls provider.
    tollgate_mcp::install_tls_provider();
    // The blocking client, called from the batch processor's own thread: an export never runs on
    // a request worker.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| format!("traces: the OTLP exporter cannot be built: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio))))
        .with_resource(Resource::builder().with_service_name(config.service_name.clone()).build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // Only Tollgate's own spans: no log event becomes a span event (an error's text is the log's),
    // and no dependency's spans add to the per-request work.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("tollgate"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(filter_fn(|meta| meta.is_span() && meta.target().starts_with("tollgate")).with_max_level_hint(LevelFilter::DEBUG));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colours).with_filter(filter);
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|e| format!("traces: the process already has a tracing subscriber: {e}"))?;
    Ok(Some(provider))
}

/// Whether spans are being exported in this process.
pub fn exporting() -> bool {
    matches!(PIPELINE.get(), Some(Some(_)))
}

/// Sends the spans still waiting in the batch and waits until the receiver took them (or the
/// exporter gave up): called by a stopping server after its last request. Runs on the blocking
/// pool, as the SDK blocks while it flushes.
pub async fn flush() {
    let Some(Some(provider)) = PIPELINE.get() else { return };
    let provider = provider.clone();
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    if let Ok(Err(e)) = flushed {
        tracing::warn!(error = %e, "spans waiting to be exported at shutdown could not be sent");
    }
}
