//! `GET /api/models`: models named by the enabled keys of API-managed providers and by the config
//! file's providers, the pricing catalog on request, filters, limit and total, permission, errors.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tollgate_testkit::{Backend, TestApp};

/// Two providers declared in the file; `openai` is added through the API in most scenarios,
/// and may read `LLM_TEST_MINI_KEY` from the environment.
const FILE: &str = r#"
[gateway]
provider_key_env_allow = ["LLM_TEST_*"]

[[providers]]
name = "local"
base_url = "http://127.0.0.1:9/v1"
models = ["qwen-2", "llama-3", "*"]

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
models = ["claude-custom"]
"#;

/// ModelProvider:View (resource 6, operation 1).
const MODEL_PROVIDER_VIEW: u64 = 81;

/// A server started with `FILE` as its config file.
async fn declared_app(backend: Backend) -> TestApp {
    TestApp::start_with_config(backend, FILE).await
}

/// Adds `openai` through the API with four keys: `k-star` (gpt-4o and `*`), `k-all` (no list),
/// `k-off` (disabled, gpt-disabled) and `k-mini` (gpt-4o-mini, from the environment).
async fn add_openai(app: &TestApp) {
    app.admin()
        .post(
            "/api/providers",
            json!({
                "provider": "openai",
                "keys": [
                    {"id": "k-star", "name": "k-star", "value": "sk-star-secret-0000000001", "models": ["gpt-4o", "*"]},
                    {"id": "k-all", "name": "k-all", "value": "sk-all-secret-00000000002"},
                    {"id": "k-off", "name": "k-off", "value": "sk-off-secret-00000000003", "models": ["gpt-disabled"], "enabled": false},
                    {"id": "k-mini", "name": "k-mini", "value": "env.LLM_TEST_MINI_KEY", "models": ["gpt-4o-mini"]}
                ]
            }),
        )
        .await
        .expect(200);
}

fn model(provider: &str, name: &str, keys: &[&str]) -> Value {
    json!({"name": name, "provider": provider, "accessible_by_keys": keys})
}

/// `provider/name` of each listed model, in order.
fn names(body: &Value) -> Vec<String> {
    let models = body["models"].as_array().cloned().unwrap_or_default();
    models.iter().map(|m| format!("{}/{}", m["provider"].as_str().unwrap_or("?"), m["name"].as_str().unwrap_or("?"))).collect()
}

async fn list(app: &TestApp, query: &str) -> Value {
    app.admin().get(&format!("/api/models?{query}")).await.expect(200).clone()
}

