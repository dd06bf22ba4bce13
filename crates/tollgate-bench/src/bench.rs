//! The benchmark run: start the three processes, govern a key, drive each path phase by phase, measure its process, report.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{self, Pool, Stats, Target};
use crate::procstat::{self, Usage};
use crate::report;
use crate::results::{Context, Measured, Path, Results};
use crate::setup::{self, Admin};
use crate::spawn;
use crate::verdict;

/// How long after a run Tollgate's CPU is still counted: its usage writer flushes every 500 ms.
const SETTLE: Duration = Duration::from_millis(1500);

/// Command-line options of the benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The Tollgate binary [default: `tollgate` beside this binary, i.e. target/release/tollgate]
    #[arg(long)]
    pub tollgate_bin: Option<PathBuf>,
    /// Fixed request rates (requests/s), comma-separated; the target rate is added if missing
    #[arg(long, value_delimiter = ',', default_value = "200,1000")]
    pub rates: Vec<u32>,
    /// The rate at which the latency, CPU and memory targets are judged
    #[arg(long, default_value_t = 1000)]
    pub target_rate: u32,
    /// Seconds of each fixed-rate run below or above the target rate
    #[arg(long, default_value_t = 8.0)]
    pub duration: f64,
    /// Seconds of the fixed-rate run at the target rate, whose p99 is judged: a tail percentile
    /// needs many more requests than a median to stand still (decision 88)
    #[arg(long, default_value_t = 24.0)]
    pub target_duration: f64,
    /// Keep-alive connections of the fixed-rate runs
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds of each full-speed run
    #[arg(long, default_value_t = 8.0)]
    pub full_duration: f64,
    /// Connections (each with one request at a time) of the full-speed runs
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Rate (requests/s) of the streamed runs
    #[arg(long, default_value_t = 200)]
    pub stream_rate: u32,
    /// Seconds of each streamed run
    #[arg(long, default_value_t = 5.0)]
    pub stream_duration: f64,
    /// Seconds of unmeasured full-speed warm-up per path
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Milliseconds between the mock's streamed chunks (the first goes at once)
    #[arg(long, default_value_t = 1)]
    pub chunk_delay_ms: u64,
    /// Slices each run is cut into; the paths take turns slice by slice, so a change in the
    /// machine's load during a phase falls on all of them alike
    #[arg(long, default_value_t = 4)]
    pub rounds: u32,
    /// Runs the whole measurement this many times against the same processes and judges each
    /// target by the median of the runs (every run's figures and verdicts are printed too)
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// A smoke run of about 25 seconds: the target rate only, short runs
    #[arg(long)]
    pub quick: bool,
    /// Redis mode: Tollgate keeps its counters in this Redis (`redis://…` or `redis+cluster://…`),
    /// under a key prefix of this run's own; without it, in memory
    #[arg(long)]
    pub redis_url: Option<String>,
}

/// Run lengths, checked. `fixed`, `full` and `stream` are the length of one slice: a path's run
/// is `rounds` of them.
#[derive(Debug, Clone)]
struct Plan {
    rates: Vec<u32>,
    target_rate: u32,
    fixed: Duration,
    target_fixed: Duration,
    full: Duration,
    stream: Duration,
    warmup: Duration,
    rounds: u32,
    repeat: u32,
}

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 && value <= 600.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!("--{name}: must be between 0 and 600 seconds"))
    }
}

impl Options {
    fn plan(&self) -> Result<Plan, String> {
        let quick = |normal: f64, short: f64| if self.quick { short } else { normal };
        let mut rates: Vec<u32> = if self.quick { vec![self.target_rate] } else { self.rates.clone() };
        if !rates.contains(&self.target_rate) {
            rates.push(self.target_rate);
        }
        if rates.iter().chain([&self.stream_rate]).any(|r| !(1..=100_000).contains(r)) {
            return Err("rates must be between 1 and 100000 requests/s".to_owned());
        }
        if !(1..=1024).contains(&self.connections) || !(1..=1024).contains(&self.concurrency) {
            return Err("--connections and --concurrency must be between 1 and 1024".to_owned());
        }
        if !(1..=20).contains(&self.rounds) {
            return Err("--rounds must be between 1 and 20".to_owned());
        }
        if !(1..=20).contains(&self.repeat) {
            return Err("--repeat must be between 1 and 20".to_owned());
        }
        let rounds = if self.quick { self.rounds.min(2) } else { self.rounds };
        let slice = |name: &str, total: f64| seconds(name, total).map(|d| d / rounds);
        Ok(Plan {
            rates,
            target_rate: self.target_rate,
            fixed: slice("duration", quick(self.duration, 2.5))?,
            target_fixed: slice("target-duration", quick(self.target_duration, 2.5))?,
            full: slice("full-duration", quick(self.full_duration, 1.5))?,
            stream: slice("stream-duration", quick(self.stream_duration, 1.5))?,
            warmup: seconds("warmup", quick(self.warmup, 0.3))?,
            rounds,
            repeat: self.repeat,
        })
    }
}

