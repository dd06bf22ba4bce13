//! The inference surface's shared state and its one way to an upstream call: governance asked
//! (authorize, then admit: priced and reserved), the provider found and its key picked; a
//! plain call's task outlives a client's hang-up, and shutdown waits for it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use tokio_util::task::TaskTracker;
use tollgate_core::providers::ProviderRules;
use tollgate_governance::{Access, Ask, Denial, Governor, Held};

use crate::error::{ErrorKind, Failure, GatewayError};
use crate::keys::presented_key;
use crate::prompt::Prompt;
use crate::providers::{ManagedProviders, ProviderSpec, Target};

/// Inference settings.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Providers the config file declares.
    pub providers: Vec<ProviderSpec>,
    /// Output tokens assumed for a request that sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// Which upstream addresses the HTTP client may connect to, among others.
    pub rules: ProviderRules,
}

/// Shared by every inference request.
#[derive(Clone)]
pub struct Gateway(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub governor: Governor,
    /// The config file's providers, by name.
    pub providers: HashMap<String, Arc<ProviderSpec>>,
    /// The providers managed through the API (they take precedence over the file's).
    pub managed: Arc<ManagedProviders>,
    pub http: reqwest::Client,
    pub default_max_tokens: u64,
    /// Plain upstream calls, each on its own task so a client's hang-up does not cancel it;
    /// shutdown waits for them.
    pub inflight: TaskTracker,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// The upstream calls still running when the server stops.
#[derive(Debug)]
pub struct GatewayTasks {
    inflight: TaskTracker,
}

impl GatewayTasks {
    /// Lets the calls still in flight finish (their reservations settle with them). A plain call
    /// ends within its provider's timeout (and retries), so the wait is bounded; a process killed
    /// while it waits leaves them to the crash journal (or, with Redis, to the sweep).
    pub async fn shutdown(self) {
        self.inflight.close();
        if !self.inflight.is_empty() {
            tracing::info!(calls = self.inflight.len(), "waiting for upstream calls whose clients have left, to bill them");
        }
        self.inflight.wait().await;
    }
}

impl Gateway {
    /// The inference surface over a started governor. `managed` must be the table the governor
    /// refreshes on every reload (`ManagedProviders::on_reload`).
    pub fn new(governor: Governor, managed: Arc<ManagedProviders>, settings: GatewaySettings) -> Result<(Gateway, GatewayTasks), String> {
        // Redirects are never followed (they would take the credentials and the body to a host
        // nobody checked), and names resolve only to addresses the egress policy allows.
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(crate::egress::GuardedResolver::new(settings.rules.egress)))
            .build()
            .map_err(|e| e.to_string())?;
        let providers = settings.providers.into_iter().map(|p| (p.name.clone(), Arc::new(p))).collect();
        let inflight = TaskTracker::new();
        let inner =
            Inner { governor, providers, managed, http, default_max_tokens: settings.default_max_tokens, inflight: inflight.clone() };
        Ok((Gateway(Arc::new(inner)), GatewayTasks { inflight }))
    }

    /// Readiness of the data plane: governance's counters answer.
    pub async fn ready(&self) -> Result<(), String> {
        self.0.governor.ready().await
    }

    /// The provider of that name: the API-managed one first, then the file's.
    pub(crate) fn provider(&self, name: &str) -> Option<Arc<ProviderSpec>> {
        self.0.managed.get(name).or_else(|| self.0.providers.get(name).cloned())
    }

    /// The one way to an upstream call, whatever the route's format: authorizes the key, finds
    /// the provider and its key, then has governance price and reserve the estimate. The
    /// returned guard settles the reservation exactly once. `body` is the request as the client
    /// sent it, kept in the log when the copy's policy says so.
    pub(crate) async fn admit(
        &self,
        headers: &HeaderMap,
        ask: &Ask<'_>,
        prompt: &Prompt,
        body: &[u8],
    ) -> Result<(Target, Held), GatewayError> {
        let now = tollgate_core::clock::now();
        let snapshot = self.0.governor.snapshot();
        let (target, access) = self.resolve(&snapshot, headers, ask, now)?;
        let mut held = self.0.governor.admit(access, ask, prompt, now).await.map_err(|d| self.refused(d, ask))?;
        held.keep_request(body);
        Ok((target, held))
    }

    /// A governance refusal as the caller's answer, logged with the status it is answered with.
    fn refused(&self, denial: Denial, ask: &Ask<'_>) -> GatewayError {
        let status = ErrorKind::Denied(denial.kind).status_and_type().0.as_u16();
        self.0.governor.log_refusal(&denial, ask, status);
        GatewayError::from(denial)
    }

    /// The identity and access checks alone, for a call nothing is charged for (counting tokens):
    /// where it goes, once the key may use `provider/model`.
    pub(crate) fn authorized_target(&self, headers: &HeaderMap, provider: &str, model: &str) -> Result<Target, GatewayError> {
        let snapshot = self.0.governor.snapshot();
        let ask = Ask { provider, model, max_out: 0, stream: false, route: "count_tokens", arrived: std::time::Instant::now() };
        self.resolve(&snapshot, headers, &ask, tollgate_core::clock::now()).map(|(target, _)| target)
    }

    /// Authorizes the caller, then finds the provider (API-managed first) and picks its key.
    fn resolve<'s>(
        &self,
        snapshot: &'s tollgate_governance::snapshot::Snapshot,
        headers: &HeaderMap,
        ask: &Ask<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Target, Access<'s>), GatewayError> {
        let (provider, model) = (ask.provider, ask.model);
        if provider.chars().chain(model.chars()).any(char::is_control) {
            return Err(GatewayError::bad_request("the model name must not contain control characters"));
        }
        // The caller first: one without a valid key learns nothing about the providers.
        let access = self.0.governor.authorize(snapshot, presented_key(headers), ask, now).map_err(|d| self.refused(d, ask))?;
        let spec = self.provider(provider).ok_or_else(|| GatewayError::bad_request(format!("provider '{provider}' is not configured")))?;
        let mut key = None;
        if spec.needs_key {
            let picked = spec.pick_key(model).ok_or_else(|| {
                GatewayError::new(Failure::NoProviderKey, format!("provider '{provider}' has no enabled key for model '{model}'"))
                    .for_model(provider, model)
            })?;
            key = Some(picked);
        }
        Ok((Target { spec, key }, access))
    }
}
