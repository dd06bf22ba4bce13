//! Management writes that change a few users are applied to the snapshot just for them, and are
//! seen by the very next request; another instance sees them within its reload period.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_testkit::mock::MockUpstream;
use tollgate_testkit::{Backend, TestApp};

use crate::{attach_default, create_profile, create_role, create_user, reveal_key};

fn config(mock: &MockUpstream) -> String {
    format!("[[providers]]\nname = \"openai\"\nbase_url = \"{}\"\napi_key = \"k\"\nmax_retries = 0\n", mock.base_url())
}

fn chat() -> Value {
    json!({"model": "openai/mock", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

async fn started(backend: Backend) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start().await;
    mock.script.prompt_tokens.store(0, Ordering::SeqCst);
    let app = TestApp::start_with_config(backend, &config(&mock)).await;
    (app, mock)
}

/// A role whose default profile allows `openai/mock`; returns its id.
async fn staffed_role(app: &TestApp) -> i64 {
    let profile =
        create_profile(app, json!({"name": "Staff", "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock"]}]})).await;
    let role = create_role(app, "staff").await;
    attach_default(app, profile, role).await;
    role
}

/// The status the key gets on one chat request.
async fn status(app: &TestApp, key: &str) -> u16 {
    app.with_key(key).post("/v1/chat/completions", chat()).await.status.as_u16()
}

/// Asks until the answer's status is `want`, for at most `within`; returns the last status.
async fn until(app: &TestApp, key: &str, want: u16, within: Duration) -> u16 {
    let start = Instant::now();
    loop {
        let got = status(app, key).await;
        if got == want || start.elapsed() > within {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

with_mock_upstream! { started;
    async fn a_user_created_through_the_api_can_use_their_key_at_once_and_others_are_untouched(app, mock) {
        let _ = mock;
        let role = staffed_role(app).await;
        let first = create_user(app, "first@example.com", Some(role)).await;
        let first_key = reveal_key(app, &first).await;
        assert_eq!(status(app, &first_key).await, 200);
        let second = create_user(app, "second@example.com", Some(role)).await;
        let second_key = reveal_key(app, &second).await;
        assert_eq!(status(app, &second_key).await, 200, "no wait for a periodic reload");
        assert_eq!(status(app, &first_key).await, 200, "the other user keeps their key");
    }

    async fn deleting_a_key_or_a_user_refuses_the_key_at_once(app, mock) {
        let _ = mock;
        let role = staffed_role(app).await;
        let user = create_user(app, "gone@example.com", Some(role)).await;
        let key = reveal_key(app, &user).await;
        let extra = app.admin().post(&format!("/api/governance/users/{user}/virtual-keys"), json!({})).await.expect(200).clone();
        let (extra_id, extra_key) = (extra["virtual_key"]["id"].as_str().unwrap_or_default(), extra["virtual_key"]["value"].as_str().unwrap_or_default());
        assert_eq!(status(app, extra_key).await, 200, "a minted key works at once");
        app.admin().delete(&format!("/api/governance/users/{user}/access-profiles/virtual-keys/{extra_id}")).await.expect(200);
        assert_eq!(status(app, extra_key).await, 401, "a deleted key is unknown at once");
        assert_eq!(status(app, &key).await, 200, "the user's other key still works");
        app.admin().delete(&format!("/api/governance/users/{user}")).await.expect(200);
        assert_eq!(status(app, &key).await, 401, "a deleted user's key is unknown at once");
    }

    async fn a_change_made_on_another_instance_is_seen_within_the_reload_period(app, mock) {
        let role = staffed_role(app).await;
        let replica = app.start_replica(&config(mock)).await;
        let user = create_user(&replica, "elsewhere@example.com", Some(role)).await;
        let key = reveal_key(&replica, &user).await;
        assert_eq!(status(&replica, &key).await, 200, "the writing instance serves it at once");
        let period = tollgate_governance::governor::RELOAD_EVERY + Duration::from_secs(2);
        assert_eq!(until(app, &key, 200, period).await, 200, "the other instance sees the new user within the reload period");
        replica.admin().delete(&format!("/api/governance/users/{user}")).await.expect(200);
        assert_eq!(until(app, &key, 401, period).await, 401, "and the deletion too");
        replica.stop().await;
    }

    async fn a_fresh_instance_reads_every_copy_and_key_across_chunks_whatever_their_names_hold(app, mock) {
        let _ = mock;
        // Quotes, a backslash and non-ASCII in the template's name (control characters are
        // refused): the full load reads copies as JSON text the database puts together, so each
        // must survive quoting.
        let name = "Ünïcode \"quoted\" back\\slash / 'single'";
        let body = json!({"name": name, "provider_configs": [{"provider_name": "openai", "allowed_models": ["mock", "odd \"model\" ü"]}]});
        let profile = create_profile(app, body).await;
        let role = create_role(app, "many").await;
        attach_default(app, profile, role).await;
        // More users than one chunk holds (about a hundred copies or keys each).
        let mut users = Vec::new();
        for n in 0..300 {
            users.push(create_user(app, &format!("user{n}@example.com"), Some(role)).await);
        }
        let replica = app.start_replica(&config(mock)).await;
        for user in [&users[0], &users[150], &users[299]] {
            let key = reveal_key(app, user).await;
            assert_eq!(status(&replica, &key).await, 200, "a fresh load knows the key and its copy");
        }
        let copy = app.admin().get(&format!("/api/governance/users/{}/access-profiles", users[7])).await;
        assert!(copy.body.to_string().contains("Ünïcode"), "the copy's name is stored as given: {}", copy.body);
        replica.stop().await;
    }
}
