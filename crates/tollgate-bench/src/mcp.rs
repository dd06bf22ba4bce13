//! The MCP hop: `tools/call` on the fixture MCP server directly against the same call through
//! Tollgate's `/mcp` with governance on (a priced tool, a budget and request limit that never
//! trip), open loop at a fixed rate, alternating runs; the verdict is the median added latency.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::load::{self, Pool, Stats, Target};
use crate::setup::{self, Admin};
use crate::spawn;
use crate::tables::{f1, row, table, us};

/// Targets of issue 21: added latency at 200 calls/s.
const TARGET_P50_US: f64 = 500.0;
const TARGET_P99_US: f64 = 2_000.0;
/// Charged per call, so every call settles a real amount on the budgets.
const PRICE: f64 = 0.000_001;

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Calls per second (open loop)
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Seconds per measured run
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Measured runs of each path, alternating; the verdict takes their median
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// The Tollgate binary (default: `tollgate` beside this binary)
    #[arg(long)]
    pub tollgate_bin: Option<PathBuf>,
}

fn call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {"text": "bench"}}})
}

/// The fixture over HTTP, from the `mcp-fixture` binary beside this one.
fn start_fixture() -> Result<spawn::Child, String> {
    let path = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("mcp-fixture");
    if !path.is_file() {
        return Err(format!("{} not found: build it with `cargo build --release -p tollgate-testkit --bins`", path.display()));
    }
    let mut command = Command::new(path);
    command.arg("--http").stdin(Stdio::piped());
    spawn::start("mcp-fixture", command, None)
}

/// Waits until the key sees the fixture's tools through Tollgate (the client connects in the
/// background), then checks one call answers end to end.
async fn ready(through: &Target) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = load::probe(through, false).await.unwrap_or_default();
        if body.contains("bench") && !body.contains("\"isError\":true") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the tool call through Tollgate does not answer: {body}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Run {
    direct: Stats,
    through: Stats,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub async fn run(options: Options, say: fn(&str)) -> Result<(), String> {
    let binary = spawn::tollgate_binary(options.tollgate_bin.as_deref())?;
    let fixture = start_fixture()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tollgate = setup::start_tollgate(&binary, dir.path(), fixture.addr, None)?;
    let admin = Admin::new(tollgate.addr)?;
    let client = json!({"client_id": "bench", "name": "bench", "connection_type": "http",
        "connection_string": format!("http://{}/mcp", fixture.addr), "tools_to_execute": ["*"], "tool_pricing": {"echo": PRICE}});
    admin.call(Method::POST, "/api/mcp/client", Some(client), 200).await?;
    let governed = admin.govern_with(json!({"mcp_servers": [{"mcp_server_id": "bench"}]})).await?;
    let direct = Target::mcp("direct", fixture.addr, "none", &call("echo"))?;
    let through = Target::mcp("tollgate", tollgate.addr, &governed.key, &call("bench-echo"))?;
    ready(&through).await?;
    say(&format!("MCP hop: tools/call at {} calls/s, {} runs of {} s per path, alternating", options.rate, options.runs, options.seconds));

    let (mut direct_pool, mut through_pool) = (Pool::new(fixture.addr, 16), Pool::new(tollgate.addr, 16));
    let length = Duration::from_secs(options.seconds.max(1));
    // Warm both paths (connections, caches, allocator) before measuring.
    load::open_loop(&direct, &mut direct_pool, options.rate, Duration::from_secs(2), false).await?;
    load::open_loop(&through, &mut through_pool, options.rate, Duration::from_secs(2), false).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (before, _) = admin.spent(&governed.user).await?;
    let mut runs = Vec::with_capacity(options.runs);
    for _ in 0..options.runs.max(1) {
        let d = load::open_loop(&direct, &mut direct_pool, options.rate, length, false).await?;
        let t = load::open_loop(&through, &mut through_pool, options.rate, length, false).await?;
        runs.push(Run { direct: d, through: t });
    }
    report(&runs, say)?;
    exactness(&admin, &governed.user, before, &runs, say).await
}

fn report(runs: &[Run], say: fn(&str)) -> Result<(), String> {
    let mut rows = vec![row(&["run", "direct p50", "direct p99", "through p50", "through p99", "added p50", "added p99", "errors"])];
    let (mut added50, mut added99) = (Vec::new(), Vec::new());
    for (i, r) in runs.iter().enumerate() {
        let (d50, d99, t50, t99) =
            (us(&r.direct.latency, 0.5), us(&r.direct.latency, 0.99), us(&r.through.latency, 0.5), us(&r.through.latency, 0.99));
        added50.push(t50 - d50);
        added99.push(t99 - d99);
        let errors = r.direct.errors + r.direct.missed + r.through.errors + r.through.missed;
        rows.push(vec![(i + 1).to_string(), f1(d50), f1(d99), f1(t50), f1(t99), f1(t50 - d50), f1(t99 - d99), errors.to_string()]);
        if let Some(e) = r.through.first_error.as_ref().or(r.direct.first_error.as_ref()) {
            return Err(format!("run {}: {e}", i + 1));
        }
    }
    say(&format!("latency in µs, from the scheduled send to the last byte\n{}", table(&rows)));
    let (m50, m99) = (median(added50), median(added99));
    let verdict = |v: f64, target: f64| if v <= target { "pass" } else { "FAIL" };
    say(&format!(
        "median added: p50 {} µs (target ≤ {TARGET_P50_US}: {}), p99 {} µs (target ≤ {TARGET_P99_US}: {})",
        f1(m50),
        verdict(m50, TARGET_P50_US),
        f1(m99),
        verdict(m99, TARGET_P99_US)
    ));
    Ok(())
}

/// Every measured call through Tollgate was charged its price, no more and no less.
async fn exactness(admin: &Admin, user: &str, before: f64, runs: &[Run], say: fn(&str)) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let measured: u64 = runs.iter().map(|r| r.through.ok).sum();
    let (after, _) = admin.spent(user).await?;
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a small positive count of calls")]
    let charged = ((after - before) / PRICE).round() as u64;
    say(&format!("charged during the measured runs: ${:.6} = {charged} calls at ${PRICE}; answered: {measured}", after - before));
    if charged == measured { Ok(()) } else { Err(format!("charged {charged} calls but {measured} were answered")) }
}
