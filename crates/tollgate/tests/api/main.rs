//! End-to-end tests of the management API: the real server on port 0, real HTTP, each scenario
//! on SQLite and on Postgres.
#![expect(clippy::panic, reason = "test helpers fail the test loudly")]

/// Runs each scenario once per backend, as `<scenario>::sqlite` and `<scenario>::postgres`, on a
/// server made by `TestApp::start`, or by `start <fn>;` (an `async fn(Backend) -> TestApp`).
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident: &TestApp) $body:block)*) => {
        on_both_backends! { start TestApp::start; $(async fn $name($app: &TestApp) $body)* }
    };
    (start $start:path; $(async fn $name:ident($app:ident: &TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports, reason = "each scenario uses a different part of the prelude")]
                use super::*;

                async fn scenario($app: &TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $start(Backend::Sqlite).await;
                    scenario(&app).await;
                    app.stop().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let app = $start(Backend::Postgres).await;
                    scenario(&app).await;
                    app.stop().await;
                }
            }
        )*
    };
}

/// In a module whose `async fn scenario(backend: Backend)` starts and stops its own servers (it
/// restarts them, or needs settings the other macros do not give), the tests `sqlite` and
/// `postgres` that run it on each backend.
macro_rules! scenario_on_both_backends {
    () => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite() {
            scenario(tollgate_testkit::Backend::Sqlite).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres() {
            scenario(tollgate_testkit::Backend::Postgres).await;
        }
    };
}

/// Runs each scenario against a server and mock upstream made by `$start(backend)`, once per
/// backend. `owned` scenarios take the app by value and hand it back (so they can restart it).
macro_rules! with_mock_upstream {
    ($start:ident; $(async fn $name:ident($app:ident, $mock:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports, reason = "each scenario uses a different part of the prelude")]
                use super::*;

                async fn scenario($app: &TestApp, $mock: &MockUpstream) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let (app, mock) = $start(Backend::Sqlite).await;
                    scenario(&app, &mock).await;
                    app.stop().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let (app, mock) = $start(Backend::Postgres).await;
                    scenario(&app, &mock).await;
                    app.stop().await;
                }
            }
        )*
    };
    (owned $start:ident; $(async fn $name:ident($app:ident, $mock:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports, reason = "each scenario uses a different part of the prelude")]
                use super::*;

                async fn scenario($app: TestApp, $mock: &MockUpstream) -> TestApp $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let (app, mock) = $start(Backend::Sqlite).await;
                    scenario(app, &mock).await.stop().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let (app, mock) = $start(Backend::Postgres).await;
                    scenario(app, &mock).await.stop().await;
                }
            }
        )*
    };
}

mod anthropic;
mod api_keys;
mod assignments;
mod auth;
mod binary;
mod budget_alerts;
mod cluster;
mod concurrency;
mod config_as_code;
mod copy_writes;
mod crash;
mod directory;
mod egress;
mod enforcement;
mod envelope;
mod escalation;
mod exactness;
mod explained;
mod gateway;
mod hardening;
mod lifecycle;
mod log_content;
mod log_hours;
mod logs;
mod mcp;
mod mcp_clients;
mod mcp_governed;
mod metrics;
mod models;
mod openapi;
mod profiles;
mod provider_secrets;
mod providers;
mod replicas;
mod rotation;
mod scale;
mod sdk;
mod startup;
mod tls;
mod traces;
mod updates;
mod usage_store;
mod versions_audit;

/// Both path families of the access-profile routes.
pub const FAMILIES: [&str; 2] = ["/api/governance/access-profiles", "/api/access-profiles"];

/// Creates a role through the API and returns its id.
pub async fn create_role(app: &tollgate_testkit::TestApp, name: &str) -> i64 {
    let reply = app.admin().post("/api/governance/rbac/roles", serde_json::json!({"name": name})).await;
    reply.expect(200)["role"]["id"].as_i64().unwrap_or_else(|| panic!("no role id in {}", reply.body))
}

/// Creates a user (optionally in a role) through the API and returns its id.
pub async fn create_user(app: &tollgate_testkit::TestApp, email: &str, role_id: Option<i64>) -> String {
    let body = serde_json::json!({"name": email.split('@').next().unwrap_or(email), "email": email, "role_id": role_id});
    let reply = app.admin().post("/api/governance/users", body).await;
    reply.expect(200)["user"]["id"].as_str().unwrap_or_else(|| panic!("no user id in {}", reply.body)).to_owned()
}

/// Attaches a profile to a role as its default, giving current members a copy.
pub async fn attach_default(app: &tollgate_testkit::TestApp, profile_id: i64, role_id: i64) -> serde_json::Value {
    let body = serde_json::json!({"role_ids": [role_id], "is_default": true, "apply_to_existing": true});
    app.admin().post(&format!("{}/{profile_id}/roles", FAMILIES[0]), body).await.expect(200).clone()
}

/// Reveals the first key of the user's first copy (as an admin hands it over).
pub async fn reveal_key(app: &tollgate_testkit::TestApp, user: &str) -> String {
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await;
    let kid = copies.expect(200)["access_profiles"][0]["virtual_key_ids"][0].as_str().unwrap_or_default().to_owned();
    let revealed = app.admin().post(&format!("/api/governance/users/{user}/virtual-keys/{kid}/reveal"), serde_json::json!({})).await;
    revealed.expect(200)["virtual_key"]["value"].as_str().unwrap_or_default().to_owned()
}

/// A user holding a copy of `profile` (through a role named after it); returns (user, key).
pub async fn key_holder(app: &tollgate_testkit::TestApp, profile: serde_json::Value) -> (String, String) {
    let name = profile["name"].as_str().unwrap_or("p").to_lowercase().replace(' ', "_");
    let id = create_profile(app, profile).await;
    let role = create_role(app, &name).await;
    let user = create_user(app, &format!("{name}@example.com"), Some(role)).await;
    attach_default(app, id, role).await;
    let key = reveal_key(app, &user).await;
    (user, key)
}

/// Creates a profile through the API and returns its id.
pub async fn create_profile(app: &tollgate_testkit::TestApp, body: serde_json::Value) -> i64 {
    let reply = app.admin().post(FAMILIES[0], body).await;
    reply.expect(201)["access_profile"]["id"].as_i64().unwrap_or_else(|| panic!("no id in {}", reply.body))
}
