//! Partial updates (absent vs null vs value), validation rules, size caps, and the promise that a
//! refused request changes nothing.

use serde_json::{Value, json};
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, create_profile};

fn path(id: i64) -> String {
    format!("{}/{id}", FAMILIES[0])
}

async fn stored(app: &TestApp, id: i64) -> Value {
    app.admin().get(&path(id)).await.expect(200)["access_profile"].clone()
}

fn rich() -> Value {
    json!({
        "name": "Rich",
        "description": "keep me",
        "tags": ["a"],
        "budgets": [{"max_limit": 10, "reset_duration": "1d"}],
        "rate_limit": {"token_max_limit": 1000, "token_reset_duration": "1h"},
        "calendar_aligned": true,
        "auto_rotation_interval": "1d",
        "provider_configs": [{"provider_name": "openai", "allowed_models": ["gpt-4o"]}]
    })
}

on_both_backends! {
    async fn absent_members_keep_their_values(app: &TestApp) {
        let id = create_profile(app, rich()).await;
        let before = stored(app, id).await;
        for family in FAMILIES {
            let reply = app.admin().put(&format!("{family}/{id}"), json!({"tags": ["a", "b"]})).await;
            reply.expect(200);
        }
        let after = stored(app, id).await;
        assert_eq!(after["tags"], json!(["a", "b"]));
        for member in ["name", "description", "budgets", "rate_limit", "calendar_aligned", "auto_rotation_interval", "next_rotation_at", "provider_configs"] {
            assert_eq!(after[member], before[member], "{member} must be kept");
        }
        assert_eq!(after["version"], 2, "two identical edits are one change");
    }

    async fn null_clears_rate_limit_and_description_but_keeps_calendar_alignment(app: &TestApp) {
        let id = create_profile(app, rich()).await;
        let reply = app.admin().put(&path(id), json!({"rate_limit": null, "description": null, "calendar_aligned": null})).await;
        let p = reply.expect(200)["access_profile"].clone();
        assert!(p.get("rate_limit").is_none(), "rate_limit: null removes it: {p}");
        assert_eq!(p["description"], Value::Null);
        assert_eq!(p["calendar_aligned"], true, "calendar_aligned: null leaves it unchanged");
        assert_eq!(stored(app, id).await, p);
    }

    async fn kept_budget_lines_keep_their_ids(app: &TestApp) {
        let id = create_profile(app, rich()).await;
        let before = stored(app, id).await;
        let budget_id = before["budgets"][0]["id"].clone();
        let config_id = before["provider_configs"][0]["id"].clone();
        let rate_id = before["rate_limit"]["id"].clone();
        let body = json!({
            "budgets": [{"max_limit": 20, "reset_duration": "1d"}, {"max_limit": 300, "reset_duration": "1M"}],
            "rate_limit": {"request_max_limit": 5, "request_reset_duration": "1h"},
            "provider_configs": [{"provider_name": "openai", "all_models_allowed": true}, {"provider_name": "mistral"}]
        });
        let p = app.admin().put(&path(id), body).await.expect(200)["access_profile"].clone();
        assert_eq!(p["budgets"][0]["id"], budget_id, "same window, same line");
        assert_eq!(p["budgets"][0]["max_limit"], 20.0);
        assert_ne!(p["budgets"][1]["id"], budget_id);
        assert_eq!(p["rate_limit"]["id"], rate_id);
        assert!(p["rate_limit"].get("token_max_limit").is_none(), "a sent rate limit replaces the old one");
        assert_eq!(p["provider_configs"][0]["id"], config_id, "same provider, same config id");
        assert_ne!(p["provider_configs"][1]["id"], config_id);
    }

    async fn invalid_bodies_are_refused_with_400_naming_the_member(app: &TestApp) {
        let id = create_profile(app, rich()).await;
        let before = stored(app, id).await;
        let cases: Vec<(Value, &str)> = vec![
            (json!({"budgets": [{"max_limit": 5, "reset_duration": "1M", "reset_config": {"quarter_start_month": 4}}]}), "budgets[0].reset_config"),
            (json!({"budgets": [{"max_limit": 5, "reset_duration": "1Q", "reset_config": {"quarter_start_month": 13}}]}), "quarter_start_month"),
            (json!({"budgets": [{"max_limit": 5, "reset_duration": "1Q", "reset_config": {"quarter_start_month": 1, "day": 2}}]}), "day"),
            (json!({"budgets": [{"max_limit": -1, "reset_duration": "1d"}]}), "max_limit"),
            (json!({"budgets": [{"max_limit": 1, "reset_duration": "2d"}]}), "reset_duration"),
            (json!({"budgets": [{"max_limit": 1, "reset_duration": "1d"}, {"max_limit": 2, "reset_duration": "1d"}]}), "budgets[1].reset_duration"),
            (json!({"budgets": [{"reset_duration": "1d"}]}), "max_limit"),
            (json!({"rate_limit": {"token_max_limit": 10}}), "rate_limit.token_reset_duration"),
            (json!({"rate_limit": {"request_reset_duration": "1h"}}), "rate_limit.request_max_limit"),
            (json!({"rate_limit": {"token_max_limit": 0, "token_reset_duration": "1h"}}), "token_max_limit"),
            (json!({"rate_limit": {"token_max_limit": 10, "token_reset_duration": "1Q"}}), "token_reset_duration"),
            (json!({"rate_limit": {}}), "rate_limit"),
            (json!({"provider_configs": [{"allowed_models": []}]}), "provider_name"),
            (json!({"provider_configs": [{"provider_name": "openai"}, {"provider_name": "openai"}]}), "provider_configs[1].provider_name"),
            (json!({"name": "   "}), "name"),
            (json!({"name": "x".repeat(256)}), "name"),
            (json!({"tags": ["ok", ""]}), "tags[1]"),
            (json!({"auto_rotation_interval": "30m"}), "auto_rotation_interval"),
            (json!({"auto_rotation_interval": "400d"}), "auto_rotation_interval"),
            (json!({"auto_rotation_interval": "soon"}), "auto_rotation_interval"),
            (json!({"next_rotation_at": "2001-01-01T00:00:00Z"}), "next_rotation_at"),
            (json!({"next_rotation_at": null}), "next_rotation_at"),
            (json!({"auto_rotation_interval": 0, "next_rotation_at": "2999-01-01T00:00:00Z"}), "next_rotation_at"),
            (json!({"mcp_tool_overrides": [{"mcp_client_id": "x", "tool_name": "t", "action": "maybe"}]}), "action"),
            (json!({"mcp_servers": [{"mcp_server_id": "gh"}], "mcp_tool_overrides": [{"mcp_client_id": "gh", "tool_name": "t", "action": "exclude"}]}), "mcp_tool_overrides[0]"),
            (json!({"mcp_tool_groups": [{"tool_group_id": 0}]}), "tool_group_id"),
            (json!({"tags": "eng"}), "tags"),
        ];
        for (body, needle) in cases {
            let reply = app.admin().put(&path(id), body.clone()).await;
            let msg = reply.expect_error(400).to_owned();
            assert!(msg.contains(needle), "{body} → {msg} should name {needle}");
        }
        assert_eq!(stored(app, id).await, before, "no refused update changed anything");
        assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM access_profile_versions WHERE access_profile_id = {id}")).await, 1);
    }

    async fn several_problems_are_reported_together(app: &TestApp) {
        let reply = app.admin().post(FAMILIES[0], json!({"name": "", "tags": [""], "rate_limit": {"token_max_limit": 5}})).await;
        let msg = reply.expect_error(400).to_owned();
        for needle in ["name", "tags[0]", "rate_limit.token_reset_duration"] {
            assert!(msg.contains(needle), "{msg} should name {needle}");
        }
        assert_eq!(reply.body["error"]["param"], "name");
        assert_eq!(reply.body["error"]["type"], "validation_error");
    }

    async fn size_caps_apply_on_update_only(app: &TestApp) {
        let tags: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
        let configs: Vec<Value> = (0..101).map(|i| json!({"provider_name": format!("p{i}")})).collect();
        let id = create_profile(app, json!({"name": "Big", "tags": tags, "provider_configs": configs})).await;
        let p = stored(app, id).await;
        assert_eq!(p["tags"].as_array().map(Vec::len), Some(51), "create has no caps");
        assert_eq!(p["provider_configs"].as_array().map(Vec::len), Some(101));
        app.admin().put(&path(id), json!({"tags": tags})).await.expect_error(400);
        app.admin().put(&path(id), json!({"provider_configs": configs})).await.expect_error(400);
        let budgets: Vec<Value> = (0..101).map(|_| json!({"max_limit": 1, "reset_duration": "1d"})).collect();
        let msg = app.admin().put(&path(id), json!({"budgets": budgets})).await.expect_error(400).to_owned();
        assert!(msg.contains("at most 100"), "{msg}");
        let fifty: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
        app.admin().put(&path(id), json!({"tags": fifty})).await.expect(200);
    }

    async fn renaming_onto_a_taken_name_conflicts(app: &TestApp) {
        create_profile(app, json!({"name": "Taken"})).await;
        let id = create_profile(app, json!({"name": "Free"})).await;
        for family in FAMILIES {
            app.admin().put(&format!("{family}/{id}"), json!({"name": "TAKEN"})).await.expect_error(409);
        }
        assert_eq!(stored(app, id).await["name"], "Free");
        app.admin().put(&path(id), json!({"name": "Free"})).await.expect(200);
    }

    async fn rotation_schedule_follows_the_interval(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Rotating", "auto_rotation_interval": 7_200_000_000_000_i64})).await;
        let p = stored(app, id).await;
        assert_eq!(p["auto_rotation_interval"], 7_200_000_000_000_i64);
        let first_next = p["next_rotation_at"].clone();
        assert!(first_next.is_string());
        let p = app.admin().put(&path(id), json!({"description": "x"})).await.expect(200)["access_profile"].clone();
        assert_eq!(p["next_rotation_at"], first_next, "omitting the interval keeps the schedule");
        let p = app.admin().put(&path(id), json!({"next_rotation_at": "2999-01-01T00:00:00Z"})).await.expect(200)["access_profile"].clone();
        assert_eq!(p["next_rotation_at"], "2999-01-01T00:00:00Z");
        let p = app.admin().put(&path(id), json!({"auto_rotation_interval": ""})).await.expect(200)["access_profile"].clone();
        assert_eq!(p["auto_rotation_interval"], 0);
        assert!(p.get("next_rotation_at").is_none(), "rotation off has no next time: {p}");
        let p = app.admin().put(&path(id), json!({"auto_rotation_interval": "12h", "next_rotation_at": null})).await;
        p.expect_error(400);
        let p = app.admin().put(&path(id), json!({"auto_rotation_interval": "12h"})).await.expect(200)["access_profile"].clone();
        assert_eq!(p["auto_rotation_interval"], 12_i64 * 3_600 * 1_000_000_000);
        assert!(p["next_rotation_at"].is_string(), "a new interval re-anchors the schedule");
    }
}
