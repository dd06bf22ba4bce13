//! Scheduled rotation of managed keys: a due key gets a new value within the scheduler's tick,
//! the old value works through the grace period and then stops, every rotation is audited, and
//! the schedule survives restarts and runs once among several instances.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, attach_default, create_profile, create_role, create_user, key_holder, reveal_key};

/// A provider on the mock, the scheduler looking every second, and a grace of `grace` seconds.
fn config(mock: &MockUpstream, grace: u64) -> String {
    format!(
        "[keys]\nrotation_grace_secs = {grace}\nrotation_check_secs = 1\n\n\
         [[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\nmax_retries = 0\nmodels = [\"mock\"]\n",
        mock.base_url()
    )
}

fn chat() -> Value {
    json!({"model": "openai/mock", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
}

fn rotating(name: &str) -> Value {
    json!({"name": name, "auto_rotation_interval": "1h", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})
}

fn at(value: &Value) -> DateTime<Utc> {
    match value.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => t.with_timezone(&Utc),
        None => panic!("no time in {value}"),
    }
}

/// Moves the profile's next rotation to `secs` seconds from now, through the API.
async fn due_in(app: &TestApp, profile: i64, secs: i64) {
    let when = (tollgate_core::clock::now() + chrono::Duration::seconds(secs)).to_rfc3339();
    app.admin().put(&format!("{}/{profile}", FAMILIES[0]), json!({"next_rotation_at": when})).await.expect(200);
}

async fn profile_id(app: &TestApp, user: &str) -> (i64, String) {
    let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
    let copy = &copies["access_profiles"][0];
    (copy["parent_profile_id"].as_i64().unwrap_or_default(), copy["virtual_key_ids"][0].as_str().unwrap_or_default().to_owned())
}

/// The key as the API serves it, once it has been rotated (waits up to 20 s).
async fn rotated(app: &TestApp, key_id: &str) -> Value {
    for _ in 0..100 {
        let key = app.admin().get(&format!("/api/governance/virtual-keys/{key_id}")).await.expect(200)["virtual_key"].clone();
        if key.get("rotated_at").is_some() {
            return key;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("key {key_id} was not rotated");
}

async fn rotations(app: &TestApp, profile: i64) -> Vec<Value> {
    let logs = app.admin().get(&format!("{}/{profile}/audit-logs?action=rotate_key", FAMILIES[0])).await.expect(200).clone();
    logs["audit_logs"].as_array().cloned().unwrap_or_default()
}

async fn sleep_until(when: DateTime<Utc>) {
    let left = (when - tollgate_core::clock::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(300)).await;
}

async fn started(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    let app = TestApp::start_with_config(backend, &config(&mock, 4)).await;
    (app, mock)
}

with_mock_upstream! { owned started;
    async fn rotation_gives_a_due_key_a_new_value_and_the_old_one_works_only_through_the_grace(app, mock) {
        let _ = mock;
        let (user, old) = key_holder(&app, rotating("Rotating")).await;
        let (profile, key_id) = profile_id(&app, &user).await;
        app.with_key(&old).post("/v1/chat/completions", chat()).await.expect(200);
        due_in(&app, profile, 1).await;
        let key = rotated(&app, &key_id).await;
        let new = reveal_key(&app, &user).await;
        assert_ne!(new, old, "the audited reveal shows the new value");
        assert_eq!(key["value"].as_str().map(|v| &v[..10]), Some(&new[..10]), "the masked value is the new one's");
        app.with_key(&new).post("/v1/chat/completions", chat()).await.expect(200);
        let grace_end = at(&key["previous_value_expires_at"]);
        assert!(grace_end > tollgate_core::clock::now(), "checked within the grace period");
        app.with_key(&old).post("/v1/chat/completions", chat()).await.expect(200);
        let audit = rotations(&app, profile).await;
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert_eq!((audit[0]["actor"].clone(), audit[0]["user_id"].clone()), (json!("system:rotation"), json!(user)));
        let metadata = audit[0]["metadata"].as_str().unwrap_or_default();
        assert!(metadata.contains(&key_id) && !metadata.contains(&new) && !metadata.contains(&old), "no secret in the trail: {metadata}");
        let template = app.admin().get(&format!("{}/{profile}", FAMILIES[0])).await.expect(200)["access_profile"].clone();
        assert!(template["last_rotation_at"].is_string(), "{template}");
        assert!(at(&template["next_rotation_at"]) > tollgate_core::clock::now() + chrono::Duration::minutes(59), "the schedule moved on by the interval");
        sleep_until(grace_end).await;
        let refused = app.with_key(&old).post("/v1/chat/completions", chat()).await;
        assert_eq!((refused.status.as_u16(), refused.body["type"].clone()), (401, json!("virtual_key_not_found")));
        app.with_key(&new).post("/v1/chat/completions", chat()).await.expect(200);
        assert_eq!(rotations(&app, profile).await.len(), 1, "one rotation per round");
        app
    }

    async fn rotation_leaves_keys_of_profiles_without_an_interval_alone(app, mock) {
        let _ = mock;
        let (user, key) = key_holder(&app, json!({"name": "Steady", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
        let (profile, key_id) = profile_id(&app, &user).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let served = app.admin().get(&format!("/api/governance/virtual-keys/{key_id}")).await.expect(200)["virtual_key"].clone();
        assert!(served.get("rotated_at").is_none(), "{served}");
        assert_eq!(reveal_key(&app, &user).await, key);
        assert!(rotations(&app, profile).await.is_empty());
        app
    }

    async fn rotation_resumes_after_a_restart_and_the_old_value_keeps_its_grace(app, mock) {
        let (user, old) = key_holder(&app, rotating("Restarted")).await;
        let (profile, key_id) = profile_id(&app, &user).await;
        due_in(&app, profile, 3).await;
        // Stopped before the rotation was due: the next instance finds it in the database.
        let app = app.restart(&config(mock, 10)).await;
        let key = rotated(&app, &key_id).await;
        let new = reveal_key(&app, &user).await;
        assert_ne!(new, old);
        let app = app.restart(&config(mock, 10)).await;
        app.with_key(&old).post("/v1/chat/completions", chat()).await.expect(200);
        app.with_key(&new).post("/v1/chat/completions", chat()).await.expect(200);
        sleep_until(at(&key["previous_value_expires_at"])).await;
        app.with_key(&old).post("/v1/chat/completions", chat()).await.expect_error(401);
        app.with_key(&new).post("/v1/chat/completions", chat()).await.expect(200);
        assert_eq!(rotations(&app, profile).await.len(), 1, "a restart does not rotate again");
        app
    }

    async fn rotation_by_two_instances_on_one_database_happens_once_per_key(app, mock) {
        let role = create_role(&app, "pair").await;
        let profile = create_profile(&app, rotating("Pair")).await;
        let mut users = Vec::new();
        for i in 0..6 {
            users.push(create_user(&app, &format!("pair{i}@example.com"), Some(role)).await);
        }
        attach_default(&app, profile, role).await;
        let mut olds = Vec::new();
        for user in &users {
            olds.push(reveal_key(&app, user).await);
        }
        let replica = app.start_replica(&config(mock, 4)).await;
        due_in(&app, profile, 2).await;
        for user in &users {
            let (_, key_id) = profile_id(&app, user).await;
            rotated(&app, &key_id).await;
        }
        // Both instances have had further passes: nothing may rotate twice.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let audit = rotations(&app, profile).await;
        assert_eq!(audit.len(), users.len(), "exactly one rotation per key: {audit:?}");
        for (user, old) in users.iter().zip(&olds) {
            let new = reveal_key(&app, user).await;
            assert_ne!(&new, old);
            // Whichever instance rotated the key serves the new value at once; the other learns
            // it at its periodic look (the rotation raised the stored generation).
            for (instance, name) in [(&app, "first"), (&replica, "replica")] {
                let mut served = 0;
                for _ in 0..50 {
                    served = instance.with_key(&new).post("/v1/chat/completions", chat()).await.status.as_u16();
                    if served == 200 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                assert_eq!(served, 200, "the {name} instance serves the new value");
            }
        }
        replica.stop().await;
        app
    }
}
