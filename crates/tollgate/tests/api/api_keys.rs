//! Management API keys: the value shown once, prefix-only reads, partial updates, delete.

use serde_json::json;
use tollgate_testkit::{Backend, TestApp};

on_both_backends! {
    async fn key_lifecycle_shows_the_value_once(app: &TestApp) {
        let created = app.admin().post("/api/api-keys", json!({"name": "ci", "description": "pipelines", "scopes": [1, 2]})).await.expect(200).clone();
        let key = created["key"].as_str().unwrap_or_default().to_owned();
        let api_key = &created["api_key"];
        let id = api_key["id"].as_i64().unwrap_or_default();
        assert_eq!(api_key["key_prefix"].as_str(), Some(format!("{}...", &key[..13]).as_str()));
        assert_eq!(api_key["scopes"], json!([1, 2]));
        assert_eq!(api_key["description"], "pipelines");
        assert_eq!(api_key["created_by_user_id"], serde_json::Value::Null);
        assert_eq!(api_key["expires_at"], serde_json::Value::Null);
        app.with_key(&key).get("/api/governance/access-profiles").await.expect(200);
        let got = app.admin().get(&format!("/api/api-keys/{id}")).await.expect(200)["api_key"].clone();
        assert!(got["last_used_at"].is_string(), "a use is recorded: {got}");
        assert!(got.get("key").is_none());
        let list = app.admin().get("/api/api-keys").await.expect(200).clone();
        assert_eq!((list["count"].clone(), list["total_count"].clone()), (json!(1), json!(1)));
        let updated = app.admin().put(&format!("/api/api-keys/{id}"), json!({"name": "ci-2", "scopes": [1]})).await.expect(200)["api_key"].clone();
        assert_eq!((updated["name"].clone(), updated["description"].clone(), updated["scopes"].clone()), (json!("ci-2"), json!("pipelines"), json!([1])));
        app.with_key(&key).post("/api/governance/access-profiles", json!({"name": "x"})).await.expect_error(403);
        app.admin().delete(&format!("/api/api-keys/{id}")).await.expect(200);
        app.admin().get(&format!("/api/api-keys/{id}")).await.expect_error(404);
        app.admin().delete(&format!("/api/api-keys/{id}")).await.expect_error(404);
    }

    async fn key_requests_are_validated(app: &TestApp) {
        app.admin().post("/api/api-keys", json!({"name": "dup", "scopes": [1]})).await.expect(200);
        app.admin().post("/api/api-keys", json!({"name": "DUP", "scopes": [1]})).await.expect_error(409);
        app.admin().post("/api/api-keys", json!({"scopes": [1]})).await.expect_error(400);
        let msg = app.admin().post("/api/api-keys", json!({"name": "bad", "scopes": [9]})).await.expect_error(400).to_owned();
        assert!(msg.contains("scopes[0]"), "{msg}");
        app.admin().post("/api/api-keys", json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"})).await.expect_error(400);
        app.admin().post("/api/api-keys", json!({"name": "when", "expires_at": "tomorrow"})).await.expect_error(400);
        app.admin().get("/api/api-keys/zero").await.expect_error(400);
        app.admin().put("/api/api-keys/999", json!({"name": "ghost"})).await.expect_error(404);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM api_keys").await, 1);
    }

    async fn key_list_searches_and_pages(app: &TestApp) {
        for name in ["alpha-ci", "beta-ci", "gamma"] {
            app.admin().post("/api/api-keys", json!({"name": name, "scopes": [1]})).await.expect(200);
        }
        let found = app.admin().get("/api/api-keys?search=CI").await.expect(200).clone();
        assert_eq!(found["total_count"], 2);
        let page = app.admin().get("/api/api-keys?limit=1&offset=2").await.expect(200).clone();
        assert_eq!(page["api_keys"][0]["name"], "gamma");
        assert_eq!((page["count"].clone(), page["total_count"].clone()), (json!(1), json!(3)));
    }

    async fn the_permission_catalogue_is_served_on_both_families(app: &TestApp) {
        for prefix in ["/api/governance/rbac", "/api"] {
            let perms = app.admin().get(&format!("{prefix}/permissions")).await.expect(200)["permissions"].clone();
            assert_eq!(perms[0], json!({"id": 1, "resource": "AccessProfiles", "operation": "View"}));
            let resources = app.admin().get(&format!("{prefix}/resources")).await.expect(200)["resources"].clone();
            assert_eq!(resources[1], json!({"id": 2, "name": "APIKeys"}));
            let ops = app.admin().get(&format!("{prefix}/operations")).await.expect(200)["operations"].clone();
            assert_eq!(ops.as_array().map(Vec::len), Some(5));
        }
    }
}
