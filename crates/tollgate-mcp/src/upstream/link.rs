//! One upstream MCP client's connection, kept by a task of its own: it connects (streamable HTTP
//! or a child process over stdio, through rmcp), reads the tool list, keeps it fresh (on the
//! client's sync interval and on list-changed notifications), and reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, JsonObject, Tool};
use rmcp::service::{NotificationContext, Peer, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use tokio::sync::Notify;
use tollgate_core::mcp::{McpClientSpec, McpEndpoint};

/// Longest wait for a connection and its first tool list.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before reconnecting; doubled after each failure, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where a connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Connecting,
    Connected,
    /// The last attempt failed; the reason is safe to show an operator (no secrets).
    Failed(String),
    Disabled,
}

/// What is known of a client now: its state, its tools, and the peer to call them on.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    pub tools: Arc<Vec<Tool>>,
    pub peer: Option<Peer<RoleClient>>,
}

/// Why a call did not get an answer from the tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Not connected: the call was never sent.
    NotConnected(String),
    /// Sent, but no answer came in time or the connection broke: the tool may have run.
    Lost(String),
    /// The upstream answered with a protocol error (unknown tool, bad arguments): it did not run.
    Refused(String),
}

/// A client's live connection, shared by every request.
#[derive(Debug)]
pub struct Link {
    pub spec: McpClientSpec,
    status: ArcSwap<Status>,
    /// Wakes the task to read the tools again (a list-changed notification) or, with `reconnect`
    /// set, to drop the connection and make a new one.
    wake: Notify,
    reconnect: std::sync::atomic::AtomicBool,
}

/// Tells the task when the upstream's tools changed.
#[derive(Debug, Clone)]
struct Listener(Arc<Link>);

impl ClientHandler for Listener {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.0.wake.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

impl Link {
    /// Starts the connection's task; it ends when `stop` is cancelled.
    pub fn start(spec: McpClientSpec, stop: tokio_util::sync::CancellationToken) -> Arc<Link> {
        let state = if spec.disabled { State::Disabled } else { State::Connecting };
        let link = Arc::new(Link {
            spec,
            status: ArcSwap::from_pointee(Status { state, tools: Arc::default(), peer: None }),
            wake: Notify::new(),
            reconnect: std::sync::atomic::AtomicBool::new(false),
        });
        if !link.spec.disabled {
            tokio::spawn(Arc::clone(&link).run(stop));
        }
        link
    }

    pub fn status(&self) -> Arc<Status> {
        self.status.load_full()
    }

    /// Drops the connection and connects again now.
    pub fn reconnect(&self) {
        self.reconnect.store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Calls one tool by its own name, waiting at most `timeout`. A call is tried again only when
    /// it could not be sent at all.
    pub async fn call(&self, tool: &str, arguments: Option<JsonObject>, timeout: Duration) -> Result<CallToolResult, CallError> {
        let status = self.status();
        let Some(peer) = status.peer.clone() else {
            return Err(CallError::NotConnected(reason(&status.state)));
        };
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = arguments;
        for attempt in 0..2 {
            match tokio::time::timeout(timeout, peer.call_tool(params.clone())).await {
                Err(_) => return Err(CallError::Lost(format!("no answer within {} s", timeout.as_secs()))),
                Ok(Ok(result)) => return Ok(result),
                Ok(Err(ServiceError::McpError(e))) => return Err(CallError::Refused(e.message.to_string())),
                Ok(Err(ServiceError::TransportSend(_))) if attempt == 0 => {}
                Ok(Err(ServiceError::TransportSend(e))) => return Err(CallError::NotConnected(e.to_string())),
                Ok(Err(e)) => {
                    self.reconnect();
                    return Err(CallError::Lost(e.to_string()));
                }
            }
        }
        Err(CallError::NotConnected("the upstream could not be reached".into()))
    }

    async fn run(self: Arc<Link>, stop: tokio_util::sync::CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            self.set(State::Connecting, None, None);
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, self.connect());
            let running = tokio::select! {
                () = stop.cancelled() => return,
                r = attempt => r.unwrap_or_else(|_| Err("no answer within 10 s".into())),
            };
            match running {
                Ok(running) => {
                    backoff = FIRST_BACKOFF;
                    tracing::info!(client = %self.spec.name, tools = self.status().tools.len(), "MCP client connected");
                    self.serve(running, &stop).await;
                    // A connection that closed is made again, but not in a tight loop.
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(FIRST_BACKOFF) => {}
                    }
                }
                Err(why) => {
                    tracing::warn!(client = %self.spec.name, error = %why, "MCP client failed to connect");
                    self.set(State::Failed(why), None, None);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                        () = self.wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn connect(self: &Arc<Link>) -> Result<RunningService<RoleClient, Listener>, String> {
        let listener = Listener(Arc::clone(self));
        let running = match &self.spec.endpoint {
            McpEndpoint::Http { url, headers } => {
                let mut custom = std::collections::HashMap::new();
                for (name, value) in headers {
                    let name = http::HeaderName::try_from(name.as_str()).map_err(|_| format!("header name '{name}' is not valid"))?;
                    let value =
                        http::HeaderValue::try_from(value.as_str()).map_err(|_| format!("the value of header '{name}' is not valid"))?;
                    custom.insert(name, value);
                }
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(custom);
                crate::install_tls_provider();
                // A redirect could point the link anywhere, past the address rules its URL passed.
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))?;
                listener.serve(StreamableHttpClientTransport::with_client(client, config)).await.map_err(|e| e.to_string())?
            }
            McpEndpoint::Stdio { command, args, envs } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear().envs(envs.iter().map(|(k, v)| (k, v))).kill_on_drop(true);
                let (child, _) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .map_err(|e| format!("'{command}' could not be started: {e}"))?;
                listener.serve(child).await.map_err(|e| e.to_string())?
            }
        };
        let tools = running.peer().list_all_tools().await.map_err(|e| format!("tools/list failed: {e}"))?;
        self.set(State::Connected, Some(tools), Some(running.peer().clone()));
        Ok(running)
    }

    /// Keeps a connection until it closes, is asked to reconnect, or the link stops; reads the
    /// tools again on a list-changed notification and on the sync interval.
    async fn serve(&self, running: RunningService<RoleClient, Listener>, stop: &tokio_util::sync::CancellationToken) {
        let peer = running.peer().clone();
        let token = running.cancellation_token();
        let mut closed = std::pin::pin!(running.waiting());
        let sync = self.spec.tool_sync_interval;
        loop {
            let tick = async {
                match sync {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                _ = &mut closed => {
                    self.set(State::Failed("the connection closed".into()), None, None);
                    return;
                }
                () = self.wake.notified() => {
                    if self.reconnect.swap(false, std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                }
                () = tick => {}
            }
            match peer.list_all_tools().await {
                Ok(tools) => self.set(State::Connected, Some(tools), Some(peer.clone())),
                Err(e) => tracing::warn!(client = %self.spec.name, error = %e, "re-reading MCP tools failed"),
            }
        }
        self.set(State::Connecting, None, None);
        token.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), closed).await;
    }

    fn set(&self, state: State, tools: Option<Vec<Tool>>, peer: Option<Peer<RoleClient>>) {
        let tools = tools.map_or_else(|| self.status().tools.clone(), Arc::new);
        self.status.store(Arc::new(Status { state, tools, peer }));
    }
}

fn reason(state: &State) -> String {
    match state {
        State::Connecting => "the upstream is connecting".into(),
        State::Connected => "the upstream is not connected".into(),
        State::Failed(why) => format!("the upstream is unavailable: {why}"),
        State::Disabled => "the upstream is disabled".into(),
    }
}
