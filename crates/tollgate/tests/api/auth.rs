//! Deny-by-default authentication of the management API, and permission scopes of API keys.

use serde_json::json;
use tollgate_testkit::{Backend, TestApp};

use crate::FAMILIES;

const PROTECTED: [&str; 6] = [
    "/api/governance/access-profiles",
    "/api/access-profiles/1",
    "/api/governance/access-profiles/audit-logs",
    "/api/api-keys",
    "/api/governance/rbac/permissions",
    "/api/no-such-route",
];

/// A server that does not lock out after a few failed logins (decision 110), since this test
/// tries every wrong credential on every path.
async fn lenient(backend: Backend) -> TestApp {
    TestApp::start_with_config(backend, "[server]\nlogin_max_failures = 1000\n").await
}

on_both_backends! { start lenient;
    async fn every_api_route_refuses_missing_or_wrong_credentials(app: &TestApp) {
        for path in PROTECTED {
            app.anonymous().get(path).await.expect_error(401);
            app.basic("admin", "wrong-password").refused(path).await;
            app.basic("root", tollgate_testkit::ADMIN_PASSWORD).refused(path).await;
            app.with_key("sk-bf-0f7e5a1c-1111-2222-3333-444455556666").refused(path).await;
            app.with_key("bfst-NotARealKeyNotARealKeyNotARealKeyNotARealKey").refused(path).await;
            app.with_header("x-api-key", "bfst-anything").refused(path).await;
            app.with_header("authorization", "Basic !!!not-base64").refused(path).await;
            app.with_header("authorization", "Token abc").refused(path).await;
        }
        let msg = app.with_key("sk-bf-abc").get(FAMILIES[0]).await.expect_error(401).to_owned();
        assert!(msg.contains("virtual keys are not accepted"), "{msg}");
        app.anonymous().post(FAMILIES[0], json!({"name": "sneaky"})).await.expect_error(401);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profiles").await, 0);
    }
}

on_both_backends! {
    async fn public_routes_need_no_credential(app: &TestApp) {
        assert_eq!(app.anonymous().get("/health").await.expect(200)["status"], "ok");
        assert_eq!(app.anonymous().get("/ready").await.expect(200)["status"], "ready");
        assert!(app.anonymous().get("/openapi.json").await.expect(200)["paths"].is_object());
    }

    async fn api_keys_authenticate_within_their_scopes_only(app: &TestApp) {
        let view = 1; // AccessProfiles:View
        let created = app.admin().post("/api/api-keys", json!({"name": "reader", "scopes": [view]})).await.expect(200).clone();
        let key = created["key"].as_str().unwrap_or_default().to_owned();
        let reader = app.with_key(&key);
        reader.get(FAMILIES[0]).await.expect(200);
        reader.get(FAMILIES[1]).await.expect(200);
        let msg = reader.post(FAMILIES[0], json!({"name": "nope"})).await.expect_error(403).to_owned();
        assert!(msg.contains("AccessProfiles:Create"), "{msg}");
        reader.get("/api/api-keys").await.expect_error(403);
        let id = created["api_key"]["id"].clone();
        app.admin().delete(&format!("/api/api-keys/{id}")).await.expect(200);
        reader.get(FAMILIES[0]).await.expect_error(401);
    }

    async fn a_key_cannot_grant_more_than_it_holds(app: &TestApp) {
        // APIKeys:Create (18) and AccessProfiles:View (1) only.
        let minter = app.admin().post("/api/api-keys", json!({"name": "minter", "scopes": [18, 1]})).await.expect(200)["key"].clone();
        let minter = app.with_key(minter.as_str().unwrap_or_default());
        minter.post("/api/api-keys", json!({"name": "child", "scopes": [1]})).await.expect(200);
        let msg = minter.post("/api/api-keys", json!({"name": "escalated", "scopes": [1, 4]})).await.expect_error(403).to_owned();
        assert!(msg.contains("AccessProfiles:Delete"), "{msg}");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM api_keys WHERE name = 'escalated'").await, 0);
    }

    async fn user_and_role_routes_are_scoped_too(app: &TestApp) {
        // Users:View is 49 (resource 3) and RBAC:View is 33 (resource 2).
        let key = app.admin().post("/api/api-keys", json!({"name": "directory-reader", "scopes": [49, 33]})).await.expect(200)["key"].clone();
        let reader = app.with_key(key.as_str().unwrap_or_default());
        reader.get("/api/governance/users").await.expect(200);
        reader.get("/api/governance/rbac/roles").await.expect(200);
        let msg = reader.post("/api/governance/users", json!({"name": "N", "email": "n@example.com"})).await.expect_error(403).to_owned();
        assert!(msg.contains("Users:Create"), "{msg}");
        reader.post("/api/governance/rbac/roles", json!({"name": "sneaky"})).await.expect_error(403);
        reader.get("/api/providers").await.expect_error(403);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 0);
    }

    async fn expired_keys_are_refused(app: &TestApp) {
        let created = app.admin().post("/api/api-keys", json!({"name": "short", "scopes": [1], "expires_at": "2999-01-01T00:00:00Z"})).await.expect(200).clone();
        let key = created["key"].as_str().unwrap_or_default().to_owned();
        app.with_key(&key).get(FAMILIES[0]).await.expect(200);
        app.sql("UPDATE api_keys SET expires_at = '2001-01-01T00:00:00.000000Z'").await;
        let msg = app.with_key(&key).get(FAMILIES[0]).await.expect_error(401).to_owned();
        assert!(msg.contains("expired"), "{msg}");
    }

    async fn secrets_are_stored_only_as_hashes(app: &TestApp) {
        let created = app.admin().post("/api/api-keys", json!({"name": "hashed", "scopes": [1]})).await.expect(200).clone();
        let key = created["key"].as_str().unwrap_or_default().to_owned();
        assert!(key.starts_with("bfst-") && key.len() == 49, "{key}");
        let leaks = app.count(&format!("SELECT COUNT(*) AS n FROM api_keys WHERE key_hash = '{key}' OR key_prefix = '{key}' OR name = '{key}'")).await;
        assert_eq!(leaks, 0);
        let listed = app.admin().get("/api/api-keys").await.expect(200).to_string();
        assert!(!listed.contains(&key), "the list never shows a value");
        let shown = app.admin().get(&format!("/api/api-keys/{}", created["api_key"]["id"])).await.expect(200).to_string();
        assert!(!shown.contains(&key));
    }
}

/// A generated admin credential works, is printed once, and is stored as an Argon2 hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_gets_a_generated_admin_password_stored_as_a_hash() {
    let app = TestApp::start_with(Backend::Sqlite, None).await;
    let (user, password) = app.generated_admin.clone().unwrap_or_default();
    assert_eq!(user, "admin");
    assert!(password.len() >= 32);
    app.basic(&user, &password).get(FAMILIES[0]).await.expect(200);
    app.basic(&user, "not-it").get(FAMILIES[0]).await.expect_error(401);
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM admin_credentials WHERE password_hash LIKE '$argon2id$%'").await, 1);
    assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM admin_credentials WHERE password_hash LIKE '%{password}%'")).await, 0);
    app.stop().await;
}

trait ExpectUnauthorized {
    async fn refused(&self, path: &str);
}

impl ExpectUnauthorized for tollgate_testkit::Client<'_> {
    async fn refused(&self, path: &str) {
        let reply = self.get(path).await;
        reply.expect_error(401);
    }
}