on_both_backends! { start declared_app;
    async fn models_come_from_enabled_keys_and_the_file_and_no_secret_is_shown(app: &TestApp) {
        add_openai(app).await;
        app.admin().post("/api/providers", json!({"provider": "groq"})).await.expect(200);
        let listed = list(app, "limit=1000").await;
        assert_eq!(listed, json!({
            "models": [
                model("anthropic", "claude-custom", &[]),
                model("local", "llama-3", &[]),
                model("local", "qwen-2", &[]),
                model("openai", "gpt-4o", &["k-all", "k-star"]),
                model("openai", "gpt-4o-mini", &["k-all", "k-mini", "k-star"]),
            ],
            "total": 5
        }), "no `*`, nothing from a disabled key, nothing for a provider without keys");
        let text = listed.to_string();
        for leak in ["secret", "sk-", "…", "LLM_TEST_MINI_KEY", "env."] {
            assert!(!text.contains(leak), "'{leak}' in {text}");
        }

        app.admin().put("/api/providers/openai/keys/k-star", json!({"name": "k-star", "value": "sk-star-secret-0000000001", "models": ["gpt-4o"], "enabled": false})).await.expect(200);
        let listed = list(app, "provider=openai").await;
        assert_eq!(listed["models"], json!([model("openai", "gpt-4o-mini", &["k-all", "k-mini"])]), "a disabled key names and serves nothing");

        app.admin().delete("/api/providers/openai").await.expect(200);
        let listed = list(app, "provider=openai").await;
        assert_eq!(listed["models"], json!([]), "a deleted provider lists nothing");
    }

    async fn unfiltered_adds_the_catalog_models_of_configured_providers_only(app: &TestApp) {
        app.admin().post("/api/providers", json!({"provider": "openai", "keys": [
            {"id": "k-all", "name": "k-all", "value": "sk-all-secret-00000000002", "models": ["*"]},
            {"id": "k-one", "name": "k-one", "value": "sk-one-secret-00000000004", "models": ["gpt-4o"]}
        ]})).await.expect(200);
        let filtered = list(app, "limit=1000").await;
        assert_eq!(filtered, list(app, "limit=1000&unfiltered=false").await);
        assert_eq!(names(&filtered), ["anthropic/claude-custom", "local/llama-3", "local/qwen-2", "openai/gpt-4o"]);

        let catalog = tollgate_governance::pricing::catalog_models().unwrap_or_else(|e| panic!("{e}"));
        let all = list(app, "limit=1000&unfiltered=true").await;
        let listed = names(&all);
        let unique: BTreeSet<&String> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "no duplicates: {listed:?}");
        assert_eq!(all["total"], listed.len());
        let mut expected: Vec<String> = catalog.iter().filter(|n| n.starts_with("openai/") || n.starts_with("anthropic/")).cloned().collect();
        expected.extend(filtered_names_not_in(&catalog, &names(&filtered)));
        expected.sort_by(|a, b| a.split_once('/').cmp(&b.split_once('/')));
        expected.dedup();
        assert_eq!(listed, expected, "the catalog's models of openai and anthropic, not of unconfigured providers, beside the named ones");
        assert!(listed.contains(&"openai/gpt-4o-mini".to_owned()) && listed.contains(&"local/llama-3".to_owned()));
        for m in all["models"].as_array().cloned().unwrap_or_default() {
            let expected_keys = match (m["provider"].as_str(), m["name"].as_str()) {
                (Some("openai"), Some("gpt-4o")) => json!(["k-all", "k-one"]),
                (Some("openai"), _) => json!(["k-all"]),
                _ => json!([]),
            };
            assert_eq!(m["accessible_by_keys"], expected_keys, "{m}");
        }
    }

    async fn query_provider_and_keys_filter_the_list(app: &TestApp) {
        add_openai(app).await;
        assert_eq!(names(&list(app, "query=GPT-4O").await), ["openai/gpt-4o", "openai/gpt-4o-mini"], "case-insensitive substring");
        assert_eq!(names(&list(app, "query=a").await), ["anthropic/claude-custom", "local/llama-3"]);
        assert_eq!(names(&list(app, "provider=local").await), ["local/llama-3", "local/qwen-2"]);
        assert_eq!(list(app, "provider=LOCAL").await["total"], 0, "the provider must match exactly");
        assert_eq!(list(app, "provider=loc").await["total"], 0);
        assert_eq!(names(&list(app, "keys=k-mini").await), ["openai/gpt-4o-mini"]);
        assert_eq!(names(&list(app, "keys=nobody,%20k-star").await), ["openai/gpt-4o", "openai/gpt-4o-mini"], "any one of the listed keys");
        assert_eq!(list(app, "keys=k-off").await["total"], 0, "a disabled key serves nothing");
        assert_eq!(names(&list(app, "query=mini&provider=openai&keys=k-star").await), ["openai/gpt-4o-mini"], "filters combine");
        assert_eq!(list(app, "query=&provider=&keys=").await["total"], 5, "empty filters filter nothing");
    }

    async fn limit_defaults_to_five_and_total_counts_every_match(app: &TestApp) {
        let many: Vec<String> = (1..=7).map(|i| format!("m{i}")).collect();
        app.admin().post("/api/providers", json!({"provider": "bulk", "keys": [{"id": "k-bulk", "value": "sk-bulk-secret-000000005", "models": many}]})).await.expect(200);
        let page = list(app, "provider=bulk").await;
        assert_eq!((names(&page), page["total"].clone()), (["bulk/m1", "bulk/m2", "bulk/m3", "bulk/m4", "bulk/m5"].map(String::from).to_vec(), json!(7)));
        let page = list(app, "provider=bulk&limit=2").await;
        assert_eq!((names(&page), page["total"].clone()), (vec!["bulk/m1".to_owned(), "bulk/m2".to_owned()], json!(7)));
        assert_eq!(list(app, "provider=bulk&limit=1000").await["models"].as_array().map(Vec::len), Some(7));
        assert_eq!(list(app, "limit=1").await["total"], 10, "total counts every provider's matches (7 here, 3 in the file)");
    }

    async fn a_bad_limit_or_unfiltered_is_refused_with_400(app: &TestApp) {
        for limit in ["0", "1001", "-1", "abc", "2.5", ""] {
            let reply = app.admin().get(&format!("/api/models?limit={limit}")).await;
            let msg = reply.expect_error(400).to_owned();
            assert!(msg.contains("limit must be a whole number from 1 to 1000"), "{limit}: {msg}");
            assert_eq!((reply.body["error"]["param"].clone(), reply.body["error"]["type"].clone()), (json!("limit"), json!("invalid_request")));
        }
        for unfiltered in ["yes", "1", ""] {
            let reply = app.admin().get(&format!("/api/models?unfiltered={unfiltered}")).await;
            let msg = reply.expect_error(400).to_owned();
            assert!(msg.contains("unfiltered must be true or false"), "{unfiltered}: {msg}");
            assert_eq!(reply.body["error"]["param"], "unfiltered");
        }
        app.admin().get("/api/models?limit=1&unfiltered=true").await.expect(200);
        app.admin().get("/api/models?limit=1000").await.expect(200);
    }

    async fn listing_models_needs_model_provider_view(app: &TestApp) {
        let viewer = app.admin().post("/api/api-keys", json!({"name": "model-viewer", "scopes": [MODEL_PROVIDER_VIEW]})).await.expect(200)["key"].clone();
        let listed = app.with_key(viewer.as_str().unwrap_or_default()).get("/api/models").await.expect(200).clone();
        assert_eq!(listed["total"], 3, "the file's three models");
        let other = app.admin().post("/api/api-keys", json!({"name": "profile-viewer", "scopes": [1]})).await.expect(200)["key"].clone();
        let msg = app.with_key(other.as_str().unwrap_or_default()).get("/api/models").await.expect_error(403).to_owned();
        assert!(msg.contains("ModelProvider:View"), "{msg}");
        app.anonymous().get("/api/models").await.expect_error(401);
    }
}

/// Names in `filtered` that the catalog does not hold (models named only by keys or the file).
fn filtered_names_not_in(catalog: &[String], filtered: &[String]) -> Vec<String> {
    filtered.iter().filter(|n| !catalog.contains(n)).cloned().collect()
}
