//! A snapshot changed user by user equals the one a full rebuild of the same data gives, and a
//! change leaves the other users' parts shared, untouched.

use chrono::{TimeZone, Utc};
use tollgate_core::auth::sha256;
use tollgate_core::copies::UserCopy;
use tollgate_core::ids::BudgetId;
use tollgate_core::money::Money;
use tollgate_core::overrides::{BudgetOverride, OverrideMode};
use tollgate_core::profile::Policy;
use tollgate_core::usage::{KeyRecord, UsersData};

use super::Snapshot;

fn key(user: &str, n: u32, active: bool) -> KeyRecord {
    KeyRecord {
        id: format!("vk-{user}-{n}"),
        value_hash: hex::encode(sha256(&format!("sk-{user}-{n}"))),
        name: format!("key {n}"),
        user_id: user.to_owned(),
        is_active: active,
        expires_at: None,
        value_expires_at: None,
    }
}

fn copy(id: i64, user: &str, active: bool) -> UserCopy {
    let policy: Policy = serde_json::from_value(serde_json::json!({
        "provider_configs": [],
        "budgets": [{"id": format!("b-{id}"), "max_limit": 1.0, "reset_duration": "1d", "scope": "total",
            "current_usage": 0.0, "last_reset": "2026-01-01T00:00:00Z"}],
        "calendar_aligned": false, "mcp_tool_groups": [], "mcp_servers": [], "mcp_tool_overrides": []
    }))
    .unwrap_or_default();
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_default();
    UserCopy {
        id,
        user_id: user.to_owned(),
        parent_profile_id: None,
        name: format!("copy {id}"),
        is_active: active,
        expires_at: None,
        policy,
        source_role_id: None,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

fn grant(copy_id: i64) -> BudgetOverride {
    BudgetOverride {
        budget_id: BudgetId(format!("b-{copy_id}")),
        copy_id,
        amount: Money::from_micros(5_000_000).unwrap_or(Money::ZERO),
        mode: OverrideMode::Forever,
        cycles_total: None,
        anchor_reset: Utc::now(),
        created_at: Utc::now(),
    }
}

/// The store in miniature: what a full load and a per-user load would read.
#[derive(Default, Clone)]
struct Rows {
    keys: Vec<KeyRecord>,
    copies: Vec<UserCopy>,
    overrides: Vec<BudgetOverride>,
}

impl Rows {
    fn all(&self) -> Snapshot {
        let mut copies = self.copies.clone();
        copies.sort_by_key(|c| c.id);
        Snapshot::of(self.keys.clone(), copies, self.overrides.clone())
    }

    fn of(&self, users: &[&str]) -> UsersData {
        let mine = |u: &String| users.contains(&u.as_str());
        let mut copies: Vec<UserCopy> = self.copies.iter().filter(|c| mine(&c.user_id)).cloned().collect();
        copies.sort_by_key(|c| c.id);
        let overrides = self.overrides.iter().filter(|o| copies.iter().any(|c| c.id == o.copy_id)).cloned().collect();
        // Keys in another order than a full load, as another query might give them.
        let keys = self.keys.iter().rev().filter(|k| mine(&k.user_id)).cloned().collect();
        UsersData { users: users.iter().map(|u| (*u).to_owned()).collect(), keys, copies, overrides }
    }
}

/// A change to the rows, made by a management write.
type Change = Box<dyn Fn(&mut Rows)>;

fn start() -> Rows {
    let mut rows = Rows::default();
    for (i, user) in ["ann", "bob", "cyd", "dee"].into_iter().enumerate() {
        let id = i64::try_from(i).unwrap_or(0) + 1;
        rows.keys.push(key(user, 1, true));
        rows.copies.push(copy(id, user, true));
    }
    rows.overrides.push(grant(2));
    rows
}

#[test]
fn a_snapshot_changed_user_by_user_equals_a_full_rebuild_of_the_same_data() {
    let mut rows = start();
    let mut snapshot = rows.all();
    // A sequence of changes, each applied to its users only.
    let steps: Vec<(Vec<&str>, Change)> = vec![
        (
            vec!["eve"],
            Box::new(|r: &mut Rows| {
                r.copies.push(copy(10, "eve", true));
                r.keys.push(key("eve", 1, true));
            }),
        ),
        (vec!["ann"], Box::new(|r: &mut Rows| r.keys.push(key("ann", 2, true)))),
        (vec!["bob"], Box::new(|r: &mut Rows| r.overrides.clear())),
        (
            vec!["cyd"],
            Box::new(|r: &mut Rows| {
                r.copies.retain(|c| c.user_id != "cyd");
                r.keys.retain(|k| k.user_id != "cyd");
            }),
        ),
        (
            vec!["ann", "dee"],
            Box::new(|r: &mut Rows| {
                r.keys.retain(|k| k.id != "vk-ann-1");
                r.copies.push(copy(11, "dee", false));
                r.overrides.push(grant(11));
            }),
        ),
        (vec!["fay"], Box::new(|r: &mut Rows| r.keys.push(key("fay", 1, false)))),
        (vec!["nobody"], Box::new(|_: &mut Rows| {})),
    ];
    for (users, change) in steps {
        change(&mut rows);
        snapshot = snapshot.with_users(rows.of(&users));
        assert_eq!(snapshot.contents(), rows.all().contents(), "after changing {users:?}");
    }
    assert!(snapshot.key(&sha256("sk-ann-1")).is_none(), "a deleted key is gone at once");
    assert!(snapshot.key(&sha256("sk-cyd-1")).is_none(), "a deleted user's key is gone at once");
    assert!(snapshot.copies("cyd").is_empty());
    assert_eq!(snapshot.key(&sha256("sk-eve-1")).map(|k| &*k.user_id), Some("eve"), "a new user's key works at once");
    assert_eq!(snapshot.copies("dee").len(), 2);
    assert!(snapshot.copies("dee")[1].overrides.iter().any(|o| o.budget_id == BudgetId("b-11".into())));
    assert_eq!(snapshot.size(), (5, 5), "keys ann-2, bob-1, dee-1, eve-1, fay-1; users ann, bob, dee, eve, fay");
}

#[test]
fn changing_one_user_leaves_every_other_users_part_shared() {
    let rows = start();
    let before = rows.all();
    let mut changed = rows.clone();
    changed.keys.push(key("ann", 2, true));
    let after = before.with_users(changed.of(&["ann"]));
    for user in ["bob", "cyd", "dee"] {
        let (old, new) = (before.holdings(user), after.holdings(user));
        assert!(old.zip(new).is_some_and(|(o, n)| std::ptr::eq(o, n)), "{user}'s holdings are the same allocation");
    }
    let bob = sha256("sk-bob-1");
    assert!(before.key(&bob).zip(after.key(&bob)).is_some_and(|(old, new)| std::ptr::eq(old, new)), "bob's key is the same allocation");
    assert_eq!(before.copies("ann").len(), 1, "the old snapshot is unchanged for requests still reading it");
    assert!(before.key(&sha256("sk-ann-2")).is_none());
    assert!(after.key(&sha256("sk-ann-2")).is_some());
}

#[test]
fn copies_of_one_template_share_their_names_and_grants_but_keep_their_own_lines() {
    let mut rows = start();
    rows.copies.push(copy(12, "ann", true));
    let snapshot = rows.all();
    let (ann, bob) = (&snapshot.copies("ann")[0], &snapshot.copies("bob")[0]);
    assert!(std::sync::Arc::ptr_eq(&ann.mcp, &bob.mcp), "equal MCP grants are one allocation");
    let ann_key = snapshot.key(&sha256("sk-ann-1")).map(|k| std::sync::Arc::clone(&k.user_id));
    assert!(ann_key.is_some_and(|user| snapshot.copies("ann").len() == 2 && &*user == "ann"));
    assert_ne!(ann.profile.budgets[0].line, bob.profile.budgets[0].line, "each copy counts on its own lines");
    assert_eq!(&*ann.profile.budgets[0].line, "b-1");
    assert_eq!(ann.profile.budgets[0].limit, Money::from_micros(1_000_000).unwrap_or(Money::ZERO));
}
