//! Detection: each threshold a budget line reaches in its current window is one crossing, an
//! override raises the limit, and a line of a copy without a rule or of an ended window is none.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Duration, Utc};
use tollgate_core::alerts::AlertRule;
use tollgate_core::copies::UserCopy;
use tollgate_core::ids::{BudgetId, ProfileId};
use tollgate_core::money::Money;
use tollgate_core::overrides::{BudgetOverride, OverrideMode};
use tollgate_core::profile::Policy;

use super::AlertIndex;
use crate::counters::{LineKind, LineValue};
use crate::snapshot::Snapshot;

/// Where each budget's rolling window starts: an hour ago, the same for the whole test.
static ANCHOR: LazyLock<DateTime<Utc>> = LazyLock::new(|| tollgate_core::clock::now() - Duration::hours(1));

fn anchor() -> DateTime<Utc> {
    *ANCHOR
}

/// A copy of profile `profile` with a $1.00 daily budget `b-<id>`.
fn copy(id: i64, user: &str, profile: i64) -> UserCopy {
    let policy: Policy = serde_json::from_value(serde_json::json!({
        "provider_configs": [],
        "budgets": [{"id": format!("b-{id}"), "max_limit": 1.0, "reset_duration": "1d", "scope": "total",
            "current_usage": 0.0, "last_reset": anchor()}],
        "calendar_aligned": false, "mcp_tool_groups": [], "mcp_servers": [], "mcp_tool_overrides": []
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    UserCopy {
        id,
        user_id: user.to_owned(),
        parent_profile_id: Some(ProfileId(profile)),
        name: format!("profile {profile}"),
        is_active: true,
        expires_at: None,
        policy,
        source_role_id: None,
        version: 1,
        created_at: anchor(),
        updated_at: anchor(),
    }
}

fn rule(id: i64, profile: i64, thresholds: &[u32]) -> AlertRule {
    AlertRule {
        id,
        profile_id: ProfileId(profile),
        thresholds: thresholds.to_vec(),
        webhook_url: "http://127.0.0.1:9/".into(),
        sealed_secret: "v1:x".into(),
        enabled: true,
        created_at: anchor(),
        updated_at: anchor(),
    }
}

fn used(line: &str, micros: u64) -> LineValue {
    LineValue { line: Arc::from(line), kind: LineKind::Budget, used: micros, window_start: anchor() }
}

fn thresholds(index: &AlertIndex, snapshot: &Snapshot, values: &[LineValue]) -> Vec<(i64, u32)> {
    index.crossings(snapshot, values, tollgate_core::clock::now()).iter().map(|c| (c.copy_id, c.threshold)).collect()
}

#[test]
fn each_threshold_reached_is_one_crossing_and_only_watched_copies_count() {
    let snapshot = Snapshot::of(Vec::new(), vec![copy(1, "u1", 7), copy(2, "u2", 8)], Vec::new());
    let index = AlertIndex::new(&snapshot, vec![rule(1, 7, &[50, 80, 100])]);
    assert_eq!(thresholds(&index, &snapshot, &[used("b-1", 499_999)]), vec![]);
    assert_eq!(thresholds(&index, &snapshot, &[used("b-1", 600_000)]), vec![(1, 50)]);
    assert_eq!(thresholds(&index, &snapshot, &[used("b-1", 850_000)]), vec![(1, 50), (1, 80)], "a jump past two is one each");
    assert_eq!(thresholds(&index, &snapshot, &[used("b-2", 1_000_000)]), vec![], "profile 8 has no rule");
    let crossing = &index.crossings(&snapshot, &[used("b-1", 800_000)], tollgate_core::clock::now())[1];
    assert_eq!((crossing.user_id.as_str(), crossing.budget_id.as_str(), crossing.limit, crossing.used), ("u1", "b-1", 1_000_000, 800_000));
    assert_eq!(crossing.window_reset, anchor() + Duration::days(1));
}

#[test]
fn an_override_raises_the_limit_and_an_ended_window_or_disabled_rule_fires_nothing() {
    let grant = BudgetOverride {
        budget_id: BudgetId("b-1".into()),
        copy_id: 1,
        amount: Money::from_micros(1_000_000).unwrap_or(Money::ZERO),
        mode: OverrideMode::Forever,
        cycles_total: None,
        anchor_reset: anchor(),
        created_at: anchor(),
    };
    let snapshot = Snapshot::of(Vec::new(), vec![copy(1, "u1", 7)], vec![grant]);
    let index = AlertIndex::new(&snapshot, vec![rule(1, 7, &[50, 80])]);
    assert_eq!(thresholds(&index, &snapshot, &[used("b-1", 900_000)]), vec![], "90 % of $1 is 45 % of $2");
    assert_eq!(thresholds(&index, &snapshot, &[used("b-1", 1_000_000)]), vec![(1, 50)]);
    let old = LineValue { window_start: anchor() - Duration::days(2), ..used("b-1", 2_000_000) };
    assert_eq!(thresholds(&index, &snapshot, &[old]), vec![], "a value from an ended window");
    let off = AlertIndex::new(&snapshot, vec![AlertRule { enabled: false, ..rule(1, 7, &[50]) }]);
    assert!(off.is_empty());
    assert_eq!(thresholds(&off, &snapshot, &[used("b-1", 2_000_000)]), vec![]);
}
