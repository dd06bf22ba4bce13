//! End-to-end tests of the management API: the real server on port 0, real HTTP, each scenario
//! on SQLite and on Postgres.
#![expect(clippy::panic, reason = "test helpers fail the test loudly")]

/// Runs each scenario once per backend, as `<scenario>::sqlite` and `<scenario>::postgres`.
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident: &TestApp) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports, reason = "each scenario uses a different part of the prelude")]
                use super::*;

                async fn scenario($app: &TestApp) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = TestApp::start(Backend::Sqlite).await;
                    scenario(&app).await;
                    app.stop().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let app = TestApp::start(Backend::Postgres).await;
                    scenario(&app).await;
                    app.stop().await;
                }
            }
        )*
    };
}

mod api_keys;
mod auth;
mod concurrency;
mod envelope;
mod openapi;
mod profiles;
mod startup;
mod updates;
mod versions_audit;

/// Both path families of the access-profile routes.
pub const FAMILIES: [&str; 2] = ["/api/governance/access-profiles", "/api/access-profiles"];

/// Creates a profile through the API and returns its id.
pub async fn create_profile(app: &tollgate_testkit::TestApp, body: serde_json::Value) -> i64 {
    let reply = app.admin().post(FAMILIES[0], body).await;
    reply.expect(201)["access_profile"]["id"].as_i64().unwrap_or_else(|| panic!("no id in {}", reply.body))
}