impl Plan {
    /// The length of one slice of a fixed-rate run at `rate`.
    fn slice_at(&self, rate: u32) -> Duration {
        if rate == self.target_rate { self.target_fixed } else { self.fixed }
    }
}

/// CPU time the serving process, the mock upstream and this process (the load) spent while `run`
/// ran and for `settle` after it (work the server defers, such as Tollgate's batched usage writes,
/// is charged to the requests that caused it).
async fn measure(server: u32, mock: u32, settle: Duration, run: impl Future<Output = Result<Stats, String>>) -> Result<Measured, String> {
    let pids = [server, mock, std::process::id()];
    let mut before = [Duration::ZERO; 3];
    for (pid, t) in pids.iter().zip(&mut before) {
        *t = procstat::cpu_time(*pid)?;
    }
    let switches = procstat::context_switches(server)?;
    let stats = run.await?;
    tokio::time::sleep(settle).await;
    let switches = procstat::context_switches(server)?.saturating_sub(switches);
    let mut spent = [Duration::ZERO; 3];
    for ((pid, t), b) in pids.iter().zip(&mut spent).zip(before) {
        *t = procstat::cpu_time(*pid)?.saturating_sub(b);
    }
    let [cpu, mock_cpu, client_cpu] = spent;
    Ok(Measured { stats, cpu, mock_cpu: (server != mock).then_some(mock_cpu), client_cpu, switches })
}

#[derive(Debug)]
struct UsageStart {
    at: Instant,
    processes: HashMap<u32, Duration>,
    steal: Duration,
}

impl UsageStart {
    fn now() -> Result<UsageStart, String> {
        Ok(UsageStart { at: Instant::now(), processes: procstat::all_processes(), steal: procstat::stolen()? })
    }

