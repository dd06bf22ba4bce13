//! `tollgate-bench scale --http`: the real `tollgate` binary over a SQLite database seeded to an
//! organisation's size, measured through its management API (user creation, attach to every
//! member, propagate, paged lists) and its inference p99 at a fixed rate, idle and during the
//! big writes. Method and figures: `docs/BENCHMARKS.md`, "Scale".

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::StreamExt;
use serde_json::{Value, json};
use tollgate_core::vkeys::Sealer;
use tollgate_store::SqlStore;

use crate::load::{self, Pool, Stats, Target};
use crate::setup::{self, Admin};
use crate::spawn::{self, Child};
use crate::{procstat, scale_seed};

/// Profiles and roles in the catalogue (each role's default is its profile).
const CATALOGUE: usize = 1_000;
/// Management requests in flight at once, as an operator's script would send them.
const IN_FLIGHT: usize = 8;
/// The inference rate held idle and during the big writes, and the slice it is measured in.
const RATE: u32 = 200;
const SLICE: Duration = Duration::from_secs(1);
/// How long after start the server's resident memory is read again, at rest.
const AT_REST: Duration = Duration::from_secs(15);
/// The longest one management call may take before the run gives up.
const CALL_LIMIT: Duration = Duration::from_mins(5);

/// What the run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub users: usize,
    /// Users created through the API, eight at a time.
    pub added: usize,
    pub tollgate_bin: Option<std::path::PathBuf>,
}

/// A management call with the run's time limit.
async fn call(admin: &Admin, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
    tokio::time::timeout(CALL_LIMIT, admin.call(method, path, body, 200))
        .await
        .map_err(|_| format!("{path}: no answer within {CALL_LIMIT:?}"))?
}

/// Runs `jobs` eight at a time; fails on the first error.
async fn eight_at_a_time<F>(jobs: impl Iterator<Item = F>) -> Result<Vec<Value>, String>
where
    F: std::future::Future<Output = Result<Value, String>>,
{
    futures::stream::iter(jobs).buffer_unordered(IN_FLIGHT).collect::<Vec<_>>().await.into_iter().collect()
}

fn profile_body(name: &str, dollars: u64) -> Value {
    let budgets = json!([{"max_limit": dollars, "reset_duration": "1M"}]);
    let rate_limit = json!({"request_max_limit": 100_000_000, "request_reset_duration": "1d", "token_max_limit": 100_000_000_000_u64, "token_reset_duration": "1d"});
    json!({
        "name": name,
        "provider_configs": [{"provider_name": "openai", "allowed_models": [setup::UPSTREAM_MODEL], "budgets": budgets, "rate_limit": rate_limit}],
        "budgets": budgets, "rate_limit": rate_limit,
    })
}

fn id_of(v: &Value, pointer: &str) -> Result<i64, String> {
    v.pointer(pointer).and_then(Value::as_i64).ok_or_else(|| format!("no {pointer} in {v}"))
}

/// 1,000 profiles and 1,000 roles through the API, each profile its role's default.
async fn catalogue(admin: &Admin) -> Result<Vec<i64>, String> {
    use reqwest::Method;
    let made = eight_at_a_time((0..CATALOGUE).map(|i| async move {
        let profile = admin
            .call(Method::POST, "/api/governance/access-profiles", Some(profile_body(&format!("Scale {i:04}"), 1_000_000)), 201)
            .await?;
        let profile = id_of(&profile, "/access_profile/id")?;
        let role = call(admin, Method::POST, "/api/governance/rbac/roles", Some(json!({"name": scale_seed::role_name(i)}))).await?;
        let role = id_of(&role, "/role/id")?;
        let attach = json!({"role_ids": [role], "is_default": true});
        call(admin, Method::POST, &format!("/api/governance/access-profiles/{profile}/roles"), Some(attach)).await?;
        Ok(json!(role))
    }))
    .await?;
    made.iter().map(|r| r.as_i64().ok_or_else(|| "no role id".to_owned())).collect()
}

/// Median milliseconds of five calls of `path`, and its status if it failed.
async fn median_ms(admin: &Admin, path: &str) -> String {
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        if let Err(e) = call(admin, reqwest::Method::GET, path, None).await {
            return format!("failed: {}", e.chars().take(200).collect::<String>());
        }
        times.push(start.elapsed());
    }
    times.sort();
    format!("{:.1} ms", ms(times[2]))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[expect(clippy::cast_precision_loss, reason = "a few hundred megabytes")]
fn rss_mb(child: &Child) -> String {
    procstat::rss(child.pid()).map_or_else(|e| e, |b| format!("{:.0} MB", b as f64 / 1_048_576.0))
}

