//! Policy as code: roles, profiles, attachments and users declared in the TOML file are applied
//! at start-up, idempotently, and a bad declaration stops start-up naming the entry.

use serde_json::{Value, json};
use tollgate::StartError;
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, create_profile};

const USERS: &str = "/api/governance/users";
const ROLES: &str = "/api/governance/rbac/roles";

const POLICY: &str = r#"
[[roles]]
name = "engineer"
description = "Builds things"

[[access_profiles]]
name = "Engineering"
description = "Everyone who ships code"
tags = ["eng"]
budgets = [{ max_limit = 100, reset_duration = "1M" }]
rate_limit = { request_max_limit = 600, request_reset_duration = "1h" }
provider_configs = [{ provider_name = "openai", allowed_models = ["gpt-4o"] }]

  [[access_profiles.roles]]
  role = "engineer"
  default = true
  apply_to_existing = true

[[access_profiles]]
name = "Sandbox"
active = false
  [[access_profiles.roles]]
  role = "developer"

[[users]]
name = "Ann"
email = "ann@example.com"
role = "engineer"
"#;

async fn profile_named(app: &TestApp, name: &str) -> Value {
    let list = app.admin().get(&format!("{}?search={name}", FAMILIES[0])).await.expect(200).clone();
    let found = list["access_profiles"].as_array().and_then(|a| a.iter().find(|p| p["name"] == name)).cloned();
    found.unwrap_or_else(|| panic!("no profile named {name} in {list}"))
}

async fn user_id(app: &TestApp, email: &str) -> String {
    let list = app.admin().get(&format!("{USERS}?search={email}")).await.expect(200).clone();
    list["users"][0]["id"].as_str().unwrap_or_else(|| panic!("no user {email} in {list}")).to_owned()
}

/// Everything start-up could touch, as the API serves it.
async fn state(app: &TestApp) -> Value {
    let ann = user_id(app, "ann@example.com").await;
    let copies = app.admin().get(&format!("{USERS}/{ann}/access-profiles")).await.expect(200)["access_profiles"].clone();
    let copies: Vec<Value> =
        copies.as_array().map(|a| a.iter().map(|c| json!([c["id"], c["virtual_key_ids"]])).collect()).unwrap_or_default();
    json!({
        "profiles": app.admin().get(FAMILIES[0]).await.expect(200)["access_profiles"],
        "audit_total": app.admin().get(&format!("{}/audit-logs", FAMILIES[0])).await.expect(200)["total_count"],
        "roles": app.admin().get(ROLES).await.expect(200)["roles"],
        "users": app.admin().get(USERS).await.expect(200)["users"],
        "copies": copies,
    })
}

