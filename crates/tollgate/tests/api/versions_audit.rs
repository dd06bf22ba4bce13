//! Version snapshots and the audit trail: one version per change, the actor recorded, filters.

use serde_json::{Value, json};
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, create_profile};

on_both_backends! {
    async fn every_change_records_a_version_with_a_snapshot(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Versioned", "budgets": [{"max_limit": 5, "reset_duration": "1d"}]})).await;
        app.admin().put(&format!("{}/{id}", FAMILIES[0]), json!({"description": "second"})).await.expect(200);
        app.admin().put_empty(&format!("{}/{id}/activate", FAMILIES[0])).await.expect(200);
        for family in FAMILIES {
            let list = app.admin().get(&format!("{family}/{id}/versions")).await.expect(200)["versions"].clone();
            let numbers: Vec<i64> = list.as_array().map(|v| v.iter().filter_map(|x| x["version"].as_i64()).collect()).unwrap_or_default();
            assert_eq!(numbers, [3, 2, 1], "newest first");
            let v2 = app.admin().get(&format!("{family}/{id}/versions/2")).await.expect(200)["version"].clone();
            assert_eq!(v2["access_profile_id"], id);
            assert_eq!(v2["description"], "second");
            assert_eq!(v2["changed_by"], "admin");
            let snapshot: Value = serde_json::from_str(v2["snapshot"].as_str().unwrap_or("")).unwrap_or_default();
            assert_eq!(snapshot["version"], 2);
            assert_eq!(snapshot["is_active"], false);
            assert_eq!(snapshot["budgets"][0]["max_limit"], 5.0);
            app.admin().get(&format!("{family}/{id}/versions/9")).await.expect_error(404);
            app.admin().get(&format!("{family}/424242/versions")).await.expect_error(404);
        }
        let current = app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200)["access_profile"].clone();
        let v3 = app.admin().get(&format!("{}/{id}/versions/3", FAMILIES[0])).await.expect(200)["version"]["snapshot"].clone();
        let v3: Value = serde_json::from_str(v3.as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(v3, current, "the newest snapshot is the profile as served");
    }

    async fn audit_logs_record_actions_actors_and_changes(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Audited"})).await;
        app.admin().put(&format!("{}/{id}", FAMILIES[0]), json!({"tags": ["x"]})).await.expect(200);
        app.admin().put_empty(&format!("{}/{id}/activate", FAMILIES[0])).await.expect(200);
        app.admin().put_empty(&format!("{}/{id}/deactivate", FAMILIES[0])).await.expect(200);
        let copy = app.admin().post(&format!("{}/{id}/clone", FAMILIES[0]), json!({"name": "Audited copy"})).await.expect(201)["access_profile"]["id"].clone();
        app.admin().delete(&format!("{}/{copy}", FAMILIES[0])).await.expect(200);
        for family in FAMILIES {
            let logs = app.admin().get(&format!("{family}/{id}/audit-logs")).await.expect(200).clone();
            let actions: Vec<&str> = logs["audit_logs"].as_array().map(|a| a.iter().filter_map(|l| l["action"].as_str()).collect()).unwrap_or_default();
            assert_eq!(actions, ["deactivate", "activate", "update", "create"]);
            assert_eq!(logs["total_count"], 4);
            let update = &logs["audit_logs"][2];
            assert_eq!(update["actor"], "admin");
            let prev: Value = serde_json::from_str(update["previous_values"].as_str().unwrap_or("")).unwrap_or_default();
            let new: Value = serde_json::from_str(update["new_values"].as_str().unwrap_or("")).unwrap_or_default();
            assert_eq!((prev, new), (json!({"tags": []}), json!({"tags": ["x"]})));
            let all = app.admin().get(&format!("{family}/audit-logs")).await.expect(200).clone();
            assert_eq!(all["total_count"], 6, "create, update, activate, deactivate, clone, delete");
            let clones = app.admin().get(&format!("{family}/audit-logs?action=clone")).await.expect(200).clone();
            assert_eq!(clones["total_count"], 1);
            let meta: Value = serde_json::from_str(clones["audit_logs"][0]["metadata"].as_str().unwrap_or("")).unwrap_or_default();
            assert_eq!(meta["source_profile_id"], id);
            let deleted = app.admin().get(&format!("{family}/{copy}/audit-logs")).await.expect(200).clone();
            assert_eq!(deleted["total_count"], 2, "the trail of a deleted profile stays readable");
            let paged = app.admin().get(&format!("{family}/audit-logs?limit=2&offset=1")).await.expect(200).clone();
            assert_eq!(paged["audit_logs"].as_array().map(Vec::len), Some(2));
            assert_eq!(paged["total_count"], 6);
            let none = app.admin().get(&format!("{family}/audit-logs?user_id=nobody")).await.expect(200).clone();
            assert_eq!(none["total_count"], 0);
            app.admin().get(&format!("{family}/audit-logs?action=explode")).await.expect_error(400);
        }
    }

    async fn api_key_callers_are_recorded_as_actors(app: &TestApp) {
        let created = app.admin().post("/api/api-keys", json!({"name": "deployer", "scopes": [1, 2, 3]})).await.expect(200).clone();
        let key = created["key"].as_str().unwrap_or_default().to_owned();
        let reply = app.with_key(&key).post(FAMILIES[0], json!({"name": "By key"})).await;
        let id = reply.expect(201)["access_profile"]["id"].clone();
        let logs = app.admin().get(&format!("{}/{id}/audit-logs", FAMILIES[0])).await.expect(200).clone();
        let actor = logs["audit_logs"][0]["actor"].as_str().unwrap_or_default().to_owned();
        assert!(actor.starts_with("api-key:") && actor.ends_with(":deployer"), "{actor}");
        let v1 = app.admin().get(&format!("{}/{id}/versions/1", FAMILIES[0])).await.expect(200)["version"]["changed_by"].clone();
        assert_eq!(v1.as_str(), Some(actor.as_str()));
    }
}
