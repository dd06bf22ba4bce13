//! Every error a client can cause comes back in the envelope with the right status; a 5xx body
//! carries no internal detail, and a failed write leaves nothing behind.

use reqwest::Method;
use serde_json::json;
use tollgate_testkit::{Backend, TestApp};

use crate::FAMILIES;

on_both_backends! {
    async fn malformed_and_mistyped_bodies_get_400(app: &TestApp) {
        let admin = app.admin();
        let msg = admin.raw(Method::POST, FAMILIES[0], "application/json", b"{\"name\": ".to_vec()).await.expect_error(400).to_owned();
        assert!(msg.starts_with("malformed JSON"), "{msg}");
        let msg = admin.post(FAMILIES[0], json!({"name": 5})).await.expect_error(400).to_owned();
        assert!(msg.contains("name"), "{msg}");
        let msg = admin.post(FAMILIES[0], json!({"description": "no name"})).await.expect_error(400).to_owned();
        assert!(msg.contains("missing field `name`"), "{msg}");
        admin.post(FAMILIES[0], json!([1, 2])).await.expect_error(400);
        admin.raw(Method::POST, FAMILIES[0], "text/plain", b"{\"name\":\"x\"}".to_vec()).await.expect_error(415);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profiles").await, 0);
    }

    async fn nul_characters_are_refused_with_400_not_500(app: &TestApp) {
        // Regression: Postgres cannot store NUL, so a NUL in a search term answered 500 there.
        let msg = app.admin().get(&format!("{}?search=a%00b&tags=x", FAMILIES[0])).await.expect_error(400).to_owned();
        assert!(msg.contains("NUL"), "{msg}");
        app.admin().get("/api/governance/users/abc%00").await.expect_error(400);
        let reply = app.admin().post(FAMILIES[0], json!({"name": "Nul", "description": "a\u{0}b"})).await;
        let msg = reply.expect_error(400).to_owned();
        assert!(msg.starts_with("description: text must not contain NUL"), "{msg}");
        assert_eq!(reply.body["error"]["param"], "description");
        app.admin().post(FAMILIES[0], json!({"name": "Nul", "budgets": [{"max_limit": 1, "reset_duration": "1d", "x\u{0}": 1}]})).await.expect_error(400);
        app.admin().post("/api/governance/rbac/roles", json!({"name": "nul", "description": "\u{0}"})).await.expect_error(400);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profiles").await, 0);
        app.admin().get(&format!("{}?search=plain", FAMILIES[0])).await.expect(200);
    }

    async fn oversize_bodies_get_413(app: &TestApp) {
        let big = format!("{{\"name\":\"big\",\"description\":\"{}\"}}", "x".repeat(tollgate_admin::MAX_BODY_BYTES + 10));
        let reply = app.admin().raw(Method::POST, FAMILIES[0], "application/json", big.into_bytes()).await;
        let msg = reply.expect_error(413).to_owned();
        assert!(msg.contains("1048576"), "{msg}");
    }

    async fn unknown_routes_and_wrong_methods_get_404_and_405(app: &TestApp) {
        app.anonymous().get("/nowhere").await.expect_error(404);
        app.admin().get("/api/governance/nothing-here").await.expect_error(404);
        app.admin().get(&format!("{}/1/propagate-nothing", FAMILIES[0])).await.expect_error(404);
        let reply = app.admin().raw(Method::PATCH, FAMILIES[0], "application/json", b"{}".to_vec()).await;
        reply.expect_error(405);
        assert!(reply.headers.get("allow").is_some(), "405 names the allowed methods");
        app.admin().delete(FAMILIES[1]).await.expect_error(405);
    }

    async fn inference_routes_run_under_the_same_middleware_as_the_management_api(app: &TestApp) {
        // A request id is given to every answer, or the caller's echoed back.
        let reply = app.anonymous().post("/v1/chat/completions", json!({"model": "openai/gpt-4o", "messages": []})).await;
        reply.expect_error(401);
        assert!(reply.headers.get("x-request-id").is_some_and(|v| !v.is_empty()), "the inference answer names its request id");
        let reply = app.with_header("x-request-id", "trace-me-7").post("/anthropic/v1/messages", json!({"model": "m"})).await;
        assert_eq!(reply.headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-me-7"));
        // An error from below the handlers is put in the envelope there too.
        let reply = app.anonymous().get("/v1/chat/completions").await;
        reply.expect_error(405);
        assert!(reply.headers.get("allow").is_some(), "405 names the allowed methods");
        // A NUL in the path is refused before any handler sees it.
        app.anonymous().get("/v1/models%00x").await.expect_error(400);
    }

    async fn errors_carry_the_request_id_as_event_id(app: &TestApp) {
        let reply = app.admin().get(&format!("{}/77", FAMILIES[0])).await;
        reply.expect_error(404);
        let header = reply.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(!header.is_empty());
        assert_eq!(reply.body["event_id"], header.as_str());
        assert_eq!(reply.body["error"]["event_id"], header.as_str());
        assert_eq!(reply.body["error"]["type"], "not_found");
    }

    async fn a_storage_failure_is_a_bare_500_and_writes_nothing(app: &TestApp) {
        app.sql("DROP TABLE access_profile_audit_logs").await;
        let reply = app.admin().post(FAMILIES[0], json!({"name": "Doomed", "tags": ["t"]})).await;
        let msg = reply.expect_error(500).to_owned();
        assert_eq!(msg, "internal error");
        let body = reply.body.to_string().to_lowercase();
        for leak in ["audit", "sql", "table", "relation", "database"] {
            assert!(!body.contains(leak), "500 body leaks '{leak}': {body}");
        }
        assert!(reply.body["event_id"].is_string(), "the id to find the logged detail");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profiles").await, 0, "the transaction rolled back");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profile_tags").await, 0);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profile_versions").await, 0);
    }
}
