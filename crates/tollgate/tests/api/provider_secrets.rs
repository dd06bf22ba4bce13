//! What a provider defined through the management API may take from the server: only the
//! environment variables the operator allows (never Tollgate's own settings), and never the name
//! of a provider the config file declares.

use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::key_holder;

fn chat(provider: &str) -> Value {
    json!({"model": format!("{provider}/mock"), "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
}

fn seen(reply: &tollgate_testkit::Reply) -> String {
    reply.body["upstream_saw_authorization"].as_str().unwrap_or_default().to_owned()
}

/// `PATH` stands for a provider key the operator exported: the only variable every test process has.
const ALLOW_PATH: &str = "[gateway]\nprovider_key_env_allow = [\"PATH\"]\n";

/// Environment references are checked when written and again when used.
mod environment_references {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let app = TestApp::start_with_config(backend, ALLOW_PATH).await;
        let provider = |keys: Value| json!({"provider": "envy", "network_config": {"base_url": mock.base_url()}, "keys": keys});
        for (name, why) in [
            ("TOLLGATE_ADMIN_PASSWORD", "one of Tollgate's own settings"),
            ("TOLLGATE_ENCRYPTION_KEY", "one of Tollgate's own settings"),
            ("TOLLGATE_TEST_POSTGRES_URL", "one of Tollgate's own settings"),
            ("HOME", "not allowed for provider keys"),
        ] {
            let reply = app.admin().post("/api/providers", provider(json!([{"name": "k", "value": format!("env.{name}")}]))).await;
            assert!(reply.expect_error(400).contains(why), "{name}: {}", reply.body);
            assert_eq!(reply.body["error"]["param"], "keys[0].value", "{}", reply.body);
        }
        app.admin().get("/api/providers/envy").await.expect_error(404);
        app.admin().post("/api/providers", provider(json!([]))).await.expect(200);
        let refused = app.admin().post("/api/providers/envy/keys", json!({"name": "k", "value": "env.TOLLGATE_REDIS_URL"})).await;
        refused.expect_error(400);
        let added = app.admin().post("/api/providers/envy/keys", json!({"name": "k", "value": "env.PATH"})).await.expect(200).clone();
        assert_eq!(added["value"], json!({"value": "", "env_var": "PATH", "from_env": true}));
        let id = added["id"].as_str().unwrap_or_default().to_owned();
        let swapped =
            app.admin().put(&format!("/api/providers/envy/keys/{id}"), json!({"name": "k", "value": "env.TOLLGATE_DATABASE_URL"})).await;
        swapped.expect_error(400);

        let (_, key) =
            key_holder(&app, json!({"name": "Envy", "provider_configs": [{"provider_name": "envy", "allowed_models": ["mock"]}]})).await;
        let reply = app.with_key(&key).post("/v1/chat/completions", chat("envy")).await;
        assert_eq!(seen(&reply), format!("Bearer {}", std::env::var("PATH").unwrap_or_default()), "an allowed variable is read");
        // The operator withdraws the permission: the stored reference is no longer read.
        let app = app.restart("").await;
        let reply = app.with_key(&key).post("/v1/chat/completions", chat("envy")).await;
        assert_eq!((reply.status.as_u16(), reply.body["type"].clone()), (503, json!("no_provider_key")), "{}", reply.body);
        assert_eq!(mock.calls(), 1, "nothing was sent without the key");
        app.stop().await;
    }

    scenario_on_both_backends!();
}

/// The config file's providers stay the file's: the API cannot define one of the same name, and
/// a row stored before the file declared it does not replace it.
mod file_providers_stay_the_files {
    use super::*;

    async fn scenario(backend: Backend) {
        let mock = MockUpstream::start().await;
        let app = TestApp::start(backend).await;
        let stored = json!({"provider": "filed", "network_config": {"base_url": mock.base_url()}, "keys": [{"name": "api", "value": "from-the-api"}]});
        app.admin().post("/api/providers", stored).await.expect(200);
        let (_, key) =
            key_holder(&app, json!({"name": "Filed", "provider_configs": [{"provider_name": "filed", "allowed_models": ["mock"]}]})).await;
        assert_eq!(seen(&app.with_key(&key).post("/v1/chat/completions", chat("filed")).await), "Bearer from-the-api");

        let file =
            |name: &str| format!("[[providers]]\nname = \"{name}\"\nbase_url = \"{}\"\napi_key = \"from-the-file\"\n", mock.base_url());
        let app = app.restart(&format!("{}{}", file("filed"), file("declared"))).await;
        assert_eq!(seen(&app.with_key(&key).post("/v1/chat/completions", chat("filed")).await), "Bearer from-the-file");
        let taken =
            app.admin().post("/api/providers", json!({"provider": "declared", "network_config": {"base_url": mock.base_url()}})).await;
        assert!(taken.expect_error(409).contains("declared in the config file"), "{}", taken.body);
        app.admin().get("/api/providers/declared").await.expect_error(404);
        app.stop().await;
    }

    scenario_on_both_backends!();
}
