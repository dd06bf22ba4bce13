//! The printed report: absolute numbers per path, what Tollgate adds against the forwarder's floor, and PASS/FAIL per target.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::load::Stats;
use crate::mock;
use crate::verdict::{self, Judged};

/// Micro-dollars per answered request at the configured prices ($0.1 in, $0.4 out per million
/// tokens), rounded up to a whole micro-dollar as Tollgate charges each request.
const MICRODOLLARS_PER_REQUEST: u64 = (mock::PROMPT_TOKENS * 100_000 + mock::COMPLETION_TOKENS * 400_000).div_ceil(1_000_000);

/// A run and the CPU time spent meanwhile.
#[derive(Debug)]
pub struct Measured {
    pub stats: Stats,
    /// By the serving process (the mock itself on the direct path).
    pub cpu: Duration,
    /// By the mock behind a proxy.
    pub mock_cpu: Option<Duration>,
    /// By the benchmark process (the load).
    pub client_cpu: Duration,
    /// Context switches of the serving process's threads.
    pub switches: u64,
}

impl Measured {
    /// Adds a later slice of the same run (requests, times, CPU and switches).
    pub fn absorb(&mut self, slice: Measured) -> Result<(), String> {
        self.stats.append(slice.stats)?;
        self.cpu += slice.cpu;
        self.mock_cpu = match (self.mock_cpu, slice.mock_cpu) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.client_cpu += slice.client_cpu;
        self.switches += slice.switches;
        Ok(())
    }

    /// CPU microseconds per answered request.
    fn per_request(&self, cpu: Duration) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
        let ok = self.stats.ok as f64;
        if self.stats.ok > 0 { cpu.as_secs_f64() * 1e6 / ok } else { f64::NAN }
    }

    /// CPU microseconds of the serving process per answered request.
    pub(crate) fn cpu_per_request(&self) -> f64 {
        self.per_request(self.cpu)
    }

    /// Context switches of the serving process per answered request.
    fn switches_per_request(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let (switches, ok) = (self.switches as f64, self.stats.ok as f64);
        if self.stats.ok > 0 { switches / ok } else { f64::NAN }
    }
}

/// Everything measured on one path (direct, forwarder, tollgate).
#[derive(Debug)]
pub struct Path {
    pub name: &'static str,
    /// The process measured for CPU and memory (the mock for the direct path).
    pub process: &'static str,
    pub fixed: Vec<(u32, Measured)>,
    pub stream: Option<Measured>,
    pub full: Option<Measured>,
    /// VmHWM before the target-rate run, whether it could be reset, and after that run and at the end.
    pub rss_before: Option<u64>,
    pub rss_reset: bool,
    pub rss_at_target: Option<u64>,
    pub rss_end: Option<u64>,
    /// Every answered request, warm-up and checks included.
    pub answered: u64,
}

impl Path {
    pub fn new(name: &'static str, process: &'static str) -> Path {
        Path {
            name,
            process,
            fixed: Vec::new(),
            stream: None,
            full: None,
            rss_before: None,
            rss_reset: false,
            rss_at_target: None,
            rss_end: None,
            answered: 0,
        }
    }

    pub(crate) fn at(&self, rate: u32) -> Option<&Measured> {
        self.fixed.iter().find(|(r, _)| *r == rate).map(|(_, m)| m)
    }
}

#[derive(Debug)]
pub struct Context {
    pub load_before: String,
    pub load_after: String,
    pub target_rate: u32,
    pub stream_rate: u32,
    pub concurrency: usize,
    /// Dollars on the copy's profile and provider-config budgets after the run.
    pub charged: (f64, f64),
    pub governed_requests: u64,
    /// CPU use of the machine and of the benchmark's processes over the measured runs.
    pub machine: crate::bench::Usage,
}

#[derive(Debug)]
pub struct Results {
    pub paths: Vec<Path>,
    pub context: Context,
}

