//! A propagate's plan of copy updates: applied whole, with every copy's expected version
//! checked, or not at all.

use tollgate_core::directory::{DirectoryStore, Write};
use tollgate_core::ports::StoreError;
use tollgate_store::SqlStore;
use tollgate_testkit::{Backend, TestApp};

use crate::{attach_default, create_profile, create_role, create_user};

on_both_backends! {
    async fn a_plan_of_copy_updates_is_applied_whole_or_not_at_all(app: &TestApp) {
        let profile = create_profile(app, serde_json::json!({"name": "Many", "budgets": [{"max_limit": 5, "reset_duration": "1d"}]})).await;
        let role = create_role(app, "many").await;
        attach_default(app, profile, role).await;
        for i in 0..300 {
            create_user(app, &format!("u{i}@example.com"), Some(role)).await;
        }
        let store = SqlStore::connect(app.database_url().unwrap_or_default()).await.unwrap_or_else(|e| panic!("store connects: {e}"));
        let profile = tollgate_core::ids::ProfileId(profile);
        let copies = store.copies_of_profile(profile).await.unwrap_or_else(|e| panic!("copies read: {e}"));
        assert_eq!(copies.len(), 300);
        let plan = |stale_at: Option<usize>| -> Vec<Write> {
            copies
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut copy = c.clone();
                    copy.name = format!("renamed {i}");
                    copy.version += 1;
                    let expected_version = if Some(i) == stale_at { c.version + 7 } else { c.version };
                    Write::UpdateCopy { copy, expected_version }
                })
                .collect()
        };
        // One copy, late in the plan, changed since it was read: nothing is written.
        assert!(matches!(store.apply(&plan(Some(280))).await, Err(StoreError::Stale)));
        let after = store.copies_of_profile(profile).await.unwrap_or_else(|e| panic!("copies read: {e}"));
        assert!(after.iter().zip(&copies).all(|(a, b)| a.version == b.version && a.name == b.name), "a stale plan left no trace");
        store.apply(&plan(None)).await.unwrap_or_else(|e| panic!("plan applied: {e}"));
        let after = store.copies_of_profile(profile).await.unwrap_or_else(|e| panic!("copies read: {e}"));
        for (i, (a, b)) in after.iter().zip(&copies).enumerate() {
            assert_eq!((a.id, a.version, a.name.as_str()), (b.id, b.version + 1, format!("renamed {i}").as_str()));
            assert_eq!(a.policy, b.policy);
            assert_eq!(a.expires_at, b.expires_at);
        }
    }
}
