//! Concurrent writers: no edit is lost and the version rises exactly once per change.

use futures::future::join_all;
use serde_json::json;
use tollgate_testkit::{Backend, TestApp};

use crate::{FAMILIES, create_profile};

const WRITERS: usize = 12;

on_both_backends! {
    async fn concurrent_updates_lose_no_edit_and_version_once_each(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Contended"})).await;
        // Every writer replaces the description and tags at the same moment.
        let writers = (0..WRITERS).map(|i| async move {
            let path = format!("{}/{id}", FAMILIES[i % 2]);
            app.admin().put(&path, json!({"description": format!("writer {i}"), "tags": [format!("w{i}")]})).await.status.as_u16()
        });
        let statuses = join_all(writers).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        let p = app.admin().get(&format!("{}/{id}", FAMILIES[0])).await.expect(200)["access_profile"].clone();
        let versions = app.admin().get(&format!("{}/{id}/versions", FAMILIES[0])).await.expect(200)["versions"].clone();
        let numbers: Vec<i64> = versions.as_array().map(|v| v.iter().filter_map(|x| x["version"].as_i64()).collect()).unwrap_or_default();
        let expected: Vec<i64> = (1..=i64::try_from(WRITERS).unwrap_or(0) + 1).rev().collect();
        assert_eq!(numbers, expected, "one version per change, no gaps, no duplicates");
        assert_eq!(p["version"], i64::try_from(WRITERS).unwrap_or(0) + 1);
        let updates = app.count(&format!("SELECT COUNT(*) AS n FROM access_profile_audit_logs WHERE access_profile_id = {id} AND action = 'update'")).await;
        assert_eq!(updates, i64::try_from(WRITERS).unwrap_or(0));
        let tags_stored = app.count(&format!("SELECT COUNT(*) AS n FROM access_profile_tags WHERE profile_id = {id}")).await;
        assert_eq!(tags_stored, 1, "the winner's tags only");
    }

    async fn concurrent_partial_edits_of_different_members_all_survive(app: &TestApp) {
        let id = create_profile(app, json!({"name": "Merged"})).await;
        let path = format!("{}/{id}", FAMILIES[0]);
        let admin = app.admin();
        let replies = tokio::join!(
            admin.put(&path, json!({"description": "from A"})),
            admin.put(&path, json!({"tags": ["from-b"]})),
            admin.put(&path, json!({"budgets": [{"max_limit": 3, "reset_duration": "1w"}]})),
            admin.put(&path, json!({"calendar_aligned": true})),
        );
        for reply in [replies.0, replies.1, replies.2, replies.3] {
            reply.expect(200);
        }
        let p = app.admin().get(&path).await.expect(200)["access_profile"].clone();
        assert_eq!(p["description"], "from A");
        assert_eq!(p["tags"], json!(["from-b"]));
        assert_eq!(p["budgets"][0]["reset_duration"], "1w");
        assert_eq!(p["calendar_aligned"], true);
        assert_eq!(p["version"], 5);
    }

    async fn concurrent_creates_with_one_name_admit_exactly_one(app: &TestApp) {
        let attempts = (0..8).map(|_| async { app.admin().post(FAMILIES[0], json!({"name": "Race"})).await.status.as_u16() });
        let mut statuses = join_all(attempts).await;
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profiles").await, 1);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM access_profile_versions").await, 1, "refused creates leave no version behind");
    }
}