#[expect(clippy::cast_precision_loss, reason = "latencies in nanoseconds are far below 2^52")]
fn p99(stats: &Stats) -> String {
    let q = |q: f64| stats.latency.value_at_quantile(q) as f64 / 1e6;
    format!(
        "{} ok, {} errors, {} missed; p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms{}",
        stats.ok,
        stats.errors,
        stats.missed,
        q(0.5),
        q(0.99),
        stats.latency.max() as f64 / 1e6,
        stats.first_error.as_ref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
    )
}

/// Runs `op` while inference is held at [`RATE`], slice by slice until `op` has answered.
async fn under_load(
    target: &Arc<Target>,
    pool: &mut Pool,
    op: impl std::future::Future<Output = Result<Value, String>> + Send + 'static,
) -> Result<(Value, Duration, Stats), String> {
    let start = Instant::now();
    let task = tokio::spawn(async move {
        let answer = op.await;
        (answer, start.elapsed())
    });
    let mut stats = Stats::new()?;
    loop {
        stats.append(load::open_loop(target, pool, RATE, SLICE, false).await?)?;
        if task.is_finished() {
            break;
        }
    }
    let (answer, took) = task.await.map_err(|e| e.to_string())?;
    Ok((answer?, took, stats))
}

/// The run: catalogue, seeding, restart, then the measurements in the order the report lists them.
#[expect(clippy::too_many_lines, reason = "one straight script, read top to bottom in the order of its report")]
pub async fn run(options: Options, say: fn(&str)) -> Result<(), String> {
    use reqwest::Method;
    let binary = spawn::tollgate_binary(options.tollgate_bin.as_deref())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let key = Sealer::generate_key();
    std::fs::write(dir.path().join("tollgate.key"), base64::engine::general_purpose::STANDARD.encode(key)).map_err(|e| e.to_string())?;
    let mock = spawn::start("mock", spawn::own(&["mock", "--port", "0"])?, None)?;
    say(&format!("load average at start: {}", procstat::load_average()));

    let started = Instant::now();
    let tollgate = setup::start_tollgate(&binary, dir.path(), mock.addr, None)?;
    let admin = Admin::new(tollgate.addr)?;
    let roles = catalogue(&admin).await?;
    say(&format!("catalogue: {CATALOGUE} profiles and roles through the API in {:.1} s", started.elapsed().as_secs_f64()));
    drop(tollgate);

    let started = Instant::now();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("tollgate.db").display());
    let store = SqlStore::connect(&url).await.map_err(|e| e.to_string())?;
    scale_seed::seed(&store, &Sealer::new(&key), options.users, CATALOGUE, say).await?;
    store.pool().close().await;
    say(&format!("seeded {} users through the store in {:.1} s", options.users, started.elapsed().as_secs_f64()));

    let started = Instant::now();
    let tollgate = setup::start_tollgate(&binary, dir.path(), mock.addr, None)?;
    let admin = Admin::new(tollgate.addr)?;
    say(&format!("restarted over {} users in {:.1} s; RSS {}", options.users, started.elapsed().as_secs_f64(), rss_mb(&tollgate)));
    // The start-up rebuild's transient memory goes back to the system within jemalloc's decay
    // time (10 s) on its background thread; what stays is what the server holds at rest.
    tokio::time::sleep(AT_REST).await;
    say(&format!("at rest {} s later: RSS {}", AT_REST.as_secs(), rss_mb(&tollgate)));

    // (1) users through the API, eight at a time, into a role with a default profile.
    let role = roles[0];
    let started = Instant::now();
    let created = eight_at_a_time((0..options.added).map(|i| {
        let admin = admin.clone();
        async move {
            let body = json!({"name": format!("Added {i}"), "email": format!("added-{i:05}@scale.example"), "role_id": role});
            call(&admin, Method::POST, "/api/governance/users", Some(body)).await
        }
    }))
    .await?;
    let took = started.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "user counts are small")]
    let rate = options.added as f64 / took;
    say(&format!(
        "(1) {} users created through the API, {IN_FLIGHT} at a time, over {} existing: {took:.1} s, {rate:.0} users/s",
        options.added, options.users
    ));

    // A created user's key, for inference.
    let user = created.first().and_then(|u| u.pointer("/user/id")).and_then(Value::as_str).ok_or("no user created")?.to_owned();
    let copies = call(&admin, Method::GET, &format!("/api/governance/users/{user}/access-profiles"), None).await?;
    let kid =
        copies.pointer("/access_profiles/0/virtual_key_ids/0").and_then(Value::as_str).ok_or_else(|| format!("no key in {copies}"))?;
    let revealed = call(&admin, Method::POST, &format!("/api/governance/users/{user}/virtual-keys/{kid}/reveal"), Some(json!({}))).await?;
    let value = revealed.pointer("/virtual_key/value").and_then(Value::as_str).ok_or("no key value")?;
    let target = Target::new("tollgate", tollgate.addr, setup::GOVERNED_MODEL, value)?;
    load::probe(&target, false).await.map_err(|e| format!("inference probe: {e}"))?;

    // (4) paged lists.
    let users_total = call(&admin, Method::GET, "/api/governance/users?limit=100", None).await?;
    let pages = users_total.get("total_pages").and_then(Value::as_u64).unwrap_or(1);
    let profile0 = copies.pointer("/access_profiles/0/parent_profile_id").and_then(Value::as_i64).unwrap_or(0);
    for path in [
        "/api/governance/users?page=1&limit=100".to_owned(),
        format!("/api/governance/users?page={pages}&limit=100"),
        "/api/governance/users?search=seeded-000500&limit=20".to_owned(),
        "/api/governance/access-profiles?limit=100&offset=0".to_owned(),
        "/api/governance/access-profiles?limit=100&offset=900".to_owned(),
        format!("/api/governance/users/{user}/access-profiles"),
        format!("/api/governance/users/{user}/virtual-keys"),
        "/api/governance/access-profiles/audit-logs?limit=100&offset=0".to_owned(),
        format!("/api/governance/access-profiles/audit-logs?limit=100&offset={}", options.users),
        format!("/api/governance/access-profiles/{profile0}/audit-logs?limit=100&offset=0"),
    ] {
        say(&format!("(4) GET {path}: {}", median_ms(&admin, &path).await));
    }

    // (5) inference, idle.
    let mut pool = Pool::new(tollgate.addr, 16);
    load::open_loop(&target, &mut pool, RATE, SLICE, false).await?;
    let idle = load::open_loop(&target, &mut pool, RATE, Duration::from_secs(5), false).await?;
    say(&format!("(5) inference idle at {RATE}/s for 5 s: {}", p99(&idle)));

    // (2) a new profile attached to every catalogue role, applied to their current members.
    let wide = admin.call(Method::POST, "/api/governance/access-profiles", Some(profile_body("Scale wide", 1_000_000)), 201).await?;
    let wide = id_of(&wide, "/access_profile/id")?;
    let attach = json!({"role_ids": roles, "is_default": false, "apply_to_existing": true});
    let (answer, took, during) = {
        let admin = admin.clone();
        let path = format!("/api/governance/access-profiles/{wide}/roles");
        under_load(&target, &mut pool, async move { call(&admin, Method::POST, &path, Some(attach)).await }).await?
    };
    say(&format!(
        "(2) attach to {} roles with apply_to_existing: {:.2} s, users_applied {}; RSS {}",
        roles.len(),
        took.as_secs_f64(),
        answer.get("users_applied").unwrap_or(&Value::Null),
        rss_mb(&tollgate)
    ));
    say(&format!("    inference during it: {}", p99(&during)));

    // (3) the profile's budget changed, then propagated to every copy of it.
    let started = Instant::now();
    call(
        &admin,
        Method::PUT,
        &format!("/api/governance/access-profiles/{wide}"),
        Some(json!({"budgets": [{"max_limit": 2_000_000, "reset_duration": "1M"}]})),
    )
    .await?;
    say(&format!("    template budget changed in {:.2} s", started.elapsed().as_secs_f64()));
    let (answer, took, during) = {
        let admin = admin.clone();
        let path = format!("/api/governance/access-profiles/{wide}/propagate");
        under_load(&target, &mut pool, async move { call(&admin, Method::POST, &path, Some(json!({"fields": ["budgets"]}))).await }).await?
    };
    say(&format!(
        "(3) propagate budgets: {:.2} s, affected_users {}; RSS {}",
        took.as_secs_f64(),
        answer.get("affected_users").unwrap_or(&Value::Null),
        rss_mb(&tollgate)
    ));
    say(&format!("    inference during it: {}", p99(&during)));
    // The old snapshot and the write's buffers are freed at once; their pages go back within
    // jemalloc's decay time.
    tokio::time::sleep(AT_REST).await;
    say(&format!("    at rest {} s later: RSS {}", AT_REST.as_secs(), rss_mb(&tollgate)));
    say(&format!("load average at end: {}", procstat::load_average()));
    Ok(())
}