    fn usage(&self, ours: &[u32]) -> Result<Usage, String> {
        let others = procstat::all_processes()
            .into_iter()
            .filter(|(pid, _)| !ours.contains(pid))
            .map(|(pid, cpu)| cpu.saturating_sub(self.processes.get(&pid).copied().unwrap_or_default()))
            .sum();
        Ok(Usage { wall: self.at.elapsed(), others, steal: procstat::stolen()?.saturating_sub(self.steal) })
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// Starts everything, runs the phases (the paths taking turns slice by slice within a phase, so
/// drift in the machine's load touches all three alike) and prints the report.
pub async fn run(options: Options, say: fn(&str)) -> Result<(), String> {
    let plan = options.plan()?;
    let load_before = load_average();
    let tollgate_bin = spawn::tollgate_binary(options.tollgate_bin.as_deref())?;
    let dir = tempfile::Builder::new().prefix("tollgate-bench-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let delay = options.chunk_delay_ms.to_string();
    let mock = spawn::start("mock", spawn::own(&["mock", "--port", "0", "--chunk-delay-ms", &delay])?, None)?;
    let upstream = format!("http://{}", mock.addr);
    let forwarder = spawn::start("forwarder", spawn::own(&["forward", "--listen", "127.0.0.1:0", "--upstream", &upstream])?, None)?;
    let tollgate = setup::start_tollgate(&tollgate_bin, dir.path(), mock.addr, options.redis_url.as_deref())?;
    let admin = Admin::new(tollgate.addr)?;
    let governed = admin.govern().await?;
    say(&format!(
        "mock {} (pid {}), forwarder {} (pid {}), tollgate {} (pid {}, {}, counters {}); load average {load_before}",
        mock.addr,
        mock.pid(),
        forwarder.addr,
        forwarder.pid(),
        tollgate.addr,
        tollgate.pid(),
        tollgate_bin.display(),
        if options.redis_url.is_some() { "in redis" } else { "in memory" }
    ));
    let targets = [
        (Target::new("direct", mock.addr, setup::UPSTREAM_MODEL, "bench")?, &mock),
        (Target::new("forwarder", forwarder.addr, setup::UPSTREAM_MODEL, "bench")?, &forwarder),
        (Target::new("tollgate", tollgate.addr, setup::GOVERNED_MODEL, &governed.key)?, &tollgate),
    ];
    let stage = Stage { targets: &targets, mock_pid: mock.pid(), ours: [mock.pid(), forwarder.pid(), tollgate.pid(), std::process::id()] };
    let mut judged = Vec::new();
    let mut governed_requests = 0;
    for run in 1..=plan.repeat {
        if plan.repeat > 1 {
            say(&format!("\n== run {run} of {}", plan.repeat));
        }
        let load_before = if run == 1 { load_before.clone() } else { load_average() };
        let (paths, machine) = stage.measure(&plan, &options, say).await?;
        governed_requests += paths.get(2).map_or(0, |p| p.answered);
        // The last run settled past the writer's flush; the charge shows governance really ran.
        let charged = admin.spent(&governed.user).await?;
        let context = Context {
            load_before,
            load_after: load_average(),
            target_rate: plan.target_rate,
            stream_rate: options.stream_rate,
            concurrency: options.concurrency,
            charged,
            governed_requests,
            machine,
        };
        let results = Results { paths, context };
        let verdicts = verdict::judge(&results);
        report::print(&results, &verdicts, say);
        judged.push(verdicts);
    }
    if plan.repeat > 1 {
        say(&format!(
            "\nTargets over {} runs (each judged on its own; the result is the median's)\n{}",
            plan.repeat,
            verdict::summary(&judged)
        ));
    }
    drop((tollgate, forwarder, mock));
    Ok(())
}

/// The three running paths, measured one whole run at a time.
struct Stage<'a> {
    targets: &'a [(Arc<Target>, &'a spawn::Child)],
    mock_pid: u32,
    /// The benchmark's own processes, left out of the machine's other load.
    ours: [u32; 4],
}

impl Stage<'_> {
    /// One whole run: warm-up, the fixed rates, the streams and full speed, each phase with the
    /// paths taking turns slice by slice; returns what each path measured and the machine's load.
    async fn measure(&self, plan: &Plan, options: &Options, say: fn(&str)) -> Result<(Vec<Path>, Usage), String> {
        let targets = self.targets;
        let machine_before = UsageStart::now()?;
        let mut paths: Vec<Path> = targets.iter().map(|(t, child)| Path::new(t.name, child.name)).collect();
        for ((target, _), path) in targets.iter().zip(&mut paths) {
            check(target).await?;
            let mut warm = Pool::new(target.addr, options.concurrency.min(8));
            path.answered += 2 + load::closed_loop(target, &mut warm, plan.warmup, false).await?.ok;
        }
        // Tollgate's writer persists the warm-up before anything is measured.
        tokio::time::sleep(SETTLE).await;
        let phases = Phases { targets, mock_pid: self.mock_pid, rounds: plan.rounds, say };
        let mut pools: Vec<Pool> = targets.iter().map(|(t, _)| Pool::new(t.addr, options.connections)).collect();
        for &rate in &plan.rates {
            let label = format!("{rate}/s");
            let track_rss = rate == plan.target_rate;
            let length = plan.slice_at(rate);
            let runs = phases
                .run(&mut paths, &mut pools, &label, track_rss, async |target, pool| {
                    load::open_loop(target, pool, rate, length, false).await
                })
                .await?;
            for (path, run) in paths.iter_mut().zip(runs) {
                path.fixed.push((rate, run));
            }
        }
        let label = format!("stream {}/s", options.stream_rate);
        let runs = phases
            .run(&mut paths, &mut pools, &label, false, async |target, pool| {
                load::open_loop(target, pool, options.stream_rate, plan.stream, true).await
            })
            .await?;
        for (path, run) in paths.iter_mut().zip(runs) {
            path.stream = Some(run);
        }
        let mut pools: Vec<Pool> = targets.iter().map(|(t, _)| Pool::new(t.addr, options.concurrency)).collect();
        let label = format!("full speed ×{}", options.concurrency);
        let runs = phases
            .run(&mut paths, &mut pools, &label, false, async |target, pool| load::closed_loop(target, pool, plan.full, false).await)
            .await?;
        for ((path, run), (_, child)) in paths.iter_mut().zip(runs).zip(targets) {
            path.full = Some(run);
            path.rss_end = procstat::peak_rss(child.pid()).ok();
        }
        Ok((paths, machine_before.usage(&self.ours)?))
    }
}

