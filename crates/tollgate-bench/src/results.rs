//! What a benchmark run measured: each path's runs at fixed rates and at full speed, with the CPU
//! and memory they took, and the machine's context.

use std::time::Duration;

use crate::load::Stats;
use crate::mock;

/// Micro-dollars per answered request at the configured prices ($0.1 in, $0.4 out per million
/// tokens), rounded up to a whole micro-dollar as Tollgate charges each request.
pub(crate) const MICRODOLLARS_PER_REQUEST: u64 = (mock::PROMPT_TOKENS * 100_000 + mock::COMPLETION_TOKENS * 400_000).div_ceil(1_000_000);

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
    pub(crate) fn per_request(&self, cpu: Duration) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
        let ok = self.stats.ok as f64;
        if self.stats.ok > 0 { cpu.as_secs_f64() * 1e6 / ok } else { f64::NAN }
    }

    /// CPU microseconds of the serving process per answered request.
    pub(crate) fn cpu_per_request(&self) -> f64 {
        self.per_request(self.cpu)
    }

    /// Context switches of the serving process per answered request.
    pub(crate) fn switches_per_request(&self) -> f64 {
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
    pub machine: crate::procstat::Usage,
}

#[derive(Debug)]
pub struct Results {
    pub paths: Vec<Path>,
    pub context: Context,
}
