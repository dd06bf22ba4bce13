//! Traces over OTLP: a receiver in the test takes `POST /v1/traces` (protobuf, decoded with
//! `opentelemetry-proto`'s types) and the spans a request leaves are checked: one trace per
//! request, its root the request's span with method, route, status and request id, governance and
//! the upstream call its children, a caller's `traceparent` continued, no key or prompt anywhere;
//! and nothing at all is sent when tracing is off.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};
use tollgate_testkit::mcp_fixture::{Fixture, serve_http};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;
use crate::mcp::{register_http, rpc, wait_for_tools};

/// The upstream's own API key: it must never reach a span.
const UPSTREAM_KEY: &str = "sk-upstream-3c9e51";
/// Words of the prompt: neither may they.
const PROMPT: &str = "whisper-prompt-8b2d";
/// A caller's W3C trace context: its trace id and the caller's span id.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One span as received, its attributes as text.
#[derive(Debug, Clone)]
struct Seen {
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i32,
    attributes: BTreeMap<String, String>,
}

impl Seen {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// What the receiver has taken: the spans, and every resource attribute.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<Seen>,
    resource: BTreeMap<String, String>,
    posts: usize,
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// A local OTLP/HTTP receiver on port 0.
struct Receiver {
    url: String,
    taken: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

async fn take(
    State(taken): State<Arc<Mutex<Received>>>,
    body: Bytes,
) -> (axum::http::StatusCode, [(&'static str, &'static str); 1], Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (axum::http::StatusCode::BAD_REQUEST, [("content-type", "text/plain")], b"not an export request".to_vec());
    };
    let mut taken = taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    taken.posts += 1;
    for resource_spans in request.resource_spans {
        for kv in resource_spans.resource.map(|r| r.attributes).unwrap_or_default() {
            taken.resource.insert(kv.key, text(kv.value.as_ref()));
        }
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let attributes = span.attributes.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect();
                taken.spans.push(Seen {
                    trace: hex(&span.trace_id),
                    id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes,
                });
            }
        }
    }
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    (axum::http::StatusCode::OK, [("content-type", "application/x-protobuf")], answer)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl Receiver {
    async fn start() -> Receiver {
        let taken = Arc::new(Mutex::new(Received::default()));
        let app = axum::Router::new().route("/v1/traces", axum::routing::post(take)).with_state(taken.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, taken, task }
    }

    fn spans(&self) -> Vec<Seen> {
        self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner).spans.clone()
    }

    fn resource(&self) -> BTreeMap<String, String> {
        self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner).resource.clone()
    }

    fn posts(&self) -> usize {
        self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner).posts
    }

    /// Polls until the root span of each request id has arrived with at least `children[i]`
    /// children, and returns every span received then.
    async fn wait_for(&self, expected: &[(&str, usize)]) -> Vec<Seen> {
        let start = Instant::now();
        loop {
            let spans = self.spans();
            let complete = expected.iter().all(|(id, children)| {
                root_of(&spans, id).is_some_and(|root| spans.iter().filter(|s| s.parent == root.id).count() >= *children)
            });
            if complete {
                return spans;
            }
            let names: Vec<_> = spans.iter().map(|s| (s.name.clone(), s.attr("tollgate.request_id").to_owned())).collect();
            assert!(start.elapsed() < Duration::from_secs(30), "spans still missing for {expected:?}; received {names:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn root_of<'a>(spans: &'a [Seen], request_id: &str) -> Option<&'a Seen> {
    spans.iter().find(|s| s.name.starts_with("POST ") && s.attr("tollgate.request_id") == request_id)
}

/// The root of `request_id`'s trace and its children by name, after checking that they share
/// its trace and nothing else does.
fn trace_of<'a>(spans: &'a [Seen], request_id: &str) -> (&'a Seen, HashMap<&'a str, Vec<&'a Seen>>) {
    let root = root_of(spans, request_id).unwrap_or_else(|| panic!("no root span for {request_id}"));
    let in_trace: Vec<&Seen> = spans.iter().filter(|s| s.trace == root.trace).collect();
    let mut children: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for span in in_trace.iter().filter(|s| s.id != root.id) {
        assert_eq!(span.parent, root.id, "{} in {request_id}'s trace is not a child of its root: {span:?}", span.name);
        children.entry(span.name.as_str()).or_default().push(span);
    }
    (root, children)
}

fn config(mock: &MockUpstream, receiver: Option<&Receiver>) -> String {
    let traces = receiver.map_or(String::new(), |r| format!("[traces]\notlp_endpoint = \"{}\"\nservice_name = \"tollgate-test\"\n", r.url));
    format!(
        "[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"{UPSTREAM_KEY}\"\nmax_retries = 0\n\n{traces}",
        mock.base_url()
    )
}

fn chat(stream: bool) -> Value {
    json!({"model": "openai/mock", "max_tokens": 10, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]})
}

