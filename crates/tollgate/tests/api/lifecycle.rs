//! Deactivating, reactivating and expiring a user's copy and a key through the management API:
//! the gateway refuses at once with 403 and serves again at once; bad input is a 400.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, key_holder};

/// `AccessProfiles:View`, the scope that may read copies but not change them.
const PROFILES_VIEW: u64 = 1;

fn config(mock: &MockUpstream) -> String {
    format!("[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\nmax_retries = 0\nmodels = [\"mock\"]\n", mock.base_url())
}

fn chat() -> Value {
    json!({"model": "openai/mock", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
}

fn profile(name: &str) -> Value {
    json!({"name": name, "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})
}

async fn started(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

/// The user's copy path (on `family`) and the id of its key.
async fn copy_and_key(app: &TestApp, user: &str, family: &str) -> (String, String) {
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
    let copy = &copies["access_profiles"][0];
    let profile = copy["parent_profile_id"].as_i64().unwrap_or_default();
    (format!("{family}/{user}/access-profiles/{profile}"), copy["virtual_key_ids"][0].as_str().unwrap_or_default().to_owned())
}

async fn status(app: &TestApp, key: &str) -> (u16, Value, String) {
    let reply = app.with_key(key).post("/v1/chat/completions", chat()).await;
    let message = reply.body["error"]["message"].as_str().unwrap_or_default().to_owned();
    (reply.status.as_u16(), reply.body["type"].clone(), message)
}

fn in_secs(secs: i64) -> String {
    (tollgate_core::clock::now() + chrono::Duration::seconds(secs)).to_rfc3339()
}

with_mock_upstream! { started;
    async fn deactivating_a_copy_refuses_its_keys_at_once_and_reactivating_serves_them_again(app, mock) {
        let _ = mock;
        let (user, key) = key_holder(app, profile("Paused")).await;
        for family in ["/api/governance/users", "/api/users"] {
            let (copy, _) = copy_and_key(app, &user, family).await;
            let off = app.admin().put(&copy, json!({"is_active": false})).await.expect(200).clone();
            assert_eq!(off["access_profile"]["is_active"], false, "{off}");
            assert_eq!(status(app, &key).await.0, 403);
            assert_eq!(status(app, &key).await.1, json!("access_blocked"));
            let on = app.admin().put(&copy, json!({"is_active": true})).await.expect(200).clone();
            assert_eq!(on["access_profile"]["is_active"], true);
            assert_eq!(status(app, &key).await.0, 200);
        }
        let audit = app.admin().get(&format!("{}/audit-logs?user_id={user}", FAMILIES[0])).await.expect(200).clone();
        let actions: Vec<&str> = audit["audit_logs"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
        assert_eq!(actions.iter().filter(|a| **a == "deactivate").count(), 2, "{actions:?}");
        assert_eq!(actions.iter().filter(|a| **a == "activate").count(), 2, "{actions:?}");
    }

    async fn deactivating_a_key_refuses_it_at_once_and_reactivating_serves_it_again(app, mock) {
        let _ = mock;
        let (user, key) = key_holder(app, profile("Frozen")).await;
        let (_, key_id) = copy_and_key(app, &user, "/api/governance/users").await;
        let path = format!("/api/governance/virtual-keys/{key_id}");
        let off = app.admin().put(&path, json!({"is_active": false})).await.expect(200).clone();
        assert_eq!(off["virtual_key"]["is_active"], false);
        assert_eq!(status(app, &key).await, (403, json!("virtual_key_blocked"), "Virtual key is inactive".to_owned()));
        app.admin().put(&path, json!({"is_active": true})).await.expect(200);
        assert_eq!(status(app, &key).await.0, 200);
    }

    async fn an_expiry_refuses_a_key_and_a_copy_the_moment_it_passes(app, mock) {
        let _ = mock;
        let (user, key) = key_holder(app, profile("Lapsing")).await;
        let (copy, key_id) = copy_and_key(app, &user, "/api/governance/users").await;
        let path = format!("/api/governance/virtual-keys/{key_id}");
        let set = app.admin().put(&path, json!({"expires_at": in_secs(2)})).await.expect(200).clone();
        assert!(set["virtual_key"]["expires_at"].is_string(), "{set}");
        assert_eq!(status(app, &key).await.0, 200, "not yet expired");
        // Checked against the clock at request time, not at the next snapshot reload (every 5 s).
        tokio::time::sleep(Duration::from_millis(2300)).await;
        assert_eq!(status(app, &key).await, (403, json!("virtual_key_blocked"), "Virtual key has expired".to_owned()));
        let cleared = app.admin().put(&path, json!({"expires_at": ""})).await.expect(200).clone();
        assert!(cleared["virtual_key"].get("expires_at").is_none(), "{cleared}");
        assert_eq!(status(app, &key).await.0, 200);
        let set = app.admin().put(&copy, json!({"expires_at": in_secs(2)})).await.expect(200).clone();
        assert!(set["access_profile"]["expires_at"].is_string(), "{set}");
        assert_eq!(status(app, &key).await.0, 200);
        tokio::time::sleep(Duration::from_millis(2300)).await;
        assert_eq!((status(app, &key).await.0, status(app, &key).await.1), (403, json!("access_blocked")));
        app.admin().put(&copy, json!({"expires_at": null})).await.expect(200);
        assert_eq!(status(app, &key).await.0, 200);
    }

    async fn bad_lifecycle_changes_are_refused_with_400_and_change_nothing(app, mock) {
        let _ = mock;
        let (user, key) = key_holder(app, profile("Strict")).await;
        let (copy, key_id) = copy_and_key(app, &user, "/api/governance/users").await;
        let path = format!("/api/governance/virtual-keys/{key_id}");
        for body in [json!({"is_active": "no"}), json!({"is_active": []}), json!({"expires_at": "2001-01-01T00:00:00Z"}),
            json!({"expires_at": "tomorrow"}), json!({"expires_at": 5}), json!({"budgets": []}), json!([]), json!({"is_active": false, "expires_at": "soon"})]
        {
            let reply = app.admin().put(&copy, body.clone()).await;
            assert_eq!((reply.status.as_u16(), reply.body["status_code"].clone()), (400, json!(400)), "copy {body}: {}", reply.body);
        }
        for body in [json!({"is_active": 0}), json!({"expires_at": "2001-01-01T00:00:00Z"}), json!({"is_active": false, "expires_at": "later"})] {
            app.admin().put(&path, body.clone()).await.expect_error(400);
        }
        app.admin().put(&path, json!({"budgets": []})).await.expect_error(409);
        assert_eq!(status(app, &key).await.0, 200, "nothing was changed");
        app.admin().put(&format!("/api/governance/users/{user}/access-profiles/999999"), json!({"is_active": false})).await.expect_error(404);
        app.admin().put("/api/governance/users/nobody/access-profiles/1", json!({"is_active": false})).await.expect_error(404);
        app.admin().put("/api/governance/virtual-keys/nope", json!({"is_active": false})).await.expect_error(404);
    }

    async fn changing_a_copys_lifecycle_needs_access_profiles_update(app, mock) {
        let _ = mock;
        let (user, key) = key_holder(app, profile("Guarded")).await;
        let (copy, key_id) = copy_and_key(app, &user, "/api/governance/users").await;
        let created = app.admin().post("/api/api-keys", json!({"name": "viewer", "scopes": [PROFILES_VIEW]})).await.expect(200).clone();
        let viewer = created["key"].as_str().unwrap_or_default().to_owned();
        app.with_key(&viewer).put(&copy, json!({"is_active": false})).await.expect_error(403);
        app.with_key(&viewer).put(&format!("/api/governance/virtual-keys/{key_id}"), json!({"is_active": false})).await.expect_error(403);
        assert_eq!(status(app, &key).await.0, 200);
    }
}
