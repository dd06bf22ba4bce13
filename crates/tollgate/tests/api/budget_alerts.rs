//! Budget alerts end to end: real traffic through the mock upstream moves a copy's spend, and a
//! webhook receiver in the test (axum on port 0) checks each alert's signature, counts them and
//! can fail on purpose.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::{attach_default, create_profile, create_role, create_user, reveal_key};

const SECRET: &str = "whsec-test-3f9a1c";
const ALERTS: &str = "/api/governance/budget-alerts";

/// Redis keys of this test process (nextest runs each test in its own process).
static PREFIX: LazyLock<String> = LazyLock::new(|| format!("tollgate-test:{}:", uuid::Uuid::new_v4()));

/// A provider on the mock at $0.001 per output token (nothing for input), quick alert retries,
/// and with `redis` the counters in the CI Redis under this test's own prefix.
fn config(mock: &MockUpstream, redis: bool) -> String {
    let shared = if redis {
        let url = std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        format!("[gateway]\nredis_url = \"{url}\"\nredis_key_prefix = \"{}\"\n", PREFIX.as_str())
    } else {
        String::new()
    };
    format!(
        r#"{shared}
[alerts]
retry_base_ms = 100
max_attempts = 4
timeout_ms = 2000

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

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Got {
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("alert body is not JSON: {e}"))
    }

    /// Verifies the signature the way the README tells a receiver to: HMAC-SHA256 under the
    /// secret over `<x-tollgate-timestamp>.<raw body>`, compared in constant time.
    fn signed_with(&self, secret: &str) -> bool {
        let Some(hex_mac) = self.header("x-tollgate-signature").strip_prefix("sha256=") else { return false };
        let Ok(expected) = hex::decode(hex_mac) else { return false };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
        mac.update(self.header("x-tollgate-timestamp").as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        mac.verify_slice(&expected).is_ok()
    }
}

/// A webhook receiver on port 0 that answers 500 to its first `fail_first` deliveries.
#[derive(Debug, Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    fail_first: Arc<AtomicUsize>,
    url: String,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut got = r.got.lock().unwrap_or_else(|e| panic!("{e}"));
    let status = if got.len() < r.fail_first.load(Ordering::SeqCst) { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
    got.push(Got { headers, body, answered: status.as_u16() });
    status
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let receiver = Receiver {
            url: format!("http://{addr}/hooks/budget"),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
            ..Receiver::default()
        };
        let app = axum::Router::new().route("/hooks/budget", axum::routing::post(receive)).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap_or_else(|e| panic!("{e}")).clone()
    }

    /// Waits (ten seconds at most) until `n` deliveries arrived; returns all of them.
    async fn until(&self, n: usize) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.all();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A user holding a copy of a profile with a $1.00 daily budget; returns (profile, user, key).
async fn budget_holder(app: &TestApp, name: &str) -> (i64, String, String) {
    let profile = create_profile(
        app,
        json!({
            "name": name,
            "budgets": [{"max_limit": 1.0, "reset_duration": "1d"}],
            "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]
        }),
    )
    .await;
    let role = create_role(app, &name.to_lowercase()).await;
    let user = create_user(app, &format!("{}@example.com", name.to_lowercase()), Some(role)).await;
    attach_default(app, profile, role).await;
    let key = reveal_key(app, &user).await;
    (profile, user, key)
}

async fn rule(app: &TestApp, profile: i64, thresholds: Value, url: &str) -> Value {
    let body = json!({"access_profile_id": profile, "thresholds": thresholds, "webhook_url": url, "secret": SECRET});
    app.admin().post(ALERTS, body).await.expect(201)["budget_alert"].clone()
}

/// Spends `tokens` thousandths of a dollar with one chat request, and waits until the writer
/// has stored the copy's spend at `total` dollars.
async fn spend(app: &TestApp, mock: &MockUpstream, user: &str, key: &str, tokens: u64, total: f64) {
    mock.script.prompt_tokens.store(0, Ordering::SeqCst);
    mock.script.completion_tokens.store(tokens, Ordering::SeqCst);
    let body = json!({"model": "openai/mock", "max_tokens": tokens, "messages": [{"role": "user", "content": "hi"}]});
    app.with_key(key).post("/v1/chat/completions", body).await.expect(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
        let stored = copies["access_profiles"][0]["budgets"][0]["current_usage"].as_f64().unwrap_or_default();
        if (stored - total).abs() < 1e-9 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "spend stuck at {stored}, expected {total}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn audit(app: &TestApp, profile: i64, action: &str) -> Value {
    app.admin().get(&format!("/api/governance/access-profiles/{profile}/audit-logs?action={action}")).await.expect(200).clone()
}

async fn start(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock, false)).await;
    (app, mock)
}

