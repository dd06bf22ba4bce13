//! Tollgate's management API: thin axum handlers over the core services, the error envelope,
//! deny-by-default authentication, the generated OpenAPI document, and the middleware stack
//! every surface's routes are served in.

mod auth;
mod dto;
pub mod error;
mod extract;
mod frame;
pub mod openapi;
mod routes;
mod span;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use tollgate_core::explain::Explainer;
use tollgate_core::ports::Store;
use tollgate_core::services::alerts::AlertService;
use tollgate_core::services::api_keys::ApiKeyService;
use tollgate_core::services::assignments::AssignmentService;
use tollgate_core::services::auth::AuthService;
use tollgate_core::services::directory::DirectoryService;
use tollgate_core::services::keys::KeyService;
use tollgate_core::services::lifecycle::LifecycleService;
use tollgate_core::services::logs::LogService;
use tollgate_core::services::mcp::McpService;
use tollgate_core::services::models::{ModelService, ModelSources};
use tollgate_core::services::profiles::ProfileService;
use tollgate_core::services::providers::ProviderService;
use tollgate_core::usage::ChangeScope;
use tollgate_core::vkeys::Sealer;
use tower::Layer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
pub use crate::frame::{Frame, FrameFuture};
pub use crate::routes::metrics::{MetricsEndpoint, Network, Render};

/// Largest request body accepted, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Awaited after every successful management write, before its answer is sent, so the data
/// plane serves the change from the very next request. Told what the write changed: a handler
/// that changed only some users' keys, copies or overrides says so with a `ChangeScope` response
/// extension (`changed_users`); any other write is `ChangeScope::Everything`.
pub type ChangeHook = Arc<dyn Fn(ChangeScope) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// The response part by which a handler says its write changed only these users' governance
/// state (their keys, copies and overrides), so the data plane re-reads just them.
pub(crate) fn changed_users<I: IntoIterator<Item = S>, S: Into<String>>(users: I) -> axum::Extension<ChangeScope> {
    axum::Extension(ChangeScope::Users(users.into_iter().map(Into::into).collect()))
}

/// Asked by `/ready` after the database: whatever else must answer for requests to be served
/// (the shared usage counters); `Err` carries the reason, for the log only.
pub type ReadyCheck = Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub on_change: Option<ChangeHook>,
    pub readiness: Option<ReadyCheck>,
    pub store: Arc<dyn Store>,
    pub profiles: ProfileService,
    pub api_keys: ApiKeyService,
    pub directory: DirectoryService,
    pub assignments: AssignmentService,
    pub keys: KeyService,
    pub lifecycle: LifecycleService,
    pub providers: ProviderService,
    /// MCP clients and Virtual MCPs; the binary adds its rules and the running MCP surface.
    pub mcp: McpService,
    /// Budget-alert rules of access profiles.
    pub alerts: AlertService,
    /// Lists models; built here without the config file's providers and the pricing catalog,
    /// which the binary adds (`ModelService::new` with its `ModelSources`).
    pub models: ModelService,
    pub logs: LogService,
    pub auth: Arc<AuthService>,
    /// What `GET /metrics` serves, set by the binary (which owns the recorder); `None`: 404.
    pub metrics: Option<MetricsEndpoint>,
    /// The running governance, which `POST /api/governance/explain` asks; set by the binary
    /// (`None`: 503).
    pub explainer: Option<Arc<dyn Explainer>>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

impl AdminState {
    pub fn new(store: Arc<dyn Store>, auth: Arc<AuthService>, sealer: &Sealer) -> Self {
        Self {
            on_change: None,
            readiness: None,
            profiles: ProfileService::new(store.clone()),
            api_keys: ApiKeyService::new(store.clone()),
            directory: DirectoryService::new(store.clone(), sealer.clone()),
            assignments: AssignmentService::new(store.clone(), sealer.clone()),
            lifecycle: LifecycleService::new(store.clone(), AssignmentService::new(store.clone(), sealer.clone())),
            keys: KeyService::new(store.clone(), sealer.clone()),
            providers: ProviderService::new(store.clone(), sealer.clone()),
            mcp: McpService::new(store.clone(), sealer.clone()),
            alerts: AlertService::new(store.clone(), sealer.clone()),
            models: ModelService::new(store.clone(), ModelSources::default()),
            logs: LogService::new(store.clone()),
            store,
            auth,
            metrics: None,
            explainer: None,
        }
    }
}

/// The management surface's routes. Public: `/health`, `/ready`, `/openapi.json`; `/metrics`
/// checks its caller itself (an allow-listed scrape address, or the admin or a management API key
/// with `Observability:View`); everything under `/api` is authenticated first, including paths
/// that do not exist. Bodies are capped at
/// `MAX_BODY_BYTES`. The server wraps these and every other surface's routes in `stack`.
pub fn router(state: AdminState) -> Router {
    let api = routes::api_routes()
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(state.clone(), announce_changes))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_caller));
    Router::new()
        .merge(routes::public_routes())
        .merge(routes::metrics::routes())
        .route("/openapi.json", axum::routing::get(openapi::serve))
        .nest("/api", api)
        .fallback(unknown_route)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
}

/// Every surface's routes as served: the one middleware stack around the finished router.
pub type Stacked = tower_http::trace::Trace<
    Frame<Router>,
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    span::RequestSpan,
    tower_http::trace::DefaultOnRequest,
    span::RequestDone,
>;

/// The one middleware stack over every route of every surface: a tracing span, then the request
/// frame (a request id set if absent and echoed back, the id in scope for error bodies and logs,
/// NUL characters in the path refused, errors from lower layers put in the envelope, a panic
/// caught as a 500 without detail). Applied once around the whole router, as tower services of
/// known types: `Router::layer` would wrap each layer around every route as a boxed service,
/// cloned and dropped per request (decision 126). With `traced` (spans are exported) each route
/// also names the span after its template, which only routing knows (decision 241).
pub fn stack(routes: Router, traced: bool) -> Stacked {
    let routes = if traced { routes.route_layer(middleware::from_fn(span::record_route)) } else { routes };
    TraceLayer::new_for_http().make_span_with(span::RequestSpan).on_response(span::RequestDone::default()).layer(Frame::new(routes))
}

/// Runs the change hook after a successful write, with the scope the handler gave (everything if
/// it gave none).
async fn announce_changes(axum::extract::State(state): axum::extract::State<AdminState>, request: Request, next: Next) -> Response {
    let writes = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    let response = next.run(request).await;
    if writes
        && response.status().is_success()
        && let Some(hook) = &state.on_change
    {
        let scope = response.extensions().get::<ChangeScope>().cloned().unwrap_or(ChangeScope::Everything);
        hook(scope).await;
    }
    response
}

async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}