on_both_backends! {
    async fn declared_role_profile_attachment_and_user_exist_after_start(app: &TestApp) {
        let app = TestApp::start_with_config(app.backend, POLICY).await;
        let roles = app.admin().get(ROLES).await.expect(200)["roles"].clone();
        let role = roles.as_array().and_then(|a| a.iter().find(|r| r["name"] == "engineer")).cloned().unwrap_or_default();
        assert_eq!((role["description"].clone(), role["is_system_role"].clone()), (json!("Builds things"), json!(false)));

        let profile = profile_named(&app, "Engineering").await;
        assert_eq!(profile["tags"], json!(["eng"]));
        assert_eq!(profile["budgets"][0]["max_limit"], 100.0);
        assert_eq!(profile["rate_limit"]["request_max_limit"], 600);
        assert_eq!(profile["provider_configs"][0]["allowed_models"], json!(["gpt-4o"]));
        assert_eq!(profile["is_active"], true, "attaching a role activates the template");
        let id = profile["id"].as_i64().unwrap_or_default();
        let detail = app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200).clone();
        assert_eq!((detail["roles"][0]["role_name"].clone(), detail["roles"][0]["is_default"].clone()), (json!("engineer"), json!(true)));
        assert_eq!(detail["user_count"], 1);

        let ann = app.admin().get(&format!("{USERS}/{}", user_id(&app, "ann@example.com").await)).await.expect(200)["user"].clone();
        assert_eq!((ann["name"].clone(), ann["role"]["name"].clone()), (json!("Ann"), json!("engineer")));
        let copies = app.admin().get(&format!("{USERS}/{}/access-profiles", ann["id"].as_str().unwrap_or_default())).await.expect(200)["access_profiles"].clone();
        assert_eq!(copies.as_array().map(Vec::len), Some(1));
        assert_eq!(copies[0]["parent_profile_id"], id);
        assert_eq!(copies[0]["virtual_key_ids"].as_array().map(Vec::len), Some(1), "the copy carries a key");

        let sandbox = profile_named(&app, "Sandbox").await;
        assert_eq!(sandbox["is_active"], false, "the declared state wins over the activation that attaching brings");
        let detail = app.admin().get(&format!("{}/{}", FAMILIES[0], sandbox["id"])).await.expect(200).clone();
        assert_eq!((detail["roles"][0]["role_name"].clone(), detail["roles"][0]["is_default"].clone()), (json!("developer"), json!(false)));

        let logs = app.admin().get(&format!("{}/{id}/audit-logs", FAMILIES[0])).await.expect(200)["audit_logs"].clone();
        assert!(logs.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|l| l["actor"] == "config")), "start-up acts as 'config': {logs}");
        app.stop().await;
    }

    async fn a_second_start_with_the_same_file_changes_nothing(app: &TestApp) {
        let first = TestApp::start_with_config(app.backend, POLICY).await;
        create_profile(&first, json!({"name": "Made by hand"})).await;
        let before = state(&first).await;
        let second = first.restart(POLICY).await;
        let after = state(&second).await;
        assert_eq!(after["audit_total"], before["audit_total"], "no audit entry");
        assert_eq!(after["copies"], before["copies"], "same copy and key ids");
        assert_eq!(after, before, "nothing at all changed");
        assert!(after["profiles"].as_array().is_some_and(|a| a.iter().any(|p| p["name"] == "Made by hand")), "API-made profiles stay");
        second.stop().await;
    }

    async fn editing_the_budget_in_the_file_updates_the_profile_and_nothing_else(app: &TestApp) {
        let first = TestApp::start_with_config(app.backend, POLICY).await;
        let id = profile_named(&first, "Engineering").await["id"].as_i64().unwrap_or_default();
        // A member the file does not mention belongs to whoever set it.
        first.admin().put(&format!("{}/{id}", FAMILIES[0]), json!({"calendar_aligned": true})).await.expect(200);
        let before = state(&first).await;
        let old = profile_named(&first, "Engineering").await;
        let sandbox = profile_named(&first, "Sandbox").await;

        let second = first.restart(&POLICY.replace("max_limit = 100", "max_limit = 250")).await;
        let new = profile_named(&second, "Engineering").await;
        assert_eq!(new["version"], old["version"].as_i64().unwrap_or_default() + 1);
        assert_eq!(new["budgets"][0]["max_limit"], 250.0);
        assert_eq!(new["budgets"][0]["id"], old["budgets"][0]["id"], "the same window keeps its line");
        assert_eq!(new["calendar_aligned"], true, "members the file does not name are left alone");
        for member in ["name", "description", "tags", "rate_limit", "provider_configs", "is_active", "auto_rotation_interval"] {
            assert_eq!(new[member], old[member], "{member} unchanged");
        }
        let after = state(&second).await;
        assert_eq!(after["audit_total"], before["audit_total"].as_i64().unwrap_or_default() + 1, "one audit entry");
        let latest = second.admin().get(&format!("{}/{id}/audit-logs", FAMILIES[0])).await.expect(200)["audit_logs"][0].clone();
        assert_eq!((latest["action"].clone(), latest["actor"].clone()), (json!("update"), json!("config")));
        let changed: Value = serde_json::from_str(latest["new_values"].as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(changed.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()), Some(vec!["budgets".to_owned()]));
        assert_eq!(profile_named(&second, "Sandbox").await, sandbox, "other profiles are untouched");
        for part in ["roles", "users", "copies"] {
            assert_eq!(after[part], before[part], "{part} unchanged");
        }
        second.stop().await;
    }

    async fn a_user_moved_to_another_role_through_the_api_gets_the_declared_role_back(app: &TestApp) {
        let first = TestApp::start_with_config(app.backend, POLICY).await;
        let ann = user_id(&first, "ann@example.com").await;
        first.admin().put(&format!("{USERS}/{ann}/role"), json!({"role_id": 3})).await.expect(200);
        let copies = first.admin().get(&format!("{USERS}/{ann}/access-profiles")).await.expect(200)["access_profiles"].clone();
        assert_eq!(copies, json!([]), "leaving the role took its default copy");

        let second = first.restart(&POLICY.replace("name = \"Ann\"", "name = \"Ann Smith\"")).await;
        let user = second.admin().get(&format!("{USERS}/{ann}")).await.expect(200)["user"].clone();
        assert_eq!((user["role"]["name"].clone(), user["name"].clone()), (json!("engineer"), json!("Ann")), "found by e-mail, not renamed");
        let copies = second.admin().get(&format!("{USERS}/{ann}/access-profiles")).await.expect(200)["access_profiles"].clone();
        assert_eq!(copies[0]["parent_profile_id"], profile_named(&second, "Engineering").await["id"]);
        second.stop().await;
    }

    async fn a_bad_declaration_stops_start_up_with_a_message_naming_it(app: &TestApp) {
        let ops = format!("{POLICY}\n[[access_profiles]]\nname = \"Ops\"\nbudgets = [{{ max_limit = 5, reset_duration = \"1M\", reset_config = {{ quarter_start_month = 2 }} }}]\n");
        let refused = TestApp::try_start_with_config(app.backend, &ops).await.err();
        let Some(StartError::Declared(message)) = &refused else { panic!("expected a declared-policy error, got {refused:?}") };
        assert!(message.starts_with("access_profiles[2] \"Ops\": budgets[0].reset_config:"), "{message}");
        assert!(refused.map(|e| e.to_string()).is_some_and(|m| m.starts_with("declared policy: access_profiles[2]")));

        let running = TestApp::start_with_config(app.backend, POLICY).await;
        let stranger = format!("{POLICY}\n[[users]]\nname = \"Bo\"\nemail = \"bo@example.com\"\nrole = \"nobody\"\n");
        let refused = running.try_restart(&stranger).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("users[1] \"bo@example.com\": role: no role is named \"nobody\""), "{refused}");
    }
}
