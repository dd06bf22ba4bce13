//! Scope escalation: a management key can neither act on a key more powerful than itself, nor
//! revive an expired key, nor reach keys or provider secrets through a route guarded more loosely.

use serde_json::json;
use tollgate_testkit::{Backend, TestApp};

use crate::{attach_default, create_profile, create_role, create_user};

/// Permission ids from the catalogue (`resource_index × 16 + operation + 1`).
const PROFILES_CREATE: u64 = 2;
const PROFILES_DELETE: u64 = 4;
const API_KEYS_ALL: [u64; 4] = [17, 18, 19, 20];
const VIRTUAL_KEYS_VIEW: u64 = 65;
const VIRTUAL_KEYS_CREATE: u64 = 66;
const VIRTUAL_KEYS_DELETE: u64 = 68;
const PROVIDERS_VIEW: u64 = 81;

/// Mints a management key as the admin; returns (id, value).
async fn api_key(app: &TestApp, name: &str, scopes: &[u64]) -> (i64, String) {
    let created = app
        .admin()
        .post("/api/api-keys", json!({"name": name, "scopes": scopes, "expires_at": "2999-01-01T00:00:00Z"}))
        .await
        .expect(200)
        .clone();
    (created["api_key"]["id"].as_i64().unwrap_or_default(), created["key"].as_str().unwrap_or_default().to_owned())
}

on_both_backends! {
    async fn a_key_cannot_change_or_delete_a_key_with_scopes_it_lacks(app: &TestApp) {
        let (_, keeper) = api_key(app, "keeper", &API_KEYS_ALL).await;
        let mut everything: Vec<u64> = API_KEYS_ALL.to_vec();
        everything.push(PROVIDERS_VIEW);
        let (big, _) = api_key(app, "big", &everything).await;
        let path = format!("/api/api-keys/{big}");
        for body in [json!({"name": "renamed"}), json!({"scopes": [17]}), json!({"expires_at": "2998-01-01T00:00:00Z"}), json!({"expires_at": null})] {
            let msg = app.with_key(&keeper).put(&path, body).await.expect_error(403).to_owned();
            assert!(msg.contains("scopes the caller does not hold"), "{msg}");
        }
        app.with_key(&keeper).delete(&path).await.expect_error(403);
        let kept = app.admin().get(&path).await.expect(200)["api_key"].clone();
        assert_eq!((kept["name"].clone(), kept["scopes"].clone(), kept["expires_at"].clone()), (json!("big"), json!(everything), json!("2999-01-01T00:00:00Z")));
        // A key within the caller's own scopes stays manageable.
        let (small, _) = api_key(app, "small", &[17]).await;
        app.with_key(&keeper).put(&format!("/api/api-keys/{small}"), json!({"name": "small-2"})).await.expect(200);
        app.with_key(&keeper).delete(&format!("/api/api-keys/{small}")).await.expect(200);
        app.admin().delete(&path).await.expect(200);
    }

    async fn an_expired_key_cannot_be_revived(app: &TestApp) {
        let (id, value) = api_key(app, "lapsed", &[1, 17, 19]).await;
        app.sql(&format!("UPDATE api_keys SET expires_at = '2001-01-01T00:00:00.000000Z' WHERE id = {id}")).await;
        app.with_key(&value).get("/api/governance/access-profiles").await.expect_error(401);
        let path = format!("/api/api-keys/{id}");
        for body in [json!({"expires_at": null}), json!({"expires_at": ""}), json!({"expires_at": "2999-01-01T00:00:00Z"})] {
            let msg = app.admin().put(&path, body).await.expect_error(409).to_owned();
            assert!(msg.contains("cannot be revived"), "{msg}");
        }
        app.with_key(&value).get("/api/governance/access-profiles").await.expect_error(401);
        let renamed = app.admin().put(&path, json!({"name": "lapsed-2"})).await.expect(200)["api_key"].clone();
        assert_eq!((renamed["name"].clone(), renamed["expires_at"].clone()), (json!("lapsed-2"), json!("2001-01-01T00:00:00Z")));
        app.admin().delete(&path).await.expect(200);
    }

    async fn the_deprecated_mint_route_needs_virtual_keys_create(app: &TestApp) {
        let profile = create_profile(app, json!({"name": "Minted"})).await;
        let role = create_role(app, "minted").await;
        let user = create_user(app, "mint@example.com", Some(role)).await;
        attach_default(app, profile, role).await;
        let (_, profiles_only) = api_key(app, "profiles-only", &[PROFILES_CREATE]).await;
        for family in ["/api/governance/users", "/api/users"] {
            let path = format!("{family}/{user}/access-profiles/{profile}/virtual-keys");
            app.with_key(&profiles_only).post(&path, json!({"name": "sneaky"})).await.expect_error(403);
            app.with_key(&profiles_only).post(&format!("{family}/{user}/virtual-keys"), json!({"name": "sneaky"})).await.expect_error(403);
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM virtual_keys WHERE name = 'sneaky'").await, 0);
        let (_, both) = api_key(app, "both", &[PROFILES_CREATE, VIRTUAL_KEYS_CREATE]).await;
        let minted = app.with_key(&both).post(&format!("/api/users/{user}/access-profiles/{profile}/virtual-keys"), json!({"name": "allowed"})).await.expect(200).clone();
        assert!(minted["virtual_key"]["value"].as_str().is_some_and(|v| v.starts_with("sk-bf-")), "{minted}");
    }

    async fn the_deprecated_key_delete_route_needs_virtual_keys_delete(app: &TestApp) {
        // Regression: `DELETE …/access-profiles/virtual-keys/{vk_id}` revoked a user's key with
        // only `AccessProfiles:Delete`, while the canonical route wants `VirtualKeys:Delete`.
        let profile = create_profile(app, json!({"name": "Revoked"})).await;
        let role = create_role(app, "revoked").await;
        let user = create_user(app, "revoke@example.com", Some(role)).await;
        attach_default(app, profile, role).await;
        let copies = app.admin().get(&format!("/api/governance/users/{user}/access-profiles")).await.expect(200).clone();
        let vk = copies["access_profiles"][0]["virtual_key_ids"][0].as_str().unwrap_or_default().to_owned();
        let path = format!("/api/users/{user}/access-profiles/virtual-keys/{vk}");
        let (_, profiles_only) = api_key(app, "profiles-delete", &[PROFILES_DELETE]).await;
        app.with_key(&profiles_only).delete(&path).await.expect_error(403);
        assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM virtual_keys WHERE id = '{vk}'")).await, 1, "the key is still there");
        let (_, both) = api_key(app, "both-delete", &[PROFILES_DELETE, VIRTUAL_KEYS_DELETE]).await;
        app.with_key(&both).delete(&path).await.expect(200);
        assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM virtual_keys WHERE id = '{vk}'")).await, 0);
    }

    async fn provider_keys_are_listed_under_the_provider_permission(app: &TestApp) {
        app.admin().post("/api/providers", json!({"provider": "openai", "keys": [{"name": "main", "value": "sk-proj-abcdefghijklmnopqrstuvwxyz0123"}]})).await.expect(200);
        let (_, vk_reader) = api_key(app, "vk-reader", &[VIRTUAL_KEYS_VIEW]).await;
        app.with_key(&vk_reader).get("/api/keys").await.expect_error(403);
        let (_, provider_reader) = api_key(app, "provider-reader", &[PROVIDERS_VIEW]).await;
        let keys = app.with_key(&provider_reader).get("/api/keys").await.expect(200).clone();
        assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    }
}
