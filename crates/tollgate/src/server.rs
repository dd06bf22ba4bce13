//! Start-up and shutdown: connect and migrate the store, bootstrap the admin credential, apply
//! the policy the configuration declares, bind the listener (port 0 works), then serve until the
//! shutdown signal and drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tollgate_admin::AdminState;
use tollgate_core::mcp_clients::{McpRules, open_catalog};
use tollgate_core::ports::Store;
use tollgate_core::services::auth::{AdminBootstrap, AdminSource, AuthService};
use tollgate_core::services::mcp::McpService;
use tollgate_core::services::models::{DeclaredProvider, ModelService, ModelSources};
use tollgate_core::services::rotation::RotationService;
use tollgate_core::usage::UsageStore;
use tollgate_core::vkeys::Sealer;
use tollgate_gateway::{Gateway, GatewaySettings, GatewayTasks, ManagedProviders};
use tollgate_governance::counters::{Counters, MemoryCounters, RedisCounters};
use tollgate_governance::pricing::Pricing;
use tollgate_governance::{Governor, GovernorSettings, GovernorTasks, OpenUsageStore};
use tollgate_mcp::{McpSettings, McpSurface, Upstreams};
use tollgate_store::SqlStore;

use crate::alerts::AlertsTask;
use crate::config::Settings;
use crate::rotation::RotationTask;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(String),
    #[error("encryption key: {0}")]
    Secrets(String),
    #[error("gateway: {0}")]
    Gateway(String),
    /// A declared role, access profile, attachment or user could not be applied; names the entry.
    #[error("declared policy: {0}")]
    Declared(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A server that is bound and ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AdminState,
    store: SqlStore,
    bootstrap: AdminBootstrap,
    gateway: Gateway,
    mcp: McpSurface,
    tasks: (GatewayTasks, GovernorTasks),
    limits: crate::serve::ConnectionLimits,
    /// Rotates managed keys on their profiles' schedule while the server runs.
    rotation: RotationService,
    rotation_every: std::time::Duration,
    /// The process's metrics recorder, kept tidy while the server runs.
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Budget alerts, fed by the usage writer's flushes; running from `build` until `run` ends.
    alerts: AlertsTask,
    /// Spans are exported: the stack records each request's route on its span.
    traced: bool,
}

/// What `start_gateway` starts: governance and the two surfaces that ask it.
struct Started {
    governor: Governor,
    gateway: Gateway,
    mcp: McpSurface,
    tasks: (GatewayTasks, GovernorTasks),
    /// The budget lines each usage flush wrote, for budget alerts.
    flushed: tokio::sync::mpsc::Receiver<Vec<tollgate_governance::counters::LineValue>>,
}

/// Flushes whose budget lines may wait for the alert task (a flush runs at most twice a second).
const FLUSHES_QUEUED: usize = 1024;

