//! The served OpenAPI document: a snapshot, so every contract change shows up as a diff, and a
//! check that both path families and every documented route are in it.

use serde_json::Value;
use tollgate_testkit::{Backend, TestApp};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

/// Run with `UPDATE_SNAPSHOTS=1` to accept an intended change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_snapshot() {
    let app = TestApp::start(Backend::Sqlite).await;
    let served = app.anonymous().get("/openapi.json").await.expect(200).clone();
    let pretty = serde_json::to_string_pretty(&served).unwrap_or_default() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &pretty).unwrap_or_else(|e| panic!("cannot write {SNAPSHOT}: {e}"));
    }
    let stored = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(stored == pretty, "the OpenAPI document changed; review it and rerun with UPDATE_SNAPSHOTS=1");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_covers_both_path_families_and_marks_the_old_one_deprecated() {
    let app = TestApp::start(Backend::Sqlite).await;
    let doc = app.anonymous().get("/openapi.json").await.expect(200).clone();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let canonical = [
        ("/api/governance/access-profiles", &["get", "post"][..]),
        ("/api/governance/access-profiles/audit-logs", &["get"][..]),
        ("/api/governance/access-profiles/{profile_id}", &["get", "put", "delete"][..]),
        ("/api/governance/access-profiles/{profile_id}/activate", &["put"][..]),
        ("/api/governance/access-profiles/{profile_id}/deactivate", &["put"][..]),
        ("/api/governance/access-profiles/{profile_id}/clone", &["post"][..]),
        ("/api/governance/access-profiles/{profile_id}/versions", &["get"][..]),
        ("/api/governance/access-profiles/{profile_id}/versions/{version}", &["get"][..]),
        ("/api/governance/access-profiles/{profile_id}/audit-logs", &["get"][..]),
    ];
    for (path, methods) in canonical {
        let alias = path.replace("/api/governance/access-profiles", "/api/access-profiles");
        for method in methods {
            assert!(paths.get(path).and_then(|p| p.get(*method)).is_some(), "{method} {path} missing");
            let old = paths.get(&alias).and_then(|p| p.get(*method)).cloned().unwrap_or(Value::Null);
            assert_eq!(old["deprecated"], true, "{method} {alias} must be present and deprecated");
        }
    }
    for path in [
        "/api/api-keys",
        "/api/api-keys/{id}",
        "/api/governance/rbac/permissions",
        "/api/permissions",
        "/api/models",
        "/health",
        "/ready",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().map(|s| s.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(schemes, ["BasicAuth", "ManagementBearerAuth"]);
    app.stop().await;
}
