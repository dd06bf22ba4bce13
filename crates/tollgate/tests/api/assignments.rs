//! Templates reaching people: the whole lifecycle scenario, propagate, detach, overrides.

use serde_json::{Value, json};
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, attach_default, create_profile, create_role, create_user};

const USERS: [&str; 2] = ["/api/governance/users", "/api/users"];

async fn copies(app: &TestApp, user: &str) -> Value {
    app.admin().get(&format!("{}/{user}/access-profiles", USERS[0])).await.expect(200)["access_profiles"].clone()
}

fn template() -> Value {
    json!({
        "name": "Engineering",
        "budgets": [{"max_limit": 100, "reset_duration": "1M"}],
        "rate_limit": {"request_max_limit": 60, "request_reset_duration": "1h"},
        "provider_configs": [{"provider_name": "openai", "allowed_models": ["gpt-4o"], "budgets": [{"max_limit": 10, "reset_duration": "1d"}]}]
    })
}

on_both_backends! {
    async fn the_whole_lifecycle_from_template_to_delete(app: &TestApp) {
        let id = create_profile(app, template()).await;
        let role = create_role(app, "engineer").await;
        let attached = app.admin().post(&format!("{}/{id}/roles", FAMILIES[1]), json!({"role_ids": [role], "is_default": true})).await;
        assert_eq!(attached.expect(200)["users_applied"], 0);
        let ann = create_user(app, "ann@example.com", Some(role)).await;
        let bob = create_user(app, "bob@example.com", Some(role)).await;
        let detail = app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200).clone();
        assert_eq!(detail["user_count"], 2);
        assert_eq!(detail["access_profile"]["is_active"], true, "attaching a role activates the template");
        assert_eq!(detail["roles"][0]["is_default"], true);

        let ann_copy = copies(app, &ann).await[0].clone();
        let bob_copy = copies(app, &bob).await[0].clone();
        assert_eq!(ann_copy["parent_profile_id"], id);
        assert_eq!(ann_copy["virtual_key_ids"].as_array().map(Vec::len), Some(1));
        let ann_key = ann_copy["virtual_key_ids"][0].as_str().unwrap_or_default().to_owned();
        let masked = ann_copy["virtual_key_values"][&ann_key].as_str().unwrap_or_default().to_owned();
        assert!(masked.starts_with("sk-bf-") && masked.contains('…') && masked.len() < 20, "{masked}");
        let ann_budget = ann_copy["budgets"][0]["id"].as_str().unwrap_or_default().to_owned();
        assert_ne!(ann_budget, bob_copy["budgets"][0]["id"].as_str().unwrap_or_default(), "each copy has its own counters");
        assert_ne!(ann_budget, detail["access_profile"]["budgets"][0]["id"].as_str().unwrap_or_default());

        // Ann has spent $7 in the current window (the gateway writes this row; here the test does).
        let window = ann_copy["budgets"][0]["last_reset"].as_str().unwrap_or_default().to_owned();
        app.sql(&format!("INSERT INTO budget_usage (budget_id, current_usage, last_reset) VALUES ('{ann_budget}', 7000000, '{window}')")).await;
        assert_eq!(copies(app, &ann).await[0]["budgets"][0]["current_usage"], 7.0);

        app.admin().put(&format!("{}/{id}", FAMILIES[0]), json!({"budgets": [{"max_limit": 250, "reset_duration": "1M"}, {"max_limit": 20, "reset_duration": "1d"}]})).await.expect(200);
        let dry = app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["budgets"], "dry_run": true})).await.expect(200).clone();
        assert_eq!((dry["affected_users"].clone(), dry["applied"].clone(), dry["skipped_users"].clone()), (json!(2), json!(false), json!(0)));
        assert_eq!(copies(app, &ann).await[0]["budgets"][0]["max_limit"], 100.0, "a dry run changes nothing");

        let real = app.admin().post(&format!("{}/{id}/propagate", FAMILIES[1]), json!({"fields": ["budgets"]})).await.expect(200).clone();
        assert_eq!((real["affected_users"].clone(), real["applied"].clone(), real["failed_users"].clone()), (json!(2), json!(true), json!(0)));
        assert_eq!(real["fields"], json!(["budgets"]));
        let ann_after = copies(app, &ann).await[0].clone();
        assert_eq!(ann_after["budgets"][0]["max_limit"], 250.0);
        assert_eq!(ann_after["budgets"][0]["id"].as_str(), Some(ann_budget.as_str()), "same window, same line");
        assert_eq!(ann_after["budgets"][0]["current_usage"], 7.0, "usage survives propagation");
        assert_eq!(ann_after["budgets"][1]["max_limit"], 20.0);
        assert_eq!(ann_after["provider_configs"], ann_copy["provider_configs"], "fields not named stay as they were");
        let again = app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["budgets"]})).await.expect(200).clone();
        assert_eq!((again["affected_users"].clone(), again["skipped_users"].clone()), (json!(0), json!(2)), "nothing left to change");

        let path = format!("{}/{bob}/access-profiles/{id}/budgets/{}/override", USERS[0], copies(app, &bob).await[0]["budgets"][0]["id"].as_str().unwrap_or_default());
        let over = app.admin().put(&path, json!({"amount": 50, "mode": "cycles", "cycles": 2})).await.expect(200).clone();
        assert_eq!(over["effective_max_limit"], 300.0);
        assert_eq!((over["budget"]["override_cycles_remaining"].clone(), over["budget"]["override_cycles_total"].clone()), (json!(2), json!(2)));
        assert_eq!(over["budget"]["override_anchor_reset"], over["budget"]["last_reset"], "anchored to the current window");

        let detached = app.admin().delete(&format!("{}/{ann}/access-profiles/{id}", USERS[1])).await.expect(200).clone();
        assert_eq!(detached["deleted_vk_count"], 1);
        assert_eq!(copies(app, &ann).await, json!([]));
        assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM budget_usage WHERE budget_id = '{ann_budget}'")).await, 0);

        app.admin().delete(&format!("{}/{id}", FAMILIES[0])).await.expect_error(409);
        app.admin().delete(&format!("{}/{bob}/access-profiles/{id}", USERS[0])).await.expect(200);
        app.admin().delete(&format!("{}/{id}", FAMILIES[0])).await.expect(200);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM budget_overrides").await, 0, "the override went with its copy");
        let actions: Vec<String> = app.admin().get(&format!("{}/{id}/audit-logs?limit=50", FAMILIES[0])).await.expect(200)["audit_logs"]
            .as_array().map(|a| a.iter().filter_map(|l| l["action"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
        for action in ["attach_role", "assign", "propagate", "set_override", "unassign", "delete", "activate"] {
            assert!(actions.iter().any(|a| a == action), "{action} missing from {actions:?}");
        }
    }

    async fn reset_usage_zeroes_kept_lines_and_overrides_survive(app: &TestApp) {
        let id = create_profile(app, template()).await;
        let role = create_role(app, "analyst").await;
        let user = create_user(app, "ana@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        let budget = copies(app, &user).await[0]["budgets"][0]["id"].as_str().unwrap_or_default().to_owned();
        app.sql(&format!("INSERT INTO budget_usage (budget_id, current_usage, last_reset) VALUES ('{budget}', 5000000, '2999-01-01T00:00:00.000000Z')")).await;
        let path = format!("{}/{user}/access-profiles/{id}/budgets/{budget}/override", USERS[0]);
        app.admin().put(&path, json!({"amount": 5, "mode": "forever"})).await.expect(200);
        let reply = app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["budgets"], "reset_usage": true})).await;
        assert_eq!(reply.expect(200)["affected_users"], 1, "a reset is a change even when the lines are equal");
        assert_eq!(app.count(&format!("SELECT current_usage AS n FROM budget_usage WHERE budget_id = '{budget}'")).await, 0, "kept line zeroed");
        let restarted = app.count(&format!("SELECT COUNT(*) AS n FROM budget_usage WHERE budget_id = '{budget}' AND last_reset < '2999'")).await;
        assert_eq!(restarted, 1, "its window starts again at the reset, which the data plane adopts");
        assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM budget_overrides WHERE budget_id = '{budget}'")).await, 1, "overrides survive propagation");
    }

    async fn propagate_selects_by_user_and_by_role(app: &TestApp) {
        let id = create_profile(app, template()).await;
        let (red, blue) = (create_role(app, "red").await, create_role(app, "blue").await);
        app.admin().post(&format!("{}/{id}/roles", FAMILIES[0]), json!({"role_ids": [red, blue], "is_default": true})).await.expect(200);
        let r1 = create_user(app, "r1@example.com", Some(red)).await;
        let b1 = create_user(app, "b1@example.com", Some(blue)).await;
        create_user(app, "b2@example.com", Some(blue)).await;
        app.admin().put(&format!("{}/{id}", FAMILIES[0]), json!({"rate_limit": {"request_max_limit": 5, "request_reset_duration": "1h"}})).await.expect(200);
        let only = app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["rate_limit"], "dry_run": true, "user_ids": [r1, "ghost"]})).await.expect(200).clone();
        assert_eq!((only["affected_users"].clone(), only["skipped_users"].clone(), only["user_ids"].clone()), (json!(1), json!(1), json!([r1])));
        let blues = app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["rate_limit"], "group_ids": [blue.to_string()]})).await.expect(200).clone();
        assert_eq!(blues["affected_users"], 2);
        let both = app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), json!({"fields": ["rate_limit"], "dry_run": true, "user_ids": [b1, r1], "group_ids": [red.to_string()]})).await.expect(200).clone();
        assert_eq!(both["user_ids"], json!([r1]), "user_ids and group_ids combine with AND");
        assert_eq!(copies(app, &r1).await[0]["rate_limit"]["request_max_limit"], 60);
        for bad in [json!({"fields": []}), json!({"fields": ["colour"]}), json!({"fields": ["budgets"], "group_ids": ["x"]}), json!({})] {
            app.admin().post(&format!("{}/{id}/propagate", FAMILIES[0]), bad).await.expect_error(400);
        }
        app.admin().post(&format!("{}/987654/propagate", FAMILIES[0]), json!({"fields": ["budgets"]})).await.expect_error(404);
    }

    async fn role_changes_replace_only_role_given_copies(app: &TestApp) {
        let (eng, ops) = (create_role(app, "eng").await, create_role(app, "ops").await);
        let eng_profile = create_profile(app, json!({"name": "Eng"})).await;
        let ops_profile = create_profile(app, json!({"name": "Ops"})).await;
        attach_default(app, eng_profile, eng).await;
        attach_default(app, ops_profile, ops).await;
        let user = create_user(app, "mover@example.com", Some(eng)).await;
        let parents = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|c| c["parent_profile_id"].as_i64()).collect::<Vec<_>>()).unwrap_or_default();
        assert_eq!(parents(&copies(app, &user).await), [eng_profile]);
        app.admin().put(&format!("{}/{user}/role", USERS[0]), json!({"role_id": ops})).await.expect(200);
        assert_eq!(parents(&copies(app, &user).await), [ops_profile], "the old role's copy left, the new one arrived");
        let u = app.admin().get(&format!("{}/{user}", USERS[0])).await.expect(200)["user"].clone();
        assert_eq!((u["role_id"].clone(), u["role"]["name"].clone()), (json!(ops), json!("ops")));
        let keys = app.admin().get(&format!("{}/{user}/virtual-keys", USERS[0])).await.expect(200)["virtual_keys"].clone();
        assert_eq!(keys.as_array().map(Vec::len), Some(1), "the old copy's key went with it");
        app.admin().put(&format!("{}/{user}/role", USERS[0]), json!({"role_id": 4242})).await.expect_error(404);
        app.admin().put(&format!("{}/nobody/role", USERS[0]), json!({"role_id": ops})).await.expect_error(404);
    }

    async fn detaching_a_role_removes_the_copies_it_gave(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Temp"})).await;
        let role = create_role(app, "temps").await;
        let user = create_user(app, "tim@example.com", Some(role)).await;
        let reply = attach_default(app, id, role).await;
        assert_eq!(reply["users_applied"], 1, "apply_to_existing gives the current member a copy");
        let later = create_user(app, "tia@example.com", None).await;
        app.admin().put(&format!("{}/{later}/role", USERS[0]), json!({"role_id": role})).await.expect(200);
        assert_eq!(copies(app, &later).await.as_array().map(Vec::len), Some(1), "gaining the role provisions the default");
        app.admin().delete(&format!("{}/{id}/roles/{role}", FAMILIES[1])).await.expect(200);
        assert_eq!(copies(app, &user).await, json!([]));
        assert_eq!(copies(app, &later).await, json!([]));
        assert_eq!(app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200)["user_count"], 0);
        app.admin().delete(&format!("{}/{id}/roles/{role}", FAMILIES[0])).await.expect_error(404);
        app.admin().post(&format!("{}/{id}/roles", FAMILIES[0]), json!({"role_ids": []})).await.expect_error(400);
        app.admin().post(&format!("{}/{id}/roles", FAMILIES[0]), json!({"role_ids": [99999]})).await.expect_error(404);
    }

    async fn overrides_are_validated_and_refused_on_template_budgets(app: &TestApp) {
        let id = create_profile(app, template()).await;
        let role = create_role(app, "budgeted").await;
        let user = create_user(app, "bea@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        let copy_budget = copies(app, &user).await[0]["budgets"][0]["id"].as_str().unwrap_or_default().to_owned();
        let template_budget = app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200)["access_profile"]["budgets"][0]["id"].as_str().unwrap_or_default().to_owned();
        let base = format!("{}/{user}/access-profiles/{id}/budgets", USERS[0]);
        for bad in [json!({"amount": 0, "mode": "forever"}), json!({"amount": 5, "mode": "cycles"}), json!({"amount": 5, "mode": "forever", "cycles": 2}), json!({"amount": 5, "mode": "weekly"})] {
            app.admin().put(&format!("{base}/{copy_budget}/override"), bad).await.expect_error(400);
        }
        let msg = app.admin().put(&format!("{base}/{template_budget}/override"), json!({"amount": 5, "mode": "forever"})).await.expect_error(400).to_owned();
        assert!(msg.contains("template"), "{msg}");
        app.admin().put(&format!("{base}/nope/override"), json!({"amount": 5, "mode": "forever"})).await.expect_error(404);
        let forever = app.admin().put(&format!("{base}/{copy_budget}/override"), json!({"amount": 5, "mode": "forever"})).await.expect(200).clone();
        assert_eq!(forever["effective_max_limit"], 105.0);
        assert!(forever["budget"].get("override_cycles_remaining").is_none());
        let replaced = app.admin().put(&format!("{base}/{copy_budget}/override"), json!({"amount": 1, "mode": "forever"})).await.expect(200).clone();
        assert_eq!(replaced["effective_max_limit"], 101.0, "PUT replaces, it does not add");
        for _ in 0..2 {
            let removed = app.admin().delete(&format!("{base}/{copy_budget}/override")).await.expect(200).clone();
            assert_eq!(removed["effective_max_limit"], 100.0);
            assert!(removed["budget"].get("override_amount").is_none());
        }
    }
}