/// Starts governance (snapshot loaded, counters rebuilt from stored usage, the usage writer and
/// the timers running), the inference surface and the MCP surface over it.
async fn start_gateway(store: &SqlStore, settings: &Settings, sealer: &Sealer) -> Result<Started, StartError> {
    let config = &settings.gateway;
    let pricing = Pricing::new(config.prices.clone(), config.unpriced).map_err(StartError::Gateway)?;
    let usage: Arc<dyn UsageStore> = Arc::new(store.clone());
    let counters: Arc<dyn Counters> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisCounters::connect(url.expose(), &config.redis_key_prefix, usage.clone())
                .await
                .map_err(|e| StartError::Gateway(format!("usage counters: {}", redact_secret(&e, url.expose()))))?,
        ),
        None => Arc::new(MemoryCounters::new()),
    };
    // The usage writer gets a pool of its own, opened on its own thread (decision 89).
    let url = settings.database_url.clone();
    let open_writer_store: OpenUsageStore = Box::new(move || {
        let own = SqlStore::for_usage_writer(&url).map_err(|e| format!("usage writer's database pool: {e}"))?;
        Ok(Arc::new(own) as Arc<dyn UsageStore>)
    });
    // The API-managed providers are rebuilt from the same read as governance's snapshot.
    let managed = Arc::new(ManagedProviders::new(sealer.clone(), config.rules.clone()));
    // So are the MCP clients and Virtual MCPs (their secrets opened with the same sealer).
    let upstreams = Arc::new(Upstreams::default());
    let mcp_sealer = sealer.clone();
    let mcp_catalog = upstreams.on_reload(move |data| open_catalog(&data.mcp_clients, &data.virtual_mcps, &mcp_sealer));
    let on_reload = vec![managed.on_reload(), mcp_catalog];
    let (flush_tap, flushed) = tokio::sync::mpsc::channel(FLUSHES_QUEUED);
    let governance = GovernorSettings { pricing, log_retention_days: config.log_retention_days, on_reload, flush_tap: Some(flush_tap) };
    let (governor, governor_tasks) = Governor::start(usage, open_writer_store, counters, governance).await.map_err(StartError::Gateway)?;
    let inference =
        GatewaySettings { providers: config.providers.clone(), default_max_tokens: config.default_max_tokens, rules: config.rules.clone() };
    let (gateway, gateway_tasks) = Gateway::new(governor.clone(), managed, inference).map_err(StartError::Gateway)?;
    let mcp = McpSurface::new(governor.clone(), upstreams, McpSettings { call_timeout: settings.mcp.call_timeout });
    Ok(Started { governor, gateway, mcp, tasks: (gateway_tasks, governor_tasks), flushed })
}

/// What `GET /api/models` lists besides the store: the config file's providers and the catalog.
fn model_sources(settings: &Settings) -> Result<ModelSources, StartError> {
    let declared = settings.gateway.providers.iter().map(|p| DeclaredProvider { name: p.name.clone(), models: p.models.clone() }).collect();
    let catalog = tollgate_governance::pricing::catalog_models().map_err(StartError::Gateway)?;
    Ok(ModelSources { declared, catalog })
}

/// `message` with `secret` (and a password inside it) blotted out.
fn redact_secret(message: &str, secret: &str) -> String {
    let password = secret.split_once("://").and_then(|(_, rest)| rest.split_once('@')).and_then(|(auth, _)| auth.rsplit(':').next());
    let mut out = message.replace(secret, "[redacted]");
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        out = out.replace(p, "[redacted]");
    }
    out
}

