//! `tollgate-bench scale`: the governance snapshot at the size of a large organisation, measured
//! in process over a real SQLite store — a full rebuild (store read and build), a one-user change
//! applied in place, and key look-up at a thousand and at a million keys.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_core::auth::sha256;
use tollgate_core::usage::{KeyRecord, UsageStore};
use tollgate_governance::snapshot::{Snapshot, SnapshotBuilder};
use tollgate_store::SqlStore;

/// Templates the copies are made from (1,000, as the scale target says).
const TEMPLATES: usize = 1_000;

/// A copy's stored policy: one provider config with a budget and a rate limit, a profile budget;
/// line ids are the copy's own, as propagation makes them.
fn policy(copy: usize) -> String {
    let template = copy % TEMPLATES;
    let budget = |id: String| {
        json!({"id": id, "max_limit": 10.0, "reset_duration": "1M", "scope": "total", "current_usage": 0.0,
            "last_reset": "2026-01-01T00:00:00Z"})
    };
    json!({
        "provider_configs": [{"id": copy, "provider_name": "openai", "all_models_allowed": false,
            "allowed_models": ["gpt-4o", "gpt-4o-mini", format!("model-{template}")], "budgets": [budget(format!("b-{copy}-c"))],
            "rate_limit": {"id": format!("rl-{copy}-c"), "request_max_limit": 100, "request_reset_duration": "1h",
                "token_current_usage": 0, "request_current_usage": 0}}],
        "budgets": [budget(format!("b-{copy}-p"))],
        "rate_limit": {"id": format!("rl-{copy}-p"), "token_max_limit": 100_000, "token_reset_duration": "1h",
            "token_current_usage": 0, "request_current_usage": 0},
        "calendar_aligned": false, "mcp_tool_groups": [], "mcp_servers": [], "mcp_tool_overrides": []
    })
    .to_string()
}

/// A `/proc/self/status` memory figure in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// Bytes the program holds (allocated) in MB, as the allocator counts them, and what the
/// allocator keeps resident.
fn heap() -> String {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let mb = |bytes: usize| f64::from(u32::try_from(bytes / 1024).unwrap_or(u32::MAX)) / 1024.0;
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0);
    let resident = tikv_jemalloc_ctl::stats::resident::read().unwrap_or(0);
    format!("heap {:.0} MB allocated, {:.0} MB resident in the allocator", mb(allocated), mb(resident))
}

/// The peak RSS since it was last reset.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Writes `users` users' copies and keys straight into the store, in one transaction.
async fn seed(store: &SqlStore, users: usize) -> Result<(), String> {
    let at = "2026-01-01T00:00:00.000000Z";
    let mut tx = store.pool().begin().await.map_err(|e| e.to_string())?;
    for n in 0..users {
        let user = format!("u-{n:06}");
        sqlx::query(
            "INSERT INTO user_access_profiles (id, user_id, parent_profile_id, created_at, name, is_active, policy, version, updated_at) \
             VALUES ($1, $2, NULL, $3, $4, 1, $5, 1, $3)",
        )
        .bind(i64::try_from(n + 1).unwrap_or(0))
        .bind(&user)
        .bind(at)
        .bind(format!("Template {}", n % TEMPLATES))
        .bind(policy(n))
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        sqlx::query(
            "INSERT INTO virtual_keys (id, name, name_key, value_hash, value_sealed, value_masked, user_id, copy_id, is_active, created_at, updated_at) \
             VALUES ($1, $2, $2, $3, 'x', 'sk-…', $4, $5, 1, $6, $6)",
        )
        .bind(format!("vk-{n}"))
        .bind(format!("key-{n}"))
        .bind(hex::encode(sha256(&format!("sk-scale-{n}"))))
        .bind(&user)
        .bind(i64::try_from(n + 1).unwrap_or(0))
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// Mean time of one look-up over `keys` keys (hashes made beforehand; a hit every time).
fn lookup_ns(keys: usize) -> f64 {
    let records = (0..keys).map(|n| KeyRecord {
        id: format!("vk-{n}"),
        value_hash: hex::encode(sha256(&format!("sk-{n}"))),
        name: String::new(),
        user_id: format!("u-{}", n / 10),
        is_active: true,
        expires_at: None,
        value_expires_at: None,
    });
    let snapshot = Snapshot::of(records.collect(), Vec::new(), Vec::new());
    let probes: Vec<[u8; 32]> = (0..100_000).map(|i| sha256(&format!("sk-{}", (i * 7919) % keys))).collect();
    let start = Instant::now();
    let mut found = 0usize;
    for _ in 0..10 {
        for probe in &probes {
            found += usize::from(std::hint::black_box(&snapshot).key(probe).is_some());
        }
    }
    let per = start.elapsed().as_secs_f64() * 1e9 / 1_000_000.0;
    assert_eq!(found, 1_000_000, "every probe is a key");
    per
}

pub async fn run(users: usize, say: fn(&str)) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}/scale.db?mode=rwc", dir.path().display());
    let store = SqlStore::connect(&url).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    seed(&store, users).await?;
    say(&format!(
        "seeded {users} users, each with a copy (of {TEMPLATES} templates) and a key, in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let before = rss_mb();
    say(&format!("{} before the first rebuild", heap()));
    // Peak RSS from here on: seeding's own peak is not the snapshot's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut best = Duration::MAX;
    let mut snapshot = Snapshot::default();
    for _ in 0..3 {
        let start = Instant::now();
        let mut builder = SnapshotBuilder::default();
        let data = store.load_governance(&mut |c| builder.copy(c)).await.map_err(|e| e.to_string())?;
        let read = start.elapsed();
        snapshot = builder.finish(data.keys, data.overrides);
        let total = start.elapsed();
        say(&format!(
            "full rebuild: {:.0} ms (store read, parse and compact copies {:.0} ms, keys and shards {:.0} ms)",
            ms(total),
            ms(read),
            ms(total.saturating_sub(read))
        ));
        best = best.min(total);
    }
    say(&format!(
        "full rebuild, best of 3: {:.0} ms; RSS {before:.0} MB before, {:.0} MB with the snapshot, peak {:.0} MB while rebuilding",
        ms(best),
        rss_mb(),
        peak_rss_mb()
    ));
    let (keys, holders) = snapshot.size();
    say(&format!("snapshot holds {keys} keys of {holders} users; {}", heap()));
    // Freed pages go back to the system after the allocator's decay time (10 s by default).
    tokio::time::sleep(Duration::from_secs(12)).await;
    say(&format!("RSS {:.0} MB, {} after the allocator returned freed pages", rss_mb(), heap()));
    let rounds: u32 = 1_000;
    let start = Instant::now();
    for n in 0..usize::try_from(rounds).unwrap_or(0) {
        let user = format!("u-{:06}", (n * 97) % users);
        let data = store.load_users(&[user]).await.map_err(|e| e.to_string())?;
        snapshot = snapshot.with_users(data);
    }
    say(&format!(
        "one user's change applied in place (store read and copy-on-write): {:.2} ms each",
        ms(start.elapsed()) / f64::from(rounds)
    ));
    for keys in [1_000, 1_000_000] {
        say(&format!("key look-up over {keys} keys: {:.0} ns", lookup_ns(keys)));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
