//! Users, roles and managed virtual keys: CRUD, protection rules, key secrecy and reveal.

use serde_json::{Value, json};
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, attach_default, create_profile, create_role, create_user};

const USERS: [&str; 2] = ["/api/governance/users", "/api/users"];
const ROLES: [&str; 2] = ["/api/governance/rbac/roles", "/api/roles"];

on_both_backends! {
    async fn users_are_created_listed_paged_and_deleted(app: &TestApp) {
        for (i, family) in USERS.iter().enumerate() {
            let user = app.admin().post(family, json!({"name": format!("Person {i}"), "email": format!("p{i}@example.com")})).await.expect(200)["user"].clone();
            assert!(user["id"].is_string());
            assert_eq!(user["role_id"], Value::Null);
        }
        app.admin().post(USERS[0], json!({"name": "Dup", "email": "P0@Example.com"})).await.expect_error(409);
        app.admin().post(USERS[0], json!({"name": "Bad", "email": "not-an-email"})).await.expect_error(400);
        app.admin().post(USERS[0], json!({"name": "Bad", "email": "x@y.z", "role_id": 777})).await.expect_error(400);
        let page = app.admin().get(&format!("{}?limit=1&page=2", USERS[1])).await.expect(200).clone();
        assert_eq!((page["total"].clone(), page["page"].clone(), page["limit"].clone(), page["total_pages"].clone(), page["has_more"].clone()), (json!(2), json!(2), json!(1), json!(2), json!(false)));
        assert_eq!(page["users"][0]["email"], "p1@example.com");
        let found = app.admin().get(&format!("{}?search=P1", USERS[0])).await.expect(200).clone();
        assert_eq!(found["total"], 1);
        app.admin().get(&format!("{}?page=0", USERS[0])).await.expect_error(400);
        let id = found["users"][0]["id"].as_str().unwrap_or_default().to_owned();
        app.admin().delete(&format!("{}/{id}", USERS[1])).await.expect(200);
        app.admin().get(&format!("{}/{id}", USERS[0])).await.expect_error(404);
        app.admin().delete(&format!("{}/{id}", USERS[0])).await.expect_error(404);
    }

    async fn roles_have_crud_and_system_roles_are_protected(app: &TestApp) {
        let roles = app.admin().get(ROLES[0]).await.expect(200)["roles"].clone();
        let system: Vec<&str> = roles.as_array().map(|a| a.iter().filter(|r| r["is_system_role"] == true).filter_map(|r| r["name"].as_str()).collect()).unwrap_or_default();
        assert_eq!(system, ["admin", "developer", "viewer"]);
        let created = app.admin().post(ROLES[1], json!({"name": "data.science_2"})).await.expect(200)["role"].clone();
        assert_eq!((created["dac"].clone(), created["is_system_role"].clone()), (json!("all-data"), json!(false)));
        let id = created["id"].as_i64().unwrap_or_default();
        app.admin().post(ROLES[0], json!({"name": "Data Science"})).await.expect_error(400);
        app.admin().post(ROLES[0], json!({"name": "data.science_2"})).await.expect_error(409);
        let updated = app.admin().put(&format!("{}/{id}", ROLES[0]), json!({"description": "numbers", "dac": "own-data"})).await.expect(200)["role"].clone();
        assert_eq!((updated["name"].clone(), updated["description"].clone(), updated["dac"].clone()), (json!("data.science_2"), json!("numbers"), json!("own-data")));
        let refused = app.admin().delete(&format!("{}/1", ROLES[0])).await;
        assert_eq!(refused.expect(403), &json!({"error": "cannot delete system role"}));
        app.admin().put(&format!("{}/2", ROLES[1]), json!({"name": "devs"})).await.expect_error(403);
        let member = create_user(app, "m@example.com", Some(id)).await;
        app.admin().delete(&format!("{}/{id}", ROLES[0])).await.expect_error(409);
        app.admin().put(&format!("{}/{member}/role", USERS[0]), json!({"role_id": 3})).await.expect(200);
        app.admin().delete(&format!("{}/{id}", ROLES[1])).await.expect(200);
        app.admin().get(&format!("{}/{id}", ROLES[0])).await.expect_error(404);
    }

    async fn key_values_are_never_stored_in_plaintext_and_reveal_is_audited(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Keyed"})).await;
        let role = create_role(app, "keyed").await;
        let user = create_user(app, "kay@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        let minted = app.admin().post(&format!("{}/{user}/virtual-keys", USERS[0]), json!({"name": "laptop"})).await.expect(200)["virtual_key"].clone();
        let value = minted["value"].as_str().unwrap_or_default().to_owned();
        assert!(value.starts_with("sk-bf-") && value.len() == 42, "{value}");
        let keys = app.admin().get(&format!("{}/{user}/virtual-keys", USERS[1])).await.expect(200)["virtual_keys"].clone();
        assert_eq!(keys.as_array().map(Vec::len), Some(2));
        assert!(keys.as_array().is_some_and(|a| a.iter().all(|k| k["is_access_profile_managed"] == true)));
        assert!(!keys.to_string().contains(&value), "lists mask values");
        let body = value.trim_start_matches("sk-bf-");
        let columns = [
            ("virtual_keys", "id || name || value_hash || value_sealed || value_masked || COALESCE(description, '')"),
            ("access_profile_audit_logs", "COALESCE(metadata, '') || COALESCE(new_values, '') || COALESCE(previous_values, '')"),
            ("user_access_profiles", "policy"),
            ("settings", "value"),
        ];
        for (table, text) in columns {
            let hits = app.count(&format!("SELECT COUNT(*) AS n FROM {table} WHERE {text} LIKE '%{body}%'")).await;
            assert_eq!(hits, 0, "{table} holds the plaintext");
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM virtual_keys WHERE value_sealed LIKE 'v1:%'").await, 2, "sealed copies exist");
        let kid = minted["id"].as_str().unwrap_or_default();
        let revealed = app.admin().post(&format!("{}/{user}/virtual-keys/{kid}/reveal", USERS[0]), json!({})).await.expect(200)["virtual_key"].clone();
        assert_eq!(revealed["value"].as_str(), Some(value.as_str()));
        let reveals = app.admin().get(&format!("{}/audit-logs?action=reveal_key&user_id={user}", FAMILIES[0])).await.expect(200).clone();
        assert_eq!(reveals["total_count"], 1);
        assert_eq!(reveals["audit_logs"][0]["actor"], "admin");
        let reader = app.admin().post("/api/api-keys", json!({"name": "vk-reader", "scopes": [65]})).await.expect(200)["key"].clone();
        app.with_key(reader.as_str().unwrap_or_default()).post(&format!("{}/{user}/virtual-keys/{kid}/reveal", USERS[0]), json!({})).await.expect_error(403);
        app.admin().post(&format!("{}/{user}/virtual-keys/nope/reveal", USERS[0]), json!({})).await.expect_error(404);
    }

    async fn managed_keys_refuse_policy_edits_and_direct_deletion(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Locked"})).await;
        let role = create_role(app, "locked").await;
        let user = create_user(app, "lou@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        let keys = app.admin().get(&format!("{}/{user}/virtual-keys", USERS[0])).await.expect(200)["virtual_keys"].clone();
        let kid = keys[0]["id"].as_str().unwrap_or_default().to_owned();
        let path = format!("/api/governance/virtual-keys/{kid}");
        for body in [json!({"budgets": []}), json!({"provider_configs": []}), json!({"name": "x", "rate_limit": null})] {
            let msg = app.admin().put(&path, body).await.expect_error(409).to_owned();
            assert!(msg.contains("managed by an access profile"), "{msg}");
        }
        let renamed = app.admin().put(&path, json!({"name": "Lou's laptop", "description": "daily"})).await.expect(200)["virtual_key"].clone();
        assert_eq!((renamed["name"].clone(), renamed["description"].clone(), renamed["is_access_profile_managed"].clone()), (json!("Lou's laptop"), json!("daily"), json!(true)));
        app.admin().delete(&path).await.expect_error(409);
        assert_eq!(app.admin().get(&path).await.expect(200)["virtual_key"]["name"], "Lou's laptop");
        app.admin().delete(&format!("{}/{user}/access-profiles/virtual-keys/{kid}", USERS[1])).await.expect(200);
        app.admin().get(&path).await.expect_error(404);
    }

    async fn extra_keys_need_a_profile_and_go_with_the_last_copy(app: &TestApp) {
        let plain = create_user(app, "none@example.com", None).await;
        app.admin().post(&format!("{}/{plain}/virtual-keys", USERS[0]), json!({})).await.expect_error(404);
        let id = create_profile(app, json!({"name": "Solo"})).await;
        let role = create_role(app, "solo").await;
        let user = create_user(app, "sol@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        let minted = app.admin().post(&format!("{}/{user}/access-profiles/{id}/virtual-keys", USERS[0]), json!({})).await.expect(200)["virtual_key"].clone();
        assert_eq!(minted["name"], "sol@example.com key 2");
        app.admin().post(&format!("{}/{user}/virtual-keys", USERS[0]), json!({"name": "sol@example.com key 2"})).await.expect_error(409);
        let detached = app.admin().delete(&format!("{}/{user}/access-profiles/{id}", USERS[0])).await.expect(200).clone();
        assert_eq!(detached["deleted_vk_count"], 2, "no key is left that no profile governs");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM virtual_keys").await, 0);
        app.admin().delete(&format!("{}/{user}/access-profiles/{id}", USERS[0])).await.expect_error(404);
    }

    async fn deleting_a_user_removes_their_copies_and_keys(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Leaver"})).await;
        let role = create_role(app, "leavers").await;
        let user = create_user(app, "leo@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        app.admin().delete(&format!("{}/{user}", USERS[0])).await.expect(200);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM virtual_keys").await, 0);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM user_access_profiles").await, 0);
        app.admin().delete(&format!("{}/{id}", FAMILIES[0])).await.expect(200);
    }
}