impl Server {
    pub async fn build(settings: &Settings) -> Result<Server, StartError> {
        // Before anything records: a handle taken from the facade earlier would stay a no-op.
        let metrics = crate::telemetry::recorder().map_err(StartError::Gateway)?;
        // The binary installed the subscriber already; a test's server installs it here.
        if settings.traces.enabled() {
            crate::traces::install(&settings.log, &settings.traces).map_err(StartError::Gateway)?;
        }
        let sealer = crate::secrets::load_sealer(&settings.encryption).map_err(StartError::Secrets)?;
        let store = SqlStore::connect(&settings.database_url).await.map_err(|e| StartError::Database(e.to_string()))?;
        crate::secrets::check_against_store(&sealer, &store).await.map_err(StartError::Secrets)?;
        let shared: Arc<dyn Store> = Arc::new(store.clone());
        let admin = match &settings.admin {
            Some((username, password)) => AdminSource::Configured { username: username.clone(), password: password.clone() },
            None => AdminSource::Stored,
        };
        let auth = Arc::new(AuthService::with_throttle(shared.clone(), admin, settings.server.login));
        let bootstrap = auth.bootstrap().await.map_err(|e| StartError::Database(e.to_string()))?;
        crate::declared::apply(&settings.declared, shared.clone(), &sealer).await.map_err(StartError::Declared)?;
        let mcp_rules = McpRules {
            egress: settings.gateway.rules.egress,
            stdio_commands: settings.mcp.stdio_commands.clone(),
            declared: settings.mcp.declared_names(),
        };
        let mcp_service = McpService::new(shared.clone(), sealer.clone()).with_rules(mcp_rules);
        mcp_service.apply_declared(settings.mcp.clients.clone()).await.map_err(|e| StartError::Declared(format!("mcp_clients: {e}")))?;
        let Started { governor, gateway, mcp, tasks, flushed } = start_gateway(&store, settings, &sealer).await?;
        let alerts = AlertsTask::start(
            Arc::new(store.clone()),
            sealer.clone(),
            governor.clone(),
            flushed,
            settings.alerts,
            settings.gateway.rules.egress,
        )
        .map_err(StartError::Gateway)?;
        let listener = TcpListener::bind(settings.listen).await.map_err(|source| StartError::Bind { addr: settings.listen, source })?;
        let mut state = AdminState::new(shared.clone(), auth, &sealer);
        state.models = ModelService::new(shared, model_sources(settings)?);
        state.providers = state.providers.with_rules(settings.gateway.rules.clone());
        state.alerts = state.alerts.with_egress(settings.gateway.rules.egress);
        state.mcp = mcp_service.with_runtime(mcp.upstreams().clone());
        let render = crate::telemetry::render(metrics.clone(), governor.clone());
        state.metrics = Some(tollgate_admin::MetricsEndpoint { render, allow: settings.metrics.allow.clone() });
        state.explainer = Some(Arc::new(tollgate_governance::Explain::new(governor.clone(), settings.gateway.default_max_tokens)));
        let probe = governor.clone();
        state.readiness = Some(Arc::new(move || {
            let governor = probe.clone();
            Box::pin(async move { governor.ready().await })
        }));
        let hook = governor;
        state.on_change = Some(Arc::new(move |scope| {
            let governor = hook.clone();
            Box::pin(async move { governor.changed(scope).await })
        }));
        let rotation = RotationService::new(state.store.clone(), sealer.clone(), settings.keys.rotation_grace);
        Ok(Server {
            listener,
            state,
            store,
            bootstrap,
            gateway,
            mcp,
            tasks,
            limits: settings.server.connections,
            rotation,
            rotation_every: settings.keys.rotation_check,
            metrics,
            alerts,
            traced: crate::traces::exporting(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// What happened to the admin credential at start-up (a generated password is in here).
    pub fn admin_bootstrap(&self) -> &AdminBootstrap {
        &self.bootstrap
    }

    /// The store, for tools and tests that need it beside the API.
    pub fn store(&self) -> &SqlStore {
        &self.store
    }

    /// Serves (and rotates keys) until `shutdown` completes, then finishes in-flight requests,
    /// stops the rotation scheduler and the gateway's tasks, and closes the pool.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartError> {
        let rotation = RotationTask::start(self.rotation, self.rotation_every, self.state.on_change.clone());
        let upkeep = crate::telemetry::upkeep(self.metrics);
        // Every surface's routes under the one middleware stack, applied once around them all.
        let surfaces =
            tollgate_admin::router(self.state).merge(tollgate_gateway::router(self.gateway)).merge(tollgate_mcp::router(self.mcp.clone()));
        let app = tollgate_admin::stack(surfaces, self.traced);
        crate::serve::serve(self.listener, app, self.limits, shutdown).await;
        rotation.shutdown().await;
        upkeep.abort();
        // Before governance drains: the writer's last flush may still hand it lines, which it
        // then leaves to the next start (an alert is looked at again when its line is charged).
        self.alerts.shutdown().await;
        // No call is in flight any more: the upstream connections and child processes end.
        self.mcp.shutdown();
        // Calls still in flight settle first, then governance drains what they charged.
        let (gateway_tasks, governor_tasks) = self.tasks;
        gateway_tasks.shutdown().await;
        governor_tasks.shutdown().await;
        // Every request has ended, so its spans are closed: the batch still waiting goes out.
        crate::traces::flush().await;
        self.store.close().await;
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, draining");
}