/// How a phase is run: each path's run is cut into `rounds` slices and the paths take turns,
/// slice by slice; a path's slices are measured one by one and added up.
struct Phases<'a> {
    targets: &'a [(Arc<Target>, &'a spawn::Child)],
    mock_pid: u32,
    rounds: u32,
    say: fn(&str),
}

impl Phases<'_> {
    /// Runs `slice` for every path, `rounds` times over; with `track_rss`, each path's peak RSS is
    /// reset before each of its slices and the highest peak kept.
    async fn run(
        &self,
        paths: &mut [Path],
        pools: &mut [Pool],
        label: &str,
        track_rss: bool,
        mut slice: impl AsyncFnMut(&Arc<Target>, &mut Pool) -> Result<Stats, String>,
    ) -> Result<Vec<Measured>, String> {
        let mut runs: Vec<Option<Measured>> = self.targets.iter().map(|_| None).collect();
        for _ in 0..self.rounds {
            for (((target, child), path), (pool, run)) in self.targets.iter().zip(paths.iter_mut()).zip(pools.iter_mut().zip(&mut runs)) {
                let pid = child.pid();
                if track_rss {
                    path.rss_before = path.rss_before.or_else(|| procstat::peak_rss(pid).ok());
                    path.rss_reset = procstat::reset_peak(pid);
                }
                let settle = if target.name == "tollgate" { SETTLE } else { Duration::ZERO };
                let measured = measure(pid, self.mock_pid, settle, slice(target, pool)).await?;
                if track_rss {
                    path.rss_at_target = path.rss_at_target.max(procstat::peak_rss(pid).ok());
                }
                match run {
                    Some(total) => total.absorb(measured)?,
                    None => *run = Some(measured),
                }
            }
        }
        let mut done = Vec::with_capacity(runs.len());
        for (path, run) in paths.iter_mut().zip(runs) {
            let run = run.ok_or("a phase ran no slice")?;
            (self.say)(&report::progress(path.name, label, &run));
            path.answered += run.stats.ok;
            done.push(run);
        }
        Ok(done)
    }
}

/// One plain and one streamed request must come back whole before any load.
async fn check(target: &Arc<Target>) -> Result<(), String> {
    let plain = load::probe(target, false).await.map_err(|e| format!("{}: plain request failed: {e}", target.name))?;
    if !plain.contains("\"usage\"") {
        return Err(format!("{}: plain answer without usage: {plain}", target.name));
    }
    let streamed = load::probe(target, true).await.map_err(|e| format!("{}: streamed request failed: {e}", target.name))?;
    if !streamed.contains("data: [DONE]") || !streamed.contains("\"usage\"") {
        return Err(format!("{}: streamed answer incomplete: {streamed}", target.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
    }

    fn planned(args: &[&str]) -> Result<Plan, String> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map_err(|e| e.to_string())?.options.plan()
    }

    #[test]
    fn the_judged_rate_runs_three_times_longer_than_the_others_by_default_and_each_length_is_split_into_slices() {
        let plan = planned(&[]).expect("defaults are valid");
        assert_eq!(plan.slice_at(1000), Duration::from_secs(6), "24 s in 4 slices");
        assert_eq!(plan.slice_at(200), Duration::from_secs(2), "8 s in 4 slices");
        let plan = planned(&["--target-rate", "500", "--target-duration", "12", "--rounds", "2"]).expect("valid");
        assert_eq!((plan.slice_at(500), plan.slice_at(1000)), (Duration::from_secs(6), Duration::from_secs(4)));
        let quick = planned(&["--quick"]).expect("valid");
        assert_eq!(quick.slice_at(1000), Duration::from_millis(1250), "a smoke run stays short");
    }

    #[test]
    fn a_target_duration_out_of_range_is_refused_by_name() {
        for bad in ["0", "-1", "601", "NaN"] {
            let refused = planned(&[&format!("--target-duration={bad}")]).expect_err(bad);
            assert!(refused.contains("--target-duration"), "{bad}: {refused}");
        }
    }
}
