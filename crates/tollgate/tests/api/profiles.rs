//! Template endpoints on both path families: list, create, get, delete, activate, clone.

use serde_json::json;
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, attach_default, create_profile, create_role, create_user};

fn full_profile(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "description": "for the platform team",
        "tags": ["eng", "prod"],
        "provider_configs": [{
            "provider_name": "openai",
            "allowed_models": ["gpt-4o", "gpt-4o-mini"],
            "budgets": [{"max_limit": 25.5, "reset_duration": "1d"}],
            "rate_limit": {"request_max_limit": 100, "request_reset_duration": "1h"}
        }, {"provider_name": "anthropic", "all_models_allowed": true}],
        "budgets": [{"max_limit": 100, "reset_duration": "1M"}, {"max_limit": 900, "reset_duration": "1Q", "reset_config": {"quarter_start_month": 4}}],
        "rate_limit": {"token_max_limit": 500_000, "token_reset_duration": "1d", "request_max_limit": 1000, "request_reset_duration": "1h"},
        "calendar_aligned": true,
        "auto_rotation_interval": "30d",
        "mcp_tool_groups": [{"tool_group_id": 3}],
        "mcp_servers": [{"mcp_server_id": "github"}],
        "mcp_tool_overrides": [{"mcp_client_id": "jira", "tool_name": "create_issue", "action": "include"}]
    })
}

