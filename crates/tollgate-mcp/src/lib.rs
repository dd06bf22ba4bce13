//! Tollgate's MCP surface: it keeps the upstream MCP clients connected (`upstream`, through the
//! official Rust SDK `rmcp`), serves `/mcp` and `/mcp/{slug}` to callers holding a virtual key,
//! and asks governance — never the inference surface — who the caller is and whether a call may
//! run (`tollgate-governance`).
//!
//! A request goes: admission reads the key and computes the caller's grant once (`admission`,
//! `grant`; refusals are HTTP answers in the Bifrost envelope, `error`) → the body is read and a
//! plain `tools/call` answered in place (`direct`), any other message handed to rmcp, which calls
//! the server (`server`) → `tools/list` shows the granted tools of connected
//! clients; `tools/call` is admitted by governance (request limit, tool price on budgets), called
//! upstream and settled, with an audit row either way (`call`).

mod admission;
mod call;
mod direct;
mod error;
mod grant;
mod rest;
mod runtime;
mod server;
mod upstream;

/// Installs ring as the process's rustls provider, once, before an HTTP client of reqwest 0.13
/// (rmcp's transport, the OTLP exporter) is built: that version takes the process default and
/// panics without one (decision 247). Later calls do nothing.
pub fn install_tls_provider() {
    #[expect(deprecated, reason = "ring is the one provider built in (no C toolchain beyond cc); it lacks post-quantum key exchange")]
    let ring = rustls::crypto::ring::default_provider();
    let _ = ring.install_default();
}

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, post};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tollgate_core::mcp::McpCatalog;
use tollgate_governance::Governor;

pub use call::Caller;
pub use error::Refusal;
pub use grant::{Grant, Tools};
pub use upstream::{Link, State, Status, Upstreams};

/// Settings of the MCP surface.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// Longest wait for one tool call's answer.
    pub call_timeout: Duration,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings { call_timeout: Duration::from_mins(1) }
    }
}

/// The MCP surface, shared by every request.
#[derive(Debug, Clone)]
pub struct McpSurface(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    governor: Governor,
    upstreams: Arc<Upstreams>,
    settings: McpSettings,
    /// Ends the rmcp service's work when the server stops.
    stop: CancellationToken,
}

impl McpSurface {
    /// A surface over `upstreams`, which governance's reload hook keeps current
    /// (`Upstreams::on_reload`) and which exists before the governor does.
    pub fn new(governor: Governor, upstreams: Arc<Upstreams>, settings: McpSettings) -> McpSurface {
        McpSurface(Arc::new(Inner { governor, upstreams, settings, stop: CancellationToken::new() }))
    }

    /// Installs MCP clients and Virtual MCPs directly (tests and tools; the server installs
    /// what each governance reload reads): changed clients reconnect, removed ones are dropped,
    /// the rest keep their connection.
    pub fn install(&self, catalog: McpCatalog) {
        self.0.upstreams.install(catalog);
    }

    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.0.upstreams
    }

    /// Stops every upstream connection and child process.
    pub fn shutdown(&self) {
        self.0.stop.cancel();
        self.0.upstreams.shutdown();
    }
}

/// The largest MCP request body: a JSON-RPC message or a REST tool call (arguments included).
pub const MAX_MCP_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The MCP routes: `/mcp` and `/mcp/{slug}` (streamable HTTP, answered as JSON; notifications
/// get 202; `GET` is 405, as no server-initiated stream is offered), and the REST execution
/// route `/v1/mcp/tool/execute`; every one admitted by the caller's virtual key first.
pub fn router(surface: McpSurface) -> Router {
    let gate = server::Gate(surface.clone());
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // Every request is authenticated by its virtual key, so the Host check that protects
        // unauthenticated local servers from DNS rebinding has nothing to add here.
        .disable_allowed_hosts()
        .with_cancellation_token(surface.0.stop.child_token());
    let rmcp = StreamableHttpService::new(move || Ok(gate.clone()), Arc::new(NeverSessionManager::default()), config);
    let front = direct::Front { surface: surface.clone(), rmcp };
    let rest = Router::new()
        .route("/v1/mcp/tool/execute", post(rest::execute))
        .layer(DefaultBodyLimit::max(MAX_MCP_BODY_BYTES))
        .with_state(surface.clone());
    Router::new()
        .route("/mcp", any(direct::serve))
        .with_state(front.clone())
        .merge(rest)
        .route_layer(from_fn_with_state(surface.clone(), admission::admit))
        .merge(
            Router::new()
                .route("/mcp/{slug}", any(direct::serve))
                .with_state(front)
                .route_layer(from_fn_with_state(surface, admission::admit_slug)),
        )
}
