//! Provider management: CRUD of providers and keys, secrets sealed at rest and redacted in answers.

use serde_json::json;
use tollgate_testkit::{Backend, TestApp};

/// A server whose operator lets provider keys read `OPENAI_API_KEY` (decision 106).
async fn env_allowing_app(backend: Backend) -> TestApp {
    TestApp::start_with_config(backend, "[gateway]\nprovider_key_env_allow = [\"OPENAI_API_KEY\"]\n").await
}

on_both_backends! { start env_allowing_app;
    async fn providers_and_keys_have_crud_and_never_show_secrets(app: &TestApp) {
        let created = app.admin().post("/api/providers", json!({
            "provider": "openai",
            "network_config": {"base_url": "https://api.openai.com/v1", "max_retries": 2},
            "keys": [{"name": "primary", "value": "sk-proj-abcdefghijklmnopqrstuvwxyz0123", "models": ["*"]}]
        })).await.expect(200).clone();
        assert_eq!((created["name"].clone(), created["provider_status"].clone()), (json!("openai"), json!("active")));
        app.admin().post("/api/providers", json!({"provider": "openai"})).await.expect_error(409);
        app.admin().post("/api/providers", json!({"provider": "bad name!"})).await.expect_error(400);
        app.admin().post("/api/providers", json!({"provider": "x", "network_config": {"base_url": "ftp://x"}})).await.expect_error(400);
        let listed = app.admin().get("/api/providers").await.expect(200).clone();
        assert_eq!(listed["total"], 1);

        let keys = app.admin().get("/api/providers/openai/keys").await.expect(200).clone();
        let key = &keys["keys"][0];
        assert_eq!((key["name"].clone(), key["value"]["value"].clone(), key["value"]["from_env"].clone()), (json!("primary"), json!("sk-p…0123"), json!(false)));
        let id = key["id"].as_str().unwrap_or_default().to_owned();
        let env = app.admin().post("/api/providers/openai/keys", json!({"name": "from-env", "value": "env.OPENAI_API_KEY", "weight": 2})).await.expect(200).clone();
        assert_eq!((env["value"]["env_var"].clone(), env["value"]["from_env"].clone(), env["weight"].clone()), (json!("OPENAI_API_KEY"), json!(true), json!(2.0)));
        app.admin().post("/api/providers/openai/keys", json!({"name": "primary", "value": "sk-other-0000000000000"})).await.expect_error(409);
        app.admin().post("/api/providers/openai/keys", json!({"value": ""})).await.expect_error(400);
        app.admin().post("/api/providers/nobody/keys", json!({"value": "sk-x-000000000000000"})).await.expect_error(404);

        // Echoing the redacted value back keeps the secret; a new value replaces it.
        let kept = app.admin().put(&format!("/api/providers/openai/keys/{id}"), json!({"name": "primary", "value": "sk-p…0123", "enabled": false})).await.expect(200).clone();
        assert_eq!((kept["enabled"].clone(), kept["value"]["value"].clone()), (json!(false), json!("sk-p…0123")));
        let sealed_before = sealed(app, &id).await;
        app.admin().put(&format!("/api/providers/openai/keys/{id}"), json!({"name": "primary", "value": "sk-p…0123"})).await.expect(200);
        assert_eq!(sealed(app, &id).await, sealed_before, "the stored secret is untouched");
        let replaced = app.admin().put(&format!("/api/providers/openai/keys/{id}"), json!({"name": "primary", "value": "sk-new-secret-value-9999"})).await.expect(200).clone();
        assert_eq!(replaced["value"]["value"], "sk-n…9999");
        assert_ne!(sealed(app, &id).await, sealed_before);

        let everything = app.admin().get("/api/keys").await.expect(200).to_string();
        for secret in ["sk-proj-abcdefghijklmnopqrstuvwxyz0123", "sk-new-secret-value-9999"] {
            assert!(!everything.contains(secret));
            assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM provider_keys WHERE value_sealed LIKE '%{secret}%' OR value_redacted LIKE '%{secret}%'")).await, 0);
        }
        let replaced_provider = app.admin().put("/api/providers/openai", json!({"network_config": {"base_url": "https://proxy.example.com/v1"}})).await.expect(200).clone();
        assert_eq!(replaced_provider["network_config"], json!({"base_url": "https://proxy.example.com/v1"}), "PUT replaces the whole provider");
        let removed = app.admin().delete(&format!("/api/providers/openai/keys/{id}")).await.expect(200).clone();
        assert_eq!(removed["id"].as_str(), Some(id.as_str()));
        app.admin().get(&format!("/api/providers/openai/keys/{id}")).await.expect_error(404);
        let gone = app.admin().delete("/api/providers/openai").await.expect(200).clone();
        assert_eq!(gone["name"], "openai");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM provider_keys").await, 0, "keys go with their provider");
        app.admin().get("/api/providers/openai").await.expect_error(404);
    }
}

