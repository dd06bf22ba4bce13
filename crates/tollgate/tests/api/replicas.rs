//! Several instances over one database and one Redis: limits hold across them, as one.

use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;

/// Redis keys of this test process (nextest runs each test in its own process).
static PREFIX: LazyLock<String> = LazyLock::new(|| format!("tollgate-test:{}:", uuid::Uuid::new_v4()));

/// A provider on the mock, $0.001 per output token, and counters in the CI Redis under a key
/// prefix of this test's own. Every instance of a test gets the same text.
pub(crate) fn config(mock: &MockUpstream) -> String {
    let prefix = PREFIX.as_str();
    let redis = std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    format!(
        r#"
[gateway]
redis_url = "{redis}"
redis_key_prefix = "{prefix}"

[[providers]]
name = "openai"
base_url = "{}"
api_key = "test-upstream-key"
models = ["mock"]
max_retries = 0

[pricing.models."openai/mock"]
input = 0
output = 1000
"#,
        mock.base_url()
    )
}

fn chat(max_tokens: u64) -> Value {
    json!({"model": "openai/mock", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
}

async fn redis_app(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

with_mock_upstream! { redis_app;
    async fn two_instances_sharing_redis_hold_one_budget_between_them(app, mock) {
        let (user, key) = key_holder(app, json!({
            "name": "Shared",
            "budgets": [{"max_limit": 0.2, "reset_duration": "1d"}],
            "rate_limit": {"request_max_limit": 1000, "request_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        let replica = app.start_replica(&config(mock)).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        let (a, b) = (app.with_key(&key), replica.with_key(&key));
        let burst = (0..100).map(|i| if i % 2 == 0 { a.post("/v1/chat/completions", chat(20)) } else { b.post("/v1/chat/completions", chat(20)) });
        let statuses: Vec<u16> = join_all(burst).await.into_iter().map(|r| r.status.as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "exactly what fits, whichever instance served: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 90);
        assert_eq!(mock.calls(), 10);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for instance in [app, &replica] {
            let copies = instance.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
            assert_eq!(copies["access_profiles"][0]["budgets"][0]["current_usage"], 0.2, "both instances report the shared spend");
            assert_eq!(copies["access_profiles"][0]["rate_limit"]["request_current_usage"], 10);
        }
        let refused = b.post("/v1/chat/completions", chat(20)).await;
        assert_eq!(refused.body["type"], "budget_exceeded", "the replica refuses what the first instance spent");
        replica.stop().await;
    }

    async fn a_reservation_held_by_one_instance_blocks_the_other(app, mock) {
        let (_, key) = key_holder(app, json!({
            "name": "Held",
            "rate_limit": {"request_max_limit": 1, "request_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        let replica = app.start_replica(&config(mock)).await;
        mock.script.chunk_delay_ms.store(100, Ordering::SeqCst);
        let streamed = json!({"model": "openai/mock", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let slow = app.raw_stream(&key, &streamed, usize::MAX);
        let other = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            replica.with_key(&key).post("/v1/chat/completions", chat(5)).await
        };
        let (first, second) = tokio::join!(slow, other);
        assert!(first.contains("[DONE]"), "the stream on the first instance completes: {first}");
        assert_eq!((second.status.as_u16(), second.body["type"].clone()), (429, json!("request_limited")), "the request in flight on the first instance counts on the second");
        replica.stop().await;
    }
}

/// A TCP relay to the test Redis that the test can cut (and open again), to play Redis going away.
struct RedisRelay {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pipes: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl RedisRelay {
    async fn start() -> RedisRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pipes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accepting, spawned) = (open.clone(), pipes.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is refused as if Redis were down
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut redis) = tokio::net::TcpStream::connect("127.0.0.1:6379").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                    }
                });
                spawned.lock().unwrap_or_else(|e| panic!("{e}")).push(pipe);
            }
        });
        RedisRelay { port, open, pipes }
    }

    /// Drops every open connection and every new one until `reopen`.
    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for pipe in self.pipes.lock().unwrap_or_else(|e| panic!("{e}")).drain(..) {
            pipe.abort();
        }
    }

    fn reopen(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn config(&self, mock: &MockUpstream) -> String {
        config(mock).replace("redis://127.0.0.1:6379", &format!("redis://127.0.0.1:{}", self.port))
    }
}

/// An instance whose Redis is reached through a relay the test can cut, and a user (id, key)
/// holding a profile named `name` with a $10 budget on `openai/mock`.
async fn behind_relay(name: &str) -> (MockUpstream, RedisRelay, TestApp, String, String) {
    let mock = MockUpstream::start().await;
    let relay = RedisRelay::start().await;
    let app = TestApp::start_with_config(Backend::Sqlite, &relay.config(&mock)).await;
    let (user, key) = key_holder(
        &app,
        json!({
            "name": name,
            "budgets": [{"max_limit": 10, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        }),
    )
    .await;
    (mock, relay, app, user, key)
}

/// Regression: a settlement was given up after about five seconds without Redis, and its charge
/// was lost. It is now retried until Redis is back (for up to 25 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_settled_while_redis_is_away_lands_once_it_is_back() {
    let (mock, relay, app, user, key) = behind_relay("Patient").await;
    mock.script.chunk_delay_ms.store(150, Ordering::SeqCst);
    let mut body = chat(5);
    body["stream"] = json!(true);
    let cut_midway = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        relay.cut();
    };
    let (delivered, ()) = tokio::join!(app.raw_stream(&key, &body, usize::MAX), cut_midway);
    assert!(delivered.contains("[DONE]"), "the stream in flight completes: {delivered}");
    tokio::time::sleep(Duration::from_secs(7)).await; // longer than settlements used to wait
    relay.reopen();
    tokio::time::sleep(Duration::from_secs(7)).await; // the next retry (waits grow to 5 s) and the writer
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await;
    let spent = copies.expect(200)["access_profiles"][0]["budgets"][0]["current_usage"].as_f64().unwrap_or(-1.0);
    assert!(spent > 0.0, "the charge of the request settled during the outage was kept: {spent}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_goes_away_requests_are_refused_not_let_through() {
    let (mock, relay, app, _, key) = behind_relay("Guarded").await;
    app.with_key(&key).post("/v1/chat/completions", chat(5)).await.expect(200);
    tokio::time::sleep(Duration::from_millis(300)).await; // its settlement, in the background, is done
    relay.cut();
    let asked = std::time::Instant::now();
    let refused = app.with_key(&key).post("/v1/chat/completions", chat(5)).await;
    assert!(asked.elapsed() < Duration::from_secs(2), "refused promptly, not after a long hang: {:?}", asked.elapsed());
    assert_eq!((refused.status.as_u16(), refused.body["type"].clone()), (503, json!("counters_unavailable")), "{}", refused.body);
    assert!(
        !refused.body.to_string().contains("6379") && !refused.body.to_string().contains("redis://"),
        "no internal detail: {}",
        refused.body
    );
    assert_eq!(mock.calls(), 1, "nothing unchecked reached the provider");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_stops_start_up_without_showing_its_password() {
    let toml = "[gateway]\nredis_url = \"redis://:hunter2-secret@127.0.0.1:1\"\n";
    let failed = TestApp::try_start_with_config(Backend::Sqlite, toml).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(failed.contains("usage counters"), "a clear reason: {failed}");
    assert!(!failed.contains("hunter2-secret"), "the password never shows: {failed}");
}

/// `/ready` asks the Redis the counters live in: while it is gone the instance says so (503, no
/// detail), so a load balancer stops sending it requests it would refuse; back, it is ready again.
mod ready_follows_redis {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let relay = RedisRelay::start().await;
        let app = TestApp::start_with_config(backend, &relay.config(&mock)).await;
        app.anonymous().get("/ready").await.expect(200);
        relay.cut();
        let asked = std::time::Instant::now();
        let gone = app.anonymous().get("/ready").await;
        assert!(asked.elapsed() < Duration::from_secs(3), "answered promptly: {:?}", asked.elapsed());
        assert_eq!(gone.expect_error(503), "the usage counters are not answering");
        assert!(!gone.body.to_string().contains("redis://"), "no internal detail: {}", gone.body);
        relay.reopen();
        let mut ready = false;
        for _ in 0..50 {
            if app.anonymous().get("/ready").await.status.as_u16() == 200 {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "ready again once Redis is back");
        app.stop().await;
    }

    scenario_on_both_backends!();
}

/// A `redis-server` of the test's own on a free loopback port, without persistence (as a Redis
/// whose restart loses everything), stopped on drop. Never the shared one: this one is flushed.
struct PrivateRedis {
    server: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or_else(|e| panic!("{e}"), |a| a.port());
        PrivateRedis { server: Self::spawn(port), port }
    }

    fn spawn(port: u16) -> std::process::Child {
        let server = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server starts: {e}"));
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn stop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }

    /// Stops the server and starts an empty one on the same port.
    fn restart(&mut self) {
        self.stop();
        self.server = Self::spawn(self.port);
    }

    fn flush_all(&self) {
        let flushed = std::process::Command::new("redis-cli").args(["-p", &self.port.to_string(), "FLUSHALL"]).output();
        assert!(flushed.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("OK")), "FLUSHALL answered OK");
    }

    fn config(&self, mock: &MockUpstream) -> String {
        let shared = std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        config(mock).replace(&shared, &format!("redis://127.0.0.1:{}", self.port))
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server with the mock provider and counters in memory; the scenarios below start a replica
/// on a Redis of their own beside it.
async fn app_beside_private_redis(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let text = config(&mock);
    let without_redis = text.lines().filter(|line| !line.starts_with("redis_")).collect::<Vec<_>>().join("\n");
    let app = TestApp::start_with_config(backend, &without_redis).await;
    (app, mock)
}

/// Posts a $0.005 request to `instance`, asking again while the counters are unavailable (a
/// restarted Redis is reconnected to on the next call); returns the status that is not 503.
async fn post_once_counted(instance: &TestApp, key: &str) -> (u16, Value) {
    for _ in 0..20 {
        let answer = instance.with_key(key).post("/v1/chat/completions", chat(5)).await;
        if answer.status.as_u16() != 503 {
            return (answer.status.as_u16(), answer.body["type"].clone());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the counters stayed unavailable");
}

// Regression: a Redis restarted without persistence (or flushed) served a spent budget again
// from zero — five more requests on a spent $5 budget — and the database kept the larger of the
// old and the new spend instead of their sum.
with_mock_upstream! { app_beside_private_redis;
    async fn a_redis_that_loses_its_data_still_refuses_a_spent_budget_and_every_charge_is_stored(app, mock) {
        let (user, key) = key_holder(app, json!({
            "name": "Forgetful",
            "budgets": [{"max_limit": 0.06, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        })).await;
        let mut redis = PrivateRedis::start();
        let replica = app.start_replica(&redis.config(mock)).await;
        mock.script.prompt_tokens.store(0, Ordering::SeqCst);
        for _ in 0..5 {
            replica.with_key(&key).post("/v1/chat/completions", chat(5)).await.expect(200);
        }
        // Two streams of $0.005 whose settlements meet a Redis that lost everything: one flushed
        // while it runs, one whose Redis is restarted empty while it runs.
        mock.script.chunk_delay_ms.store(100, Ordering::SeqCst);
        let mut streamed = chat(5);
        streamed["stream"] = json!(true);
        let flush_midway = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            redis.flush_all();
        };
        let (delivered, ()) = tokio::join!(replica.raw_stream(&key, &streamed, usize::MAX), flush_midway);
        assert!(delivered.contains("[DONE]"), "{delivered}");
        let (delivered, ()) = tokio::join!(replica.raw_stream(&key, &streamed, usize::MAX), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            redis.restart();
        });
        assert!(delivered.contains("[DONE]"), "{delivered}");
        mock.script.chunk_delay_ms.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await; // the second settlement's retry reaches the new Redis

        let mut served = 0;
        loop {
            match post_once_counted(&replica, &key).await {
                (200, _) => served += 1,
                (402, kind) => {
                    assert_eq!(kind, "budget_exceeded");
                    break;
                }
                other => panic!("unexpected answer {other:?}"),
            }
            assert!(served <= 5, "more served than the budget holds");
        }
        assert_eq!(served, 5, "$0.035 spent before: room for five more of $0.005");
        redis.flush_all();
        assert_eq!(post_once_counted(&replica, &key).await.0, 402, "still spent after a flush");
        redis.restart();
        assert_eq!(post_once_counted(&replica, &key).await.0, 402, "still spent after a restart without persistence");
        assert_eq!(mock.calls(), 12, "only what the budget holds reached the provider");

        tokio::time::sleep(Duration::from_millis(1500)).await; // the usage writer persists
        let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
        assert_eq!(copies["access_profiles"][0]["budgets"][0]["current_usage"], 0.06, "the sum of twelve charges is stored");
        replica.stop().await;
    }
}
