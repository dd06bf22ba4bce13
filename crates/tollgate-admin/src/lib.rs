//! Tollgate's management API: thin axum handlers over the core services, the error envelope,
//! deny-by-default authentication and the generated OpenAPI document.

mod auth;
mod dto;
pub mod error;
mod extract;
pub mod openapi;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tollgate_core::ports::Store;
use tollgate_core::services::api_keys::ApiKeyService;
use tollgate_core::services::assignments::AssignmentService;
use tollgate_core::services::auth::AuthService;
use tollgate_core::services::directory::DirectoryService;
use tollgate_core::services::keys::KeyService;
use tollgate_core::services::lifecycle::LifecycleService;
use tollgate_core::services::models::{ModelService, ModelSources};
use tollgate_core::services::profiles::ProfileService;
use tollgate_core::services::providers::ProviderService;
use tollgate_core::usage::ChangeScope;
use tollgate_core::vkeys::Sealer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, REQUEST_ID};

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
    /// Lists models; built here without the config file's providers and the pricing catalog,
    /// which the binary adds (`ModelService::new` with its `ModelSources`).
    pub models: ModelService,
    pub auth: Arc<AuthService>,
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
            models: ModelService::new(store.clone(), ModelSources::default()),
            store,
            auth,
        }
    }
}

/// The management surface's routes. Public: `/health`, `/ready`, `/openapi.json`; everything
/// under `/api` is authenticated first, including paths that do not exist. Bodies are capped at
/// `MAX_BODY_BYTES`. The server wraps these and every other surface's routes in `stack`.
pub fn router(state: AdminState) -> Router {
    let api = routes::api_routes()
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(state.clone(), announce_changes))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_caller));
    Router::new()
        .merge(routes::public_routes())
        .route("/openapi.json", axum::routing::get(openapi::serve))
        .nest("/api", api)
        .fallback(unknown_route)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
}

/// The one middleware stack over every route of every surface: a request id (set if absent,
/// echoed back), a tracing span, the id in scope for error bodies and logs, NUL characters in the
/// path refused, errors from lower layers put in the envelope, and a handler's panic caught as a
/// 500 without detail.
pub fn stack(routes: Router) -> Router {
    // Three layers rather than six: `Router::layer` wraps each around every route as a boxed
    // service, so every layer costs a clone and a drop per request (decision 126).
    routes
        .layer(CatchPanicLayer::custom(|_| ApiError::from(tollgate_core::CoreError::Internal("handler panicked".into())).into_response()))
        .layer(middleware::from_fn(request_frame))
        .layer(TraceLayer::new_for_http())
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

const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// The request's frame: its id (the caller's `x-request-id`, or a new UUID) set on the request,
/// in scope while it runs so error bodies and logs can name it, and echoed on the answer; a path
/// or query with an encoded NUL character refused (no store can hold it: Postgres refuses it);
/// errors from below the handlers put in the envelope.
async fn request_frame(mut request: Request, next: Next) -> Response {
    let id = if let Some(given) = request.headers().get(&X_REQUEST_ID) {
        given.clone()
    } else {
        let made = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or(HeaderValue::from_static("-"));
        request.headers_mut().insert(X_REQUEST_ID, made.clone());
        made
    };
    let scoped = id.to_str().unwrap_or("-").to_owned();
    let uri = request.uri();
    let has_nul = |part: &str| part.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"));
    let mut response = if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        REQUEST_ID
            .scope(scoped, async { ApiError::bad_request("the path and query must not contain NUL characters").into_response() })
            .await
    } else {
        REQUEST_ID.scope(scoped, async { envelope_for_plain_errors(next.run(request).await) }).await
    };
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

/// Wraps error answers produced outside our handlers (wrong method, body over the limit, …)
/// in the envelope, so every error a client sees has the same shape.
fn envelope_for_plain_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == HeaderValue::from_static("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(status, "method_not_allowed", "method not allowed on this route"),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "payload_too_large", error::too_large_message()),
        s if s.is_server_error() => ApiError::from(tollgate_core::CoreError::Internal(format!("plain {s} from a lower layer"))),
        s => ApiError::new(s, "invalid_request", s.canonical_reason().unwrap_or("request refused")),
    };
    let mut fixed = error.into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        fixed.headers_mut().insert(header::ALLOW, allow.clone());
    }
    fixed
}