/// Sends a chat completion with its own request id (and more headers), reading the whole answer.
async fn send(app: &TestApp, key: &str, id: &str, body: &Value, extra: &[(&str, &str)]) -> (u16, String) {
    let mut request = reqwest::Client::new().post(app.url("/v1/chat/completions")).bearer_auth(key).header("x-request-id", id).json(body);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

mod a_request_leaves_one_trace_with_governance_and_upstream_as_children_of_its_span {
    use super::*;

    async fn scenario(backend: Backend) {
        let receiver = Receiver::start().await;
        let mock = MockUpstream::start().await;
        let (tools, fixture) = serve_http(Fixture::default()).await.unwrap_or_else(|e| panic!("fixture: {e}"));
        let app = TestApp::start_with_config(backend, &config(&mock, Some(&receiver))).await;
        register_http(&app, "docs", &tools, json!({})).await;
        let openai = json!([{"provider_name": "openai", "allowed_models": ["mock"]}]);
        let (user, free) =
            key_holder(&app, json!({"name": "Free", "provider_configs": openai, "mcp_servers": [{"mcp_server_id": "docs"}]})).await;
        let (_, limited) = key_holder(
            &app,
            json!({"name": "Limited", "provider_configs": openai, "rate_limit": {"request_max_limit": 1, "request_reset_duration": "1h"}}),
        )
        .await;
        wait_for_tools(&app, &free, 1).await;

        assert_eq!(send(&app, &free, "trace-plain", &chat(false), &[]).await.0, 200);
        let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
        let (status, streamed) = send(&app, &free, "trace-stream", &chat(true), &[("traceparent", &traceparent)]).await;
        assert!(status == 200 && streamed.contains("[DONE]"), "{status} {streamed}");
        assert_eq!(send(&app, &limited, "trace-first", &chat(false), &[]).await.0, 200);
        let (status, denied) = send(&app, &limited, "trace-denied", &chat(false), &[]).await;
        assert!(status == 429 && denied.contains("request_limited"), "{status} {denied}");
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "docs-echo", "arguments": {"text": "x"}}});
        let bearer = format!("Bearer {free}");
        let (status, body) = rpc(&app, "/mcp", &[("authorization", &bearer), ("x-request-id", "trace-tool")], call).await;
        assert!(status == 200 && body["result"]["isError"] != json!(true), "{status} {body}");

        let expected = [("trace-plain", 3), ("trace-stream", 3), ("trace-first", 3), ("trace-denied", 2), ("trace-tool", 3)];
        let spans = receiver.wait_for(&expected).await;

        // One trace per request, each with one root: the request's server span.
        let roots: Vec<&Seen> = expected.iter().map(|(id, _)| root_of(&spans, id).unwrap_or_else(|| panic!("{id}"))).collect();
        let mut traces: Vec<&str> = roots.iter().map(|r| r.trace.as_str()).collect();
        traces.sort_unstable();
        traces.dedup();
        assert_eq!(traces.len(), expected.len(), "each request has a trace of its own");
        for root in &roots {
            assert_eq!(root.kind, SpanKind::Server as i32, "{root:?}");
            assert_eq!(root.attr("http.request.method"), "POST");
        }

        for id in ["trace-plain", "trace-stream", "trace-first"] {
            let (root, children) = trace_of(&spans, id);
            assert_eq!(root.name, "POST /v1/chat/completions", "{root:?}");
            assert_eq!(root.attr("http.route"), "/v1/chat/completions");
            assert_eq!(root.attr("http.response.status_code"), "200");
            let authorize = &children["governance.authorize"];
            assert_eq!(authorize.len(), 1);
            assert_eq!(
                (authorize[0].attr("tollgate.decision"), authorize[0].attr("tollgate.provider"), authorize[0].attr("tollgate.model")),
                ("allowed", "openai", "mock")
            );
            assert!(!authorize[0].attr("tollgate.virtual_key_id").is_empty(), "{:?}", authorize[0]);
            assert_eq!(children["governance.admit"][0].attr("tollgate.decision"), "allowed");
            let upstream = &children["upstream.call"];
            assert_eq!(upstream.len(), 1, "one try upstream");
            assert_eq!(upstream[0].kind, SpanKind::Client as i32);
            let noted =
                ["tollgate.provider", "tollgate.model", "tollgate.attempt", "http.response.status_code"].map(|k| upstream[0].attr(k));
            assert_eq!(noted, ["openai", "mock", "0", "200"], "{:?}", upstream[0]);
        }
        let (root, children) = trace_of(&spans, "trace-plain");
        // Ids are noted (the user's, the key's), never the key's value.
        assert_eq!(children["governance.authorize"][0].attr("tollgate.user_id"), user);
        assert_eq!(trace_of(&spans, "trace-first").0.attr("tollgate.request_id"), "trace-first");
        assert_ne!(root.trace, CALLER_TRACE);
        assert!(root.parent.is_empty(), "a request without traceparent starts a trace: {root:?}");

        // The caller's trace goes on: same trace id, the caller's span as the root's parent.
        let (streamed, _) = trace_of(&spans, "trace-stream");
        assert_eq!((streamed.trace.as_str(), streamed.parent.as_str()), (CALLER_TRACE, CALLER_SPAN));

        // The refusal: admission names the rule, and nothing went upstream.
        let (root, children) = trace_of(&spans, "trace-denied");
        assert_eq!(root.attr("http.response.status_code"), "429");
        assert_eq!(children["governance.authorize"][0].attr("tollgate.decision"), "allowed");
        let admit = children["governance.admit"][0];
        assert_eq!((admit.attr("tollgate.decision"), admit.attr("tollgate.denial")), ("denied", "request_limited"));
        assert!(!children.contains_key("upstream.call"), "{children:?}");

        // A tool call: the same shape under the MCP route.
        let (root, children) = trace_of(&spans, "trace-tool");
        assert_eq!((root.name.as_str(), root.attr("http.response.status_code")), ("POST /mcp", "200"));
        assert_eq!(children["governance.authorize"][0].attr("tollgate.decision"), "allowed");
        let admit = children["governance.admit"][0];
        assert_eq!((admit.attr("tollgate.decision"), admit.attr("tollgate.mcp.tool")), ("allowed", "echo"));
        let tool = children["upstream.tool_call"][0];
        assert_eq!((tool.attr("tollgate.mcp.client"), tool.attr("tollgate.outcome")), ("docs", "ok"));

        // A management request is named after its route's template, not the ids it was sent with.
        let reveal = "/api/governance/users/{user_id}/virtual-keys/{vk_id}/reveal";
        let revealed = spans.iter().find(|s| s.attr("http.route") == reveal).unwrap_or_else(|| panic!("no span of {reveal}"));
        assert_eq!((revealed.name.as_str(), revealed.attr("http.response.status_code")), (format!("POST {reveal}").as_str(), "200"));
        assert!(!spans.iter().any(|s| s.name.contains(&user) || s.attr("http.route").contains(&user)), "a raw path reached a span");

        // The exporter names the service; no attribute holds a key, the prompt or a raw path.
        assert_eq!(receiver.resource().get("service.name").map(String::as_str), Some("tollgate-test"));
        let everything: Vec<String> =
            spans.iter().flat_map(|s| s.attributes.values().cloned()).chain(receiver.resource().into_values()).collect();
        for secret in [free.as_str(), limited.as_str(), UPSTREAM_KEY, PROMPT, ADMIN_PASSWORD_TEXT] {
            assert!(!everything.iter().any(|v| v.contains(secret)), "a span holds {secret}");
        }
        fixture.abort();
        app.stop().await;
    }

    const ADMIN_PASSWORD_TEXT: &str = tollgate_testkit::ADMIN_PASSWORD;

    scenario_on_both_backends!();
}

