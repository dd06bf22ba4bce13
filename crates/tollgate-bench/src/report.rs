//! The printed report: absolute numbers per path, what Tollgate adds against the forwarder's floor, and PASS/FAIL per target.

use std::fmt::Write as _;

use crate::results::{MICRODOLLARS_PER_REQUEST, Measured, Results};
use crate::tables::{f1, mb, row, table, us};
use crate::verdict::{self, Judged};

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