on_both_backends! {
    async fn a_provider_needs_a_name_on_create_and_a_custom_one_a_base_type_of_the_contract(app: &TestApp) {
        let missing = app.admin().post("/api/providers", json!({"network_config": {}})).await;
        missing.expect_error(400);
        assert_eq!((missing.body["error"]["type"].clone(), missing.body["error"]["param"].clone()), (json!("validation_error"), json!("provider")));
        let unknown = app.admin().post("/api/providers", json!({"provider": "vllm-local", "custom_provider_config": {"base_provider_type": "llama"}})).await;
        assert!(unknown.expect_error(400).contains("custom_provider_config.base_provider_type"), "{}", unknown.body);
        app.admin().get("/api/providers/vllm-local").await.expect_error(404);

        let custom = json!({"provider": "vllm-local", "custom_provider_config": {"base_provider_type": "vllm", "is_key_less": true}});
        app.admin().post("/api/providers", custom).await.expect(200);
        let refused = app.admin().put("/api/providers/vllm-local", json!({"custom_provider_config": {"base_provider_type": "OpenAI"}})).await;
        assert!(refused.expect_error(400).contains("base_provider_type"), "names are exact: {}", refused.body);
        let kept = app.admin().get("/api/providers/vllm-local").await.expect(200).clone();
        assert_eq!(kept["custom_provider_config"]["base_provider_type"], "vllm", "a refused replacement changes nothing");
        // The replacement body has no name: one sent anyway neither renames nor creates a provider.
        let replaced = app.admin().put("/api/providers/vllm-local", json!({"provider": "other", "network_config": {"max_retries": 1}})).await.expect(200).clone();
        assert_eq!((replaced["name"].clone(), replaced["network_config"]["max_retries"].clone()), (json!("vllm-local"), json!(1)));
        app.admin().get("/api/providers/other").await.expect_error(404);
    }
}

async fn sealed(app: &TestApp, id: &str) -> String {
    let value = app.text(&format!("SELECT value_sealed FROM provider_keys WHERE id = '{id}'")).await;
    assert!(value.starts_with("v1:"), "the secret is sealed: {value}");
    value
}

/// Providers added through the API serve traffic at once, with their keys chosen per request.
mod served {
    use serde_json::json;
    use tollgate_testkit::mock::MockUpstream;
    use tollgate_testkit::{Backend, TestApp};

    use crate::key_holder;

