//! Where upstream calls may go: a redirect is never followed, link-local and cloud-metadata
//! addresses are refused always, private and loopback ones when the operator says so.

use std::net::SocketAddr;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::any;
use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;

/// A server answering every request under `/{status}/…` with that redirect status, sending the
/// client to the mock upstream's chat endpoint (an "internal" service the provider points at).
async fn redirector(to: String) -> SocketAddr {
    let app = axum::Router::new().route(
        "/{status}/{*rest}",
        any(move |Path((status, _)): Path<(u16, String)>| {
            let to = to.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert(header::LOCATION, to.parse().unwrap_or_else(|_| header::HeaderValue::from_static("/")));
                (StatusCode::from_u16(status).unwrap_or(StatusCode::SEE_OTHER), headers, "redirecting")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("redirector bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("redirector addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

const STATUSES: [u16; 4] = [301, 303, 307, 308];

/// Providers `bounce<status>` whose base URL answers with that redirect to the mock upstream.
async fn redirecting_app(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let addr = redirector(format!("{}/chat/completions", mock.base_url())).await;
    let mut file = Vec::new();
    for s in STATUSES {
        file.push(format!("[[providers]]\nname = \"bounce{s}\"\nbase_url = \"http://{addr}/{s}/v1\"\napi_key = \"sk-file-secret\"\n"));
    }
    (TestApp::start_with_config(backend, &file.concat()).await, mock)
}

fn chat(provider: &str) -> Value {
    json!({"model": format!("{provider}/mock"), "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
}

with_mock_upstream! { redirecting_app;
    async fn an_upstream_redirect_is_never_followed(app, mock) {
        let configs: Vec<Value> = STATUSES.iter().map(|s| json!({"provider_name": format!("bounce{s}"), "allowed_models": ["mock"]})).collect();
        let (_, key) = key_holder(app, json!({"name": "Bounced", "provider_configs": configs})).await;
        for status in STATUSES {
            let reply = app.with_key(&key).post("/v1/chat/completions", chat(&format!("bounce{status}"))).await;
            assert_eq!((reply.status.as_u16(), reply.body["type"].clone()), (502, json!("upstream_redirect")), "{status}: {}", reply.body);
            let message = reply.body["error"]["message"].as_str().unwrap_or_default();
            assert_eq!(message, format!("provider 'bounce{status}' answered with a redirect, which is not followed"));
            assert!(reply.headers.get(header::LOCATION).is_none());
        }
        assert_eq!(mock.calls(), 0, "the redirect's target never sees a request, nor the key");
    }
}

/// Base URLs that name a metadata or link-local host, in several spellings.
const ALWAYS_REFUSED: [&str; 6] = [
    "http://169.254.169.254/v1",
    "http://[fd00:ec2::254]/v1",
    "http://[::ffff:169.254.169.254]/v1",
    "http://2852039166/v1",
    "http://100.100.100.200/v1",
    "http://metadata.google.internal/v1",
];

on_both_backends! {
    async fn metadata_and_link_local_base_urls_are_refused_when_written(app: &TestApp) {
        for url in ALWAYS_REFUSED {
            let reply = app.admin().post("/api/providers", json!({"provider": "probe", "network_config": {"base_url": url}})).await;
            let message = reply.expect_error(400).to_owned();
            assert_eq!(reply.body["error"]["param"], "network_config.base_url", "{url}: {}", reply.body);
            assert!(message.contains("link-local or cloud-metadata"), "{url}: {message}");
        }
        app.admin().get("/api/providers/probe").await.expect_error(404);
        // Loopback and private upstreams (Ollama, vLLM) are fine by default.
        app.admin().post("/api/providers", json!({"provider": "ollama", "network_config": {"base_url": "http://localhost:11434/v1"}})).await.expect(200);
        app.admin().put("/api/providers/ollama", json!({"network_config": {"base_url": "http://10.0.0.7:8000/v1"}})).await.expect(200);
        let refused = app.admin().put("/api/providers/ollama", json!({"network_config": {"base_url": ALWAYS_REFUSED[0]}})).await;
        refused.expect_error(400);
        let kept = app.admin().get("/api/providers/ollama").await.expect(200).clone();
        assert_eq!(kept["network_config"]["base_url"], "http://10.0.0.7:8000/v1", "a refused replacement changes nothing");
    }
}

async fn closed_app(backend: Backend) -> TestApp {
    TestApp::start_with_config(backend, "[gateway]\nblock_private_upstreams = true\n").await
}

on_both_backends! { start closed_app;
    async fn private_and_loopback_base_urls_are_refused_when_the_operator_says_so(app: &TestApp) {
        for url in ["http://localhost:11434/v1", "http://127.0.0.1:8000/v1", "http://[::1]/v1", "http://10.1.2.3/v1", "http://192.168.0.9/v1", "http://100.64.0.1/v1"] {
            let reply = app.admin().post("/api/providers", json!({"provider": "inside", "network_config": {"base_url": url}})).await;
            assert!(reply.expect_error(400).contains("private or loopback"), "{url}: {}", reply.body);
        }
        app.admin().post("/api/providers", json!({"provider": "outside", "network_config": {"base_url": "https://llm.example.com/v1"}})).await.expect(200);
    }
}

/// A provider stored while private upstreams were allowed is not called once they are refused.
mod stored_before_the_rule {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let app = TestApp::start(backend).await;
        let provider = json!({"provider": "local", "network_config": {"base_url": mock.base_url()}, "keys": [{"name": "k", "value": "sk-local-secret"}]});
        app.admin().post("/api/providers", provider).await.expect(200);
        let (_, key) =
            key_holder(&app, json!({"name": "Local", "provider_configs": [{"provider_name": "local", "allowed_models": ["mock"]}]})).await;
        app.with_key(&key).post("/v1/chat/completions", chat("local")).await.expect(200);
        assert_eq!(mock.calls(), 1);
        let app = app.restart("[gateway]\nblock_private_upstreams = true\n").await;
        let reply = app.with_key(&key).post("/v1/chat/completions", chat("local")).await;
        assert!(reply.expect_error(400).contains("provider 'local' is not configured"), "{}", reply.body);
        assert_eq!(mock.calls(), 1, "the refused upstream is not called");
        app.stop().await;
    }

    scenario_on_both_backends!();
}