async fn start_with_redis(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock, true)).await;
    (app, mock)
}

with_mock_upstream! { start;
    async fn the_webhook_fires_once_at_50_and_once_at_80_percent_signed_and_audited(app, mock) {
        let hook = Receiver::start(0).await;
        let (profile, user, key) = budget_holder(app, "Alerted").await;
        let created = rule(app, profile, json!([100, 80, 50, 80]), &hook.url).await;
        assert_eq!(created["thresholds"], json!([50, 80, 100]), "sorted, each once");
        assert_eq!(created["secret_set"], true);
        spend(app, mock, &user, &key, 600, 0.6).await;
        let got = hook.until(1).await;
        assert_eq!(got.len(), 1, "the 50 % alert: {got:?}");
        let first = got[0].json();
        assert!(got[0].signed_with(SECRET), "signature verifies over timestamp and body: {:?}", got[0].headers);
        assert!(!got[0].signed_with("another secret"));
        assert_eq!(got[0].header("x-tollgate-event-id"), first["event_id"].as_str().unwrap_or("?"));
        assert_eq!((first["threshold_percent"].clone(), first["used"].clone(), first["limit"].clone()), (json!(50), json!(0.6), json!(1.0)));
        assert_eq!((first["user_id"].as_str(), first["access_profile_id"].as_i64()), (Some(user.as_str()), Some(profile)));
        assert_eq!(first["access_profile_name"], "Alerted");
        spend(app, mock, &user, &key, 250, 0.85).await;
        let got = hook.until(2).await;
        assert_eq!(got.len(), 2, "the 80 % alert: {got:?}");
        assert_eq!(got[1].json()["threshold_percent"], 80);
        assert!(got[1].signed_with(SECRET));
        // More spend under 100 % crosses nothing new; give a wrongful alert time to arrive.
        spend(app, mock, &user, &key, 50, 0.9).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let thresholds: Vec<Value> = hook.all().iter().map(|g| g.json()["threshold_percent"].clone()).collect();
        assert_eq!(thresholds, vec![json!(50), json!(80)], "50 and 80 once each, 100 never");
        let stored = app.count("SELECT COUNT(*) FROM budget_alert_events WHERE state = 'delivered' AND attempts = 1").await;
        assert_eq!(stored, 2);
        let sent = audit(app, profile, "alert_sent").await;
        assert_eq!(sent["total_count"], 2, "each alert is in the audit log: {sent}");
        assert_eq!(sent["audit_logs"][0]["user_id"], json!(user));
        assert_eq!(audit(app, profile, "create_alert_rule").await["total_count"], 1);
        let everything = app.admin().get(&format!("/api/governance/access-profiles/{profile}/audit-logs")).await.expect(200).to_string();
        assert!(!everything.contains(SECRET), "the secret is not in the audit log");
    }

    async fn a_receiver_failing_twice_gets_the_alert_on_the_third_attempt(app, mock) {
        let hook = Receiver::start(2).await;
        let (profile, user, key) = budget_holder(app, "Flaky").await;
        rule(app, profile, json!([50]), &hook.url).await;
        spend(app, mock, &user, &key, 600, 0.6).await;
        let got = hook.until(3).await;
        let answered: Vec<u16> = got.iter().map(|g| g.answered).collect();
        assert_eq!(answered, vec![500, 500, 200], "{got:?}");
        let ids: Vec<&str> = got.iter().map(|g| g.header("x-tollgate-event-id")).collect();
        assert!(ids.iter().all(|id| *id == ids[0] && !id.is_empty()), "one event, the same id each time: {ids:?}");
        assert!(got.iter().all(|g| g.signed_with(SECRET) && g.body == got[0].body), "the same body, signed each time");
        let delivered = "SELECT COUNT(*) FROM budget_alert_events WHERE state = 'delivered' AND attempts = 3 AND last_error IS NULL";
        assert_eq!(app.count_reaching(delivered, 1).await, 1);
        let sent = audit(app, profile, "alert_sent").await;
        assert_eq!(sent["total_count"], 1);
        let metadata: Value = serde_json::from_str(sent["audit_logs"][0]["metadata"].as_str().unwrap_or("{}")).unwrap_or_default();
        assert_eq!(metadata["attempts"], 3);
    }

    async fn an_alert_given_up_after_its_last_attempt_is_audited_as_failed(app, mock) {
        let hook = Receiver::start(usize::MAX).await;
        let (profile, user, key) = budget_holder(app, "Down").await;
        rule(app, profile, json!([50]), &hook.url).await;
        spend(app, mock, &user, &key, 600, 0.6).await;
        let failed = "SELECT COUNT(*) FROM budget_alert_events WHERE state = 'failed' AND attempts = 4";
        assert_eq!(app.count_reaching(failed, 1).await, 1, "`max_attempts` attempts, then failed");
        assert_eq!(hook.all().len(), 4);
        assert_eq!(app.text("SELECT last_error FROM budget_alert_events").await, "the webhook answered 500");
        let given_up = audit(app, profile, "alert_failed").await;
        assert_eq!(given_up["total_count"], 1, "{given_up}");
        assert!(given_up["audit_logs"][0]["metadata"].as_str().unwrap_or_default().contains("the webhook answered 500"));
    }

    async fn rules_are_managed_validated_and_never_show_their_secret(app, _mock) {
        let (profile, _, _) = budget_holder(app, "Managed").await;
        let created = rule(app, profile, json!([80]), "http://127.0.0.1:9/hook").await;
        let id = created["id"].as_i64().unwrap_or_default();
        let read = app.admin().get(&format!("{ALERTS}/{id}")).await.expect(200).clone();
        assert_eq!(read["budget_alert"], created);
        let listed = app.admin().get(&format!("{ALERTS}?access_profile_id={profile}&limit=10")).await.expect(200).clone();
        assert_eq!((listed["total_count"].clone(), listed["budget_alerts"][0]["id"].clone()), (json!(1), json!(id)));
        assert_eq!(app.admin().get(&format!("{ALERTS}?access_profile_id={}", profile + 1000)).await.expect(200)["total_count"], 0);
        for shown in [read.to_string(), listed.to_string()] {
            assert!(!shown.contains(SECRET) && !shown.contains("\"secret\""), "no secret in {shown}");
        }
        let stored = app.text(&format!("SELECT secret FROM budget_alert_rules WHERE id = {id}")).await;
        assert!(!stored.contains(SECRET), "sealed at rest");
        // A replacement without a secret keeps the stored one.
        let replaced = app.admin().put(&format!("{ALERTS}/{id}"), json!({"access_profile_id": profile, "thresholds": [90, 60], "webhook_url": "https://hooks.example.com/x", "enabled": false})).await;
        let replaced = replaced.expect(200)["budget_alert"].clone();
        assert_eq!((replaced["thresholds"].clone(), replaced["enabled"].clone(), replaced["secret_set"].clone()), (json!([60, 90]), json!(false), json!(true)));
        assert_eq!(app.text(&format!("SELECT secret FROM budget_alert_rules WHERE id = {id}")).await, stored);

        let bad = [
            (json!({"access_profile_id": profile, "thresholds": [0, 50], "webhook_url": "http://x.example/", "secret": "s"}), "thresholds"),
            (json!({"access_profile_id": profile, "thresholds": [1001], "webhook_url": "http://x.example/", "secret": "s"}), "thresholds"),
            (json!({"access_profile_id": profile, "thresholds": [], "webhook_url": "http://x.example/", "secret": "s"}), "thresholds"),
            (json!({"access_profile_id": profile, "thresholds": [50], "webhook_url": "ftp://x.example/", "secret": "s"}), "webhook_url"),
            (json!({"access_profile_id": profile, "thresholds": [50], "webhook_url": "not a url", "secret": "s"}), "webhook_url"),
            (json!({"access_profile_id": profile, "thresholds": [50], "webhook_url": "http://169.254.169.254/latest", "secret": "s"}), "cloud-metadata"),
            (json!({"access_profile_id": profile, "thresholds": [50], "webhook_url": "http://x.example/"}), "secret"),
            (json!({"access_profile_id": profile + 1000, "thresholds": [50], "webhook_url": "http://x.example/", "secret": "s"}), "access_profile_id"),
            (json!({"access_profile_id": profile, "thresholds": ["half"], "webhook_url": "http://x.example/", "secret": "s"}), ""),
            (json!({"access_profile_id": profile, "thresholds": [50], "webhook_url": "http://x.example/", "secret": "s", "colour": 1}), ""),
        ];
        for (body, param) in bad {
            let reply = app.admin().post(ALERTS, body.clone()).await;
            let message = reply.expect_error(400).to_owned();
            assert!(message.contains(param), "{body} → {message}");
        }
        assert_eq!(app.admin().get(&format!("{ALERTS}?access_profile_id={profile}")).await.expect(200)["total_count"], 1, "nothing bad was stored");
        app.admin().get(&format!("{ALERTS}/{}", id + 1000)).await.expect_error(404);
        app.anonymous().get(ALERTS).await.expect_error(401);
        assert_eq!(app.admin().delete(&format!("{ALERTS}/{id}")).await.expect(200)["budget_alert"]["id"], id);
        app.admin().get(&format!("{ALERTS}/{id}")).await.expect_error(404);
        let trail = app.admin().get(&format!("/api/governance/access-profiles/{profile}/audit-logs")).await.expect(200).clone();
        let actions: Vec<&str> = trail["audit_logs"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
        for action in ["create_alert_rule", "update_alert_rule", "delete_alert_rule"] {
            assert!(actions.contains(&action), "{action} missing from {actions:?}");
        }
        assert!(!trail.to_string().contains(SECRET));
    }
}

with_mock_upstream! { start_with_redis;
    async fn two_instances_crossing_the_same_threshold_deliver_it_once(app, mock) {
        // The first attempt fails, so the retry is up for grabs between the two instances too.
        let hook = Receiver::start(1).await;
        let (profile, user, key) = budget_holder(app, "Twice").await;
        let replica = app.start_replica(&config(mock, true)).await;
        rule(app, profile, json!([50]), &hook.url).await;
        // Each instance charges the line past 50 % and sees the crossing in its own flush.
        spend(app, mock, &user, &key, 550, 0.55).await;
        spend(&replica, mock, &user, &key, 50, 0.6).await;
        spend(app, mock, &user, &key, 50, 0.65).await;
        spend(&replica, mock, &user, &key, 50, 0.7).await;
        let delivered = "SELECT COUNT(*) FROM budget_alert_events WHERE state = 'delivered'";
        assert_eq!(app.count_reaching(delivered, 1).await, 1);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let got = hook.all();
        let answered: Vec<u16> = got.iter().map(|g| g.answered).collect();
        assert_eq!(answered, vec![500, 200], "one event, one failed attempt and one delivery between both instances: {got:?}");
        assert_eq!(got[0].header("x-tollgate-event-id"), got[1].header("x-tollgate-event-id"));
        assert_eq!(app.count("SELECT COUNT(*) FROM budget_alert_events").await, 1);
        assert_eq!(audit(app, profile, "alert_sent").await["total_count"], 1);
        replica.stop().await;
    }
}
