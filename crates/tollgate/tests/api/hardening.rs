//! Denial of service and what an unauthenticated caller may learn: slow or idle connections are
//! cut, connections are capped, failed logins are throttled, an Anthropic-format request is
//! authenticated before its provider is looked at, oversized bodies get Anthropic's 413, and a
//! body-less key mint is taken as an empty one.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_testkit::{ADMIN_PASSWORD, ADMIN_USER, Backend, TestApp};

use crate::key_holder;

/// A server that cuts a connection whose request head is not complete within a second, and
/// serves two connections at once.
async fn tight(backend: Backend) -> TestApp {
    TestApp::start_with_config(backend, "[server]\nheader_read_timeout_secs = 1\nmax_connections = 2\n").await
}

/// Reads until the server closes the connection; `None` if it is still open after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

on_both_backends! { start tight;
    async fn a_half_sent_request_or_an_idle_connection_is_cut_and_connections_are_capped(app: &TestApp) {
        let mut half = tokio::net::TcpStream::connect(app.addr).await.unwrap_or_else(|e| panic!("{e}"));
        half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: tollgate\r\nContent-Type: app").await.unwrap_or_else(|e| panic!("{e}"));
        let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Both slots are taken: a third client waits in the backlog.
        let fresh = reqwest::Client::new();
        let waiting = fresh.get(app.url("/health")).timeout(Duration::from_millis(400)).send().await;
        assert!(waiting.is_err(), "a connection beyond the cap is not served meanwhile: {waiting:?}");
        let (half_closed, idle_closed) =
            tokio::join!(closed_within(&mut half, Duration::from_secs(5)), closed_within(&mut idle, Duration::from_secs(5)));
        assert!(half_closed.is_some_and(|t| t < Duration::from_secs(3)), "a half-sent head is cut after the timeout: {half_closed:?}");
        assert!(idle_closed.is_some_and(|t| t < Duration::from_secs(3)), "a silent connection too: {idle_closed:?}");
        let served = reqwest::Client::new().get(app.url("/health")).timeout(Duration::from_secs(5)).send().await;
        assert_eq!(served.map(|r| r.status().as_u16()).ok(), Some(200), "freed slots serve again");
    }
}

/// A server that locks an (address, username) pair for two seconds after three failed logins.
async fn throttled(backend: Backend) -> TestApp {
    TestApp::start_with_config(backend, "[server]\nlogin_max_failures = 3\nlogin_lockout_secs = 2\n").await
}

on_both_backends! { start throttled;
    async fn failed_logins_are_throttled_per_address_and_username_even_for_the_right_password(app: &TestApp) {
        const PATH: &str = "/api/governance/access-profiles";
        for _ in 0..3 {
            app.basic(ADMIN_USER, "wrong-password-guess").get(PATH).await.expect_error(401);
        }
        let locked = app.admin().get(PATH).await;
        assert_eq!(locked.expect_error(429), "too many failed logins from this address for this user; try again later");
        assert_eq!(locked.body["error"]["type"], "too_many_requests");
        let wait = locked.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        assert!(wait.is_some_and(|w| (1..=3).contains(&w)), "Retry-After within the lock: {wait:?}");
        app.basic("someone-else", "wrong-password-guess").get(PATH).await.expect_error(401);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        app.admin().get(PATH).await.expect(200);
        app.basic(ADMIN_USER, "wrong-password-guess").get(PATH).await.expect_error(401);
        app.admin().get(PATH).await.expect(200);
    }
}

on_both_backends! {
    async fn an_unauthenticated_anthropic_request_learns_nothing_about_providers(app: &TestApp) {
        let body = json!({"model": "nowhere/some-model", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        for path in ["/anthropic/v1/messages", "/v1/messages", "/anthropic/v1/messages/count_tokens", "/v1/chat/completions"] {
            for client in [app.anonymous(), app.with_header("x-api-key", "sk-bf-00000000-0000-0000-0000-000000000000")] {
                let r = client.post(path, body.clone()).await;
                assert_eq!(r.status.as_u16(), 401, "{path}: {}", r.body);
                // (The OpenAI envelope echoes the requested model in `extra_fields`: the caller's own input.)
                let message = r.body["error"]["message"].as_str().unwrap_or_default();
                assert!(!message.contains("nowhere") && !message.contains("configured"), "{path}: nothing about providers: {}", r.body);
            }
        }
        // A key that may use the provider is told that it is not configured.
        let granted = json!({"name": "Ghost", "provider_configs": [{"provider_name": "nowhere", "allowed_models": ["some-model"]}]});
        let (_, key) = key_holder(app, granted).await;
        let r = app.with_header("x-api-key", &key).post("/anthropic/v1/messages", body).await;
        assert_eq!(r.status.as_u16(), 400, "{}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("'nowhere' is not configured")), "{}", r.body);
    }

    async fn an_anthropic_body_over_the_limit_is_refused_with_anthropics_413(app: &TestApp) {
        let mut body = br#"{"model":"anthropic/claude","messages":[{"role":"user","content":""#.to_vec();
        body.resize(32 * 1024 * 1024 + 16, b'a');
        body.extend_from_slice(br#""}]}"#);
        for path in ["/anthropic/v1/messages/count_tokens", "/anthropic/v1/messages"] {
            let r = app.anonymous().raw(Method::POST, path, "application/json", body.clone()).await;
            assert_eq!(r.status.as_u16(), 413, "{path}");
            assert_eq!((r.body["type"].clone(), r.body["error"]["type"].clone()), (json!("error"), json!("request_too_large")), "{path}: {}", r.body);
        }
    }

    async fn a_key_is_minted_for_a_user_without_a_request_body(app: &TestApp) {
        let (user, _) = key_holder(app, json!({"name": "Bodiless"})).await;
        let minted = reqwest::Client::new()
            .post(app.url(&format!("/api/governance/users/{user}/virtual-keys")))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(minted.status().as_u16(), 200, "the published contract marks the body optional");
        let minted: serde_json::Value = minted.json().await.unwrap_or_default();
        assert!(minted["virtual_key"]["value"].as_str().is_some_and(|v| v.starts_with("sk-bf-")), "{minted}");
        let sent = app.admin().raw(Method::POST, &format!("/api/governance/users/{user}/virtual-keys"), "text/plain", b"{}".to_vec()).await;
        sent.expect_error(415);
    }
}