    fn chat() -> serde_json::Value {
        json!({"model": "managed/mock", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    }

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let file = format!("[[providers]]\nname = \"filed\"\nbase_url = \"{}\"\napi_key = \"from-the-file\"\n", mock.base_url());
        let app = TestApp::start_with_config(backend, &file).await;
        let configs =
            json!([{"provider_name": "managed", "allowed_models": ["mock"]}, {"provider_name": "filed", "allowed_models": ["mock"]}]);
        let (_, key) = key_holder(&app, json!({"name": "Managed", "provider_configs": configs})).await;
        let seen = |r: &tollgate_testkit::Reply| r.body["upstream_saw_authorization"].as_str().unwrap_or_default().to_owned();
        let filed = json!({"model": "filed/mock", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let before = app.with_key(&key).post("/v1/chat/completions", filed.clone()).await;
        assert_eq!(seen(&before), "Bearer from-the-file");
        app.with_key(&key).post("/v1/chat/completions", chat()).await.expect_error(400);

        app.admin().post("/api/providers", json!({
            "provider": "managed",
            "network_config": {"base_url": mock.base_url(), "extra_headers": {"x-team": "platform", "Authorization": "Bearer not-this"}},
            "keys": [{"name": "k-on", "value": "key-one", "models": ["mock"]}, {"name": "k-off", "value": "key-off", "enabled": false}]
        })).await.expect(200);
        for _ in 0..5 {
            let r = app.with_key(&key).post("/v1/chat/completions", chat()).await;
            assert_eq!(seen(&r), "Bearer key-one", "the API's provider serves at once; a disabled key is never used");
        }
        let sent = mock.last_request().map(|r| (r.header("x-team"), r.headers.get_all("authorization").iter().count())).unwrap_or_default();
        assert_eq!(sent, ("platform".to_owned(), 1), "extra headers are sent; one cannot replace the credentials");
        let keys = app.admin().get("/api/providers/managed/keys").await.expect(200).clone();
        let on = keys["keys"].as_array().and_then(|a| a.iter().find(|k| k["name"] == "k-on")).map(|k| k["id"].clone()).unwrap_or_default();
        app.admin()
            .put(
                &format!("/api/providers/managed/keys/{}", on.as_str().unwrap_or_default()),
                json!({"name": "k-on", "value": "key-rotated"}),
            )
            .await
            .expect(200);
        let rotated = app.with_key(&key).post("/v1/chat/completions", chat()).await;
        assert_eq!(seen(&rotated), "Bearer key-rotated", "a rotated key is used from the next request");
        app.admin()
            .put(
                &format!("/api/providers/managed/keys/{}", on.as_str().unwrap_or_default()),
                json!({"name": "k-on", "value": "key-rotated", "enabled": false}),
            )
            .await
            .expect(200);
        let none = app.with_key(&key).post("/v1/chat/completions", chat()).await;
        assert_eq!((none.status.as_u16(), none.body["type"].clone()), (503, json!("no_provider_key")));
        app.admin().delete("/api/providers/managed").await.expect(200);
        app.with_key(&key).post("/v1/chat/completions", chat()).await.expect_error(400);
        let after = app.with_key(&key).post("/v1/chat/completions", filed).await;
        assert_eq!(seen(&after), "Bearer from-the-file", "the file's provider is untouched throughout");
        app.stop().await;
    }

    scenario_on_both_backends!();
}

/// Extra headers often carry credentials: their values are sealed at rest, served redacted, and
/// a redacted value sent back keeps the stored one; headers that carry a provider credential
/// (`api-key`, `x-goog-api-key`, `proxy-authorization`) are never sent from them.
mod sealed_headers {
    use serde_json::json;
    use tollgate_testkit::mock::MockUpstream;
    use tollgate_testkit::{Backend, TestApp};

    use crate::key_holder;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let app = TestApp::start(backend).await;
        let headers = json!({
            "x-team": "platform-engineering", "api-key": "azure-secret-0123456789",
            "X-Goog-Api-Key": "google-secret-0123456789", "proxy-authorization": "Basic cHJveHk6c2VjcmV0"
        });
        let created = app
            .admin()
            .post(
                "/api/providers",
                json!({
                    "provider": "managed",
                    "network_config": {"base_url": mock.base_url(), "extra_headers": headers},
                    "keys": [{"name": "k", "value": "key-one", "models": ["mock"]}]
                }),
            )
            .await
            .expect(200)
            .clone();
        let served =
            json!({"x-team": "plat…ring", "api-key": "azur…6789", "X-Goog-Api-Key": "goog…6789", "proxy-authorization": "Basi…cmV0"});
        assert_eq!(created["network_config"]["extra_headers"], served, "answers carry redacted values");
        let read = app.admin().get("/api/providers/managed").await.expect(200).clone();
        assert_eq!(read["network_config"]["extra_headers"], served);
        let stored = app.text("SELECT network_config FROM providers WHERE name = 'managed'").await;
        for secret in ["platform-engineering", "azure-secret", "google-secret", "cHJveHk6c2VjcmV0"] {
            assert!(!stored.contains(secret), "{secret} is sealed at rest: {stored}");
        }
        let (_, key) =
            key_holder(&app, json!({"name": "Sealed", "provider_configs": [{"provider_name": "managed", "allowed_models": ["mock"]}]}))
                .await;
        let chat = json!({"model": "managed/mock", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        app.with_key(&key).post("/v1/chat/completions", chat.clone()).await.expect(200);
        let sent = mock.last_request().unwrap_or_else(|| panic!("the provider was called"));
        assert_eq!(sent.header("x-team"), "platform-engineering", "opened for the call");
        for reserved in ["api-key", "x-goog-api-key", "proxy-authorization"] {
            assert!(sent.headers.get(reserved).is_none(), "{reserved} is reserved: it never comes from extra_headers");
        }
        // A client that reads the provider and writes it back unchanged keeps the real values.
        app.admin().put("/api/providers/managed", json!({"network_config": read["network_config"]})).await.expect(200);
        app.with_key(&key).post("/v1/chat/completions", chat).await.expect(200);
        assert_eq!(mock.last_request().map(|r| r.header("x-team")).unwrap_or_default(), "platform-engineering");
        app.stop().await;
    }

    scenario_on_both_backends!();
}