mod spans_still_waiting_are_sent_when_the_server_stops {
    use super::*;

    async fn scenario(backend: Backend) {
        let receiver = Receiver::start().await;
        let mock = MockUpstream::start().await;
        let app = TestApp::start_with_config(backend, &config(&mock, Some(&receiver))).await;
        let openai = json!([{"provider_name": "openai", "allowed_models": ["mock"]}]);
        let (_, key) = key_holder(&app, json!({"name": "Free", "provider_configs": openai})).await;
        assert_eq!(send(&app, &key, "trace-last", &chat(false), &[]).await.0, 200);
        // The batch is sent every 5 s; stopping sends it at once.
        app.stop().await;
        let spans = receiver.spans();
        let (_, children) = trace_of(&spans, "trace-last");
        assert!(children.contains_key("upstream.call"), "{children:?}");
    }

    scenario_on_both_backends!();
}

mod with_tracing_off_nothing_is_sent {
    use super::*;

    async fn scenario(backend: Backend) {
        let receiver = Receiver::start().await;
        let mock = MockUpstream::start().await;
        let app = TestApp::start_with_config(backend, &config(&mock, None)).await;
        let openai = json!([{"provider_name": "openai", "allowed_models": ["mock"]}]);
        let (_, key) = key_holder(&app, json!({"name": "Free", "provider_configs": openai})).await;
        let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
        for stream in [false, true] {
            assert_eq!(send(&app, &key, "untraced", &chat(stream), &[("traceparent", &traceparent)]).await.0, 200);
        }
        assert!(!tollgate::traces::exporting(), "no endpoint configured, yet an exporter runs");
        // A stop flushes whatever an exporter would hold: the receiver still has nothing.
        app.stop().await;
        assert_eq!(receiver.posts(), 0, "spans were sent with tracing off: {:?}", receiver.spans());
    }

    scenario_on_both_backends!();
}