#[expect(clippy::cast_precision_loss, reason = "nanoseconds of a benchmark fit an f64 well")]
pub(crate) fn us(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

#[expect(clippy::cast_precision_loss, reason = "bytes of a process fit an f64 well")]
pub(crate) fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One line while the benchmark runs.
pub fn progress(path: &str, phase: &str, run: &Measured) -> String {
    let s = &run.stats;
    format!(
        "  {path:<9} {phase:<16} {:>7} ok {:>3} err {:>3} missed {:>9.1}/s  p50 {:>8.1} µs  p99 {:>8.1} µs  CPU {:>6.1} µs/req",
        s.ok,
        s.errors,
        s.missed,
        s.throughput(),
        us(&s.latency, 0.5),
        us(&s.latency, 0.99),
        run.cpu_per_request(),
    )
}

/// Rows as an aligned table: the first column left, the others right.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c == 0 {
                let _ = write!(line, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(line, "  {}{cell}", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

pub(crate) fn f1(value: f64) -> String {
    if value.is_finite() { format!("{value:.1}") } else { "n/a".to_owned() }
}

fn absolute_tables(results: &Results) -> String {
    let mut out = String::from("Fixed rates — latency from the scheduled send to the last byte (µs)\n");
    let mut rows = vec![row(&[
        "path",
        "rate/s",
        "achieved/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "errors",
        "missed",
        "CPU µs/req",
        "switches/req",
        "start lag p50/p99",
    ])];
    for path in &results.paths {
        for (rate, m) in &path.fixed {
            let s = &m.stats;
            rows.push(vec![
                path.name.to_owned(),
                rate.to_string(),
                f1(s.throughput()),
                f1(us(&s.latency, 0.5)),
                f1(us(&s.latency, 0.9)),
                f1(us(&s.latency, 0.99)),
                f1(us(&s.latency, 0.999)),
                f1(us(&s.latency, 1.0)),
                s.errors.to_string(),
                s.missed.to_string(),
                f1(m.cpu_per_request()),
                f1(m.switches_per_request()),
                format!("{}/{}", f1(us(&s.lag, 0.5)), f1(us(&s.lag, 0.99))),
            ]);
        }
    }
    out.push_str(&table(&rows));
    let _ = writeln!(out, "\nStreamed at {}/s — first body byte and whole stream (µs)", results.context.stream_rate);
    let mut rows = vec![row(&["path", "TTFB p50", "TTFB p99", "total p50", "total p99", "errors", "CPU µs/req"])];
    for path in &results.paths {
        if let Some(m) = &path.stream {
            let s = &m.stats;
            rows.push(vec![
                path.name.to_owned(),
                f1(us(&s.ttfb, 0.5)),
                f1(us(&s.ttfb, 0.99)),
                f1(us(&s.latency, 0.5)),
                f1(us(&s.latency, 0.99)),
                (s.errors + s.missed).to_string(),
                f1(m.cpu_per_request()),
            ]);
        }
    }
    out.push_str(&table(&rows));
    let _ = writeln!(out, "\nFull speed — {} connections, closed loop", results.context.concurrency);
    let mut rows = vec![row(&[
        "path (process)",
        "req/s",
        "p50 µs",
        "p99 µs",
        "errors",
        "CPU µs/req",
        "switches/req",
        "mock CPU",
        "load CPU",
        "peak RSS MB (at target rate / lifetime)",
    ])];
    for path in &results.paths {
        if let Some(m) = &path.full {
            let s = &m.stats;
            let lifetime = [path.rss_before, path.rss_at_target, path.rss_end].into_iter().flatten().max();
            rows.push(vec![
                format!("{} ({})", path.name, path.process),
                f1(s.throughput()),
                f1(us(&s.latency, 0.5)),
                f1(us(&s.latency, 0.99)),
                s.errors.to_string(),
                f1(m.cpu_per_request()),
                f1(m.switches_per_request()),
                m.mock_cpu.map_or("-".to_owned(), |c| f1(m.per_request(c))),
                f1(m.per_request(m.client_cpu)),
                format!("{} / {}", f1(path.rss_at_target.map_or(f64::NAN, mb)), f1(lifetime.map_or(f64::NAN, mb))),
            ]);
        }
    }
    out.push_str(&table(&rows));
    out
}

/// Prints the whole report.
pub fn print(results: &Results, judged: &[Judged], say: fn(&str)) {
    let c = &results.context;
    say(&format!("\n{}", absolute_tables(results)));
    say(&format!("Targets (added = the path's percentile minus the direct path's at the same rate)\n{}", verdict::targets(judged)));
    for path in &results.paths {
        let runs = path.fixed.iter().map(|(_, m)| m).chain(&path.stream).chain(&path.full);
        for m in runs.filter(|m| m.stats.errors + m.stats.missed > 0) {
            say(&format!(
                "warning: {} had {} errors and {} missed requests; first error: {}",
                path.name,
                m.stats.errors,
                m.stats.missed,
                m.stats.first_error.as_deref().unwrap_or("-")
            ));
        }
        if path.name == "tollgate" && !path.rss_reset {
            say("note: the peak RSS could not be reset before the target-rate run; it is the peak since start-up");
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "micro-dollar counts are far below 2^52")]
    let expected = (c.governed_requests * MICRODOLLARS_PER_REQUEST) as f64 / 1e6;
    say(&format!(
        "governance: {} requests answered through Tollgate; charged ${:.6} to the profile budget and ${:.6} to the provider budget \
         (expected ${expected:.6}: {MICRODOLLARS_PER_REQUEST} micro-dollars each)",
        c.governed_requests, c.charged.0, c.charged.1
    ));
    let m = &c.machine;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let capacity = m.wall.as_secs_f64() * f64::from(u32::try_from(cpus).unwrap_or(1));
    say(&format!(
        "machine: {cpus} CPUs × {:.1} s = {capacity:.1} CPU-s; other processes took {:.1} CPU-s ({:.1}%), the hypervisor stole {:.1} CPU-s",
        m.wall.as_secs_f64(),
        m.others.as_secs_f64(),
        100.0 * m.others.as_secs_f64() / capacity.max(1e-9),
        m.steal.as_secs_f64(),
    ));
    say(&format!("load average before {} / after {}", c.load_before, c.load_after));
}