on_both_backends! {
    async fn create_returns_201_with_every_field_and_starts_inactive(app: &TestApp) {
        for (i, family) in FAMILIES.iter().enumerate() {
            let reply = app.admin().post(family, full_profile(&format!("Engineering {i}"))).await;
            let p = &reply.expect(201)["access_profile"];
            assert_eq!(p["is_active"], false);
            assert_eq!(p["version"], 1);
            assert_eq!(p["description"], "for the platform team");
            assert_eq!(p["tags"], json!(["eng", "prod"]));
            assert_eq!(p["calendar_aligned"], true);
            assert_eq!(p["auto_rotation_interval"], 30_i64 * 86_400 * 1_000_000_000);
            assert!(p["next_rotation_at"].is_string());
            assert!(p.get("last_rotation_at").is_none());
            assert_eq!(p["budgets"][0]["max_limit"], 100.0);
            assert_eq!(p["budgets"][0]["scope"], "total");
            assert_eq!(p["budgets"][0]["current_usage"], 0.0);
            assert!(p["budgets"][0]["id"].is_string());
            assert_eq!(p["budgets"][1]["reset_config"]["quarter_start_month"], 4);
            assert!(p["budgets"][0].get("reset_config").is_none(), "unset optional members are omitted");
            assert_eq!(p["rate_limit"]["token_max_limit"], 500_000);
            assert!(p["rate_limit"]["id"].is_string());
            let openai = &p["provider_configs"][0];
            assert!(openai["id"].is_i64());
            assert_eq!(openai["budgets"][0]["scope"], "provider:openai");
            assert_eq!(openai["budgets"][0]["max_limit"], 25.5);
            assert_eq!(openai["rate_limit"]["request_max_limit"], 100);
            assert_eq!(p["provider_configs"][1]["all_models_allowed"], true);
            assert!(p["provider_configs"][1].get("rate_limit").is_none());
            assert_eq!(p["mcp_tool_groups"], json!([{"tool_group_id": 3}]));
            assert_eq!(p["mcp_servers"], json!([{"mcp_server_id": "github"}]));
            assert_eq!(p["mcp_tool_overrides"][0]["action"], "include");
            let id = p["id"].as_i64().unwrap_or_default();
            let got = app.admin().get(&format!("{family}/{id}")).await;
            assert_eq!(got.expect(200)["access_profile"], *p, "what create returns is what get returns");
        }
    }

    async fn get_returns_roles_and_a_real_user_count(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Support"})).await;
        for family in FAMILIES {
            let body = app.admin().get(&format!("{family}/{id}")).await.expect(200).clone();
            assert_eq!(body["roles"], json!([]));
            assert_eq!(body["user_count"], 0);
        }
        let role = create_role(app, "support").await;
        create_user(app, "sam@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        let body = app.admin().get(&format!("{}/{id}", FAMILIES[1])).await.expect(200).clone();
        assert_eq!(body["user_count"], 1);
        assert_eq!(body["roles"][0]["role_id"], role);
        assert_eq!(body["roles"][0]["role_name"], "support");
        assert_eq!(body["roles"][0]["is_default"], true);
        assert_eq!(body["roles"][0]["access_profile_id"], id);
    }

    async fn unknown_and_non_integer_ids_are_404_and_400(app: &TestApp) {
        for family in FAMILIES {
            app.admin().get(&format!("{family}/999999")).await.expect_error(404);
            app.admin().get(&format!("{family}/18446744073709551615")).await.expect_error(404);
            let msg = app.admin().get(&format!("{family}/abc")).await.expect_error(400).to_owned();
            assert!(msg.contains("abc"), "{msg}");
            app.admin().get(&format!("{family}/-3")).await.expect_error(400);
            app.admin().put_empty(&format!("{family}/999999/activate")).await.expect_error(404);
            app.admin().delete(&format!("{family}/999999")).await.expect_error(404);
        }
    }

    async fn duplicate_names_conflict_after_trimming_and_ignoring_case(app: &TestApp) {
        create_profile(app, json!({"name": "Data Science"})).await;
        for family in FAMILIES {
            app.admin().post(family, json!({"name": "  data science "})).await.expect_error(409);
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profiles").await, 1, "a refused create stores nothing");
        let stored = app.admin().get(FAMILIES[0]).await.expect(200)["access_profiles"][0]["name"].clone();
        assert_eq!(stored, "Data Science");
    }

    async fn list_filters_pages_and_counts(app: &TestApp) {
        create_profile(app, json!({"name": "Alpha", "tags": ["eng", "prod"], "description": "first team"})).await;
        let beta = create_profile(app, json!({"name": "Beta", "tags": ["eng"]})).await;
        create_profile(app, json!({"name": "Gamma 50%_off", "tags": ["sales"]})).await;
        app.admin().put_empty(&format!("{}/{beta}/activate", FAMILIES[0])).await.expect(200);
        for family in FAMILIES {
            let all = app.admin().get(family).await.expect(200).clone();
            assert_eq!((all["count"].as_i64(), all["total_count"].as_i64()), (Some(3), Some(3)));
            let names = |v: &serde_json::Value| v["access_profiles"].as_array().map(|a| a.iter().map(|p| p["name"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>()).unwrap_or_default();
            assert_eq!(names(&app.admin().get(&format!("{family}?tags=eng")).await.body), ["Alpha", "Beta"]);
            assert_eq!(names(&app.admin().get(&format!("{family}?tags=eng,prod")).await.body), ["Alpha"], "every listed tag must be carried");
            assert_eq!(names(&app.admin().get(&format!("{family}?is_active=true")).await.body), ["Beta"]);
            assert_eq!(names(&app.admin().get(&format!("{family}?search=FIRST")).await.body), ["Alpha"], "search matches the description, case-insensitively");
            assert_eq!(names(&app.admin().get(&format!("{family}?search=50%25_")).await.body), ["Gamma 50%_off"], "% and _ are literal");
            let page = app.admin().get(&format!("{family}?limit=2&offset=1")).await.expect(200).clone();
            assert_eq!(names(&page), ["Beta", "Gamma 50%_off"]);
            assert_eq!((page["count"].as_i64(), page["total_count"].as_i64(), page["limit"].as_i64(), page["offset"].as_i64()), (Some(2), Some(3), Some(2), Some(1)));
            app.admin().get(&format!("{family}?limit=-1")).await.expect_error(400);
            app.admin().get(&format!("{family}?limit=ten")).await.expect_error(400);
            app.admin().get(&format!("{family}?is_active=maybe")).await.expect_error(400);
        }
    }

    async fn delete_is_refused_while_a_user_holds_a_copy(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Contractors"})).await;
        let role = create_role(app, "contractor").await;
        let user = create_user(app, "cy@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        for family in FAMILIES {
            let msg = app.admin().delete(&format!("{family}/{id}")).await.expect_error(409).to_owned();
            assert!(msg.contains("1 user"), "{msg}");
        }
        app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200);
        app.admin().delete(&format!("/api/governance/users/{user}/access-profiles/{id}")).await.expect(200);
        let reply = app.admin().delete(&format!("{}/{id}", FAMILIES[1])).await;
        assert!(reply.expect(200)["message"].is_string());
        app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect_error(404);
    }

    async fn role_attachments_alone_do_not_block_delete(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Interns"})).await;
        let role = create_role(app, "intern").await;
        app.admin().post(&format!("{}/{id}/roles", FAMILIES[0]), json!({"role_ids": [role]})).await.expect(200);
        app.admin().delete(&format!("{}/{id}", FAMILIES[0])).await.expect(200);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profile_roles").await, 0);
    }

    async fn activate_and_deactivate_are_idempotent_and_versioned_once(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Ops"})).await;
        for family in FAMILIES {
            let on = app.admin().put_empty(&format!("{family}/{id}/activate")).await;
            assert_eq!(on.expect(200)["access_profile"]["is_active"], true);
        }
        let p = app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200)["access_profile"].clone();
        assert_eq!(p["version"], 2, "activating twice is one change");
        for family in FAMILIES {
            let off = app.admin().put_empty(&format!("{family}/{id}/deactivate")).await;
            assert_eq!(off.expect(200)["access_profile"]["is_active"], false);
        }
        let p = app.admin().get(&format!("{}/{id}", FAMILIES[1])).await.expect(200)["access_profile"].clone();
        assert_eq!(p["version"], 3);
    }

    async fn clone_copies_policy_with_new_ids_and_nothing_else(app: &TestApp) {
        let id = create_profile(app, full_profile("Source")).await;
        app.admin().put_empty(&format!("{}/{id}/activate", FAMILIES[0])).await.expect(200);
        let role = create_role(app, "cloners").await;
        create_user(app, "cleo@example.com", Some(role)).await;
        attach_default(app, id, role).await;
        let source = app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200)["access_profile"].clone();
        for (i, family) in FAMILIES.iter().enumerate() {
            let reply = app.admin().post(&format!("{family}/{id}/clone"), json!({"name": format!("Copy {i}"), "description": "cloned"})).await;
            let c = reply.expect(201)["access_profile"].clone();
            assert_ne!(c["id"], source["id"]);
            assert_eq!((c["is_active"].clone(), c["version"].clone(), c["description"].clone()), (json!(false), json!(1), json!("cloned")));
            assert_eq!(c["tags"], source["tags"]);
            assert_eq!(c["budgets"][0]["max_limit"], source["budgets"][0]["max_limit"]);
            assert_ne!(c["budgets"][0]["id"], source["budgets"][0]["id"], "budgets get new ids");
            assert_ne!(c["rate_limit"]["id"], source["rate_limit"]["id"]);
            assert_ne!(c["provider_configs"][0]["id"], source["provider_configs"][0]["id"]);
            assert_eq!(c["provider_configs"][0]["allowed_models"], source["provider_configs"][0]["allowed_models"]);
            assert_eq!(c["mcp_tool_overrides"], source["mcp_tool_overrides"]);
            let detail = app.admin().get(&format!("{family}/{}", c["id"])).await.expect(200).clone();
            assert_eq!((detail["user_count"].clone(), detail["roles"].clone()), (json!(0), json!([])));
        }
        app.admin().post(&format!("{}/{id}/clone", FAMILIES[0]), json!({"name": "copy 0"})).await.expect_error(409);
        app.admin().post(&format!("{}/{id}/clone", FAMILIES[0]), json!({"description": "no name"})).await.expect_error(400);
        app.admin().post(&format!("{}/424242/clone", FAMILIES[0]), json!({"name": "x"})).await.expect_error(404);
    }
}
