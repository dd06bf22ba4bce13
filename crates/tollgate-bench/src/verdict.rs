//! The targets of the benchmark: how each is judged on one run, and over repeated runs (by the
//! median of the runs that could judge it, every run's verdict shown beside it).

use crate::results::Results;
use crate::tables::{f1, mb, row, table, us};

/// Targets of the issue (2-core machine).
const ADDED_LATENCY_RATIO: f64 = 1.25;
const THROUGHPUT_RATIO: f64 = 0.8;
const CPU_RATIO: f64 = 1.5;
const TTFB_MARGIN_US: f64 = 200.0;
const RSS_LIMIT_MB: f64 = 64.0;

/// How a target is judged: a ratio to the forwarder's figure with a ceiling or a floor, a margin
/// over the forwarder's in microseconds, or an absolute ceiling in megabytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    AtMost(f64),
    AtLeast(f64),
    MarginUs(f64),
    BelowMb(f64),
}

impl Rule {
    fn passes(self, value: f64) -> bool {
        match self {
            Rule::AtMost(limit) | Rule::MarginUs(limit) => value <= limit,
            Rule::AtLeast(floor) => value >= floor,
            Rule::BelowMb(limit) => value < limit,
        }
    }

    /// The judged value as the report shows it.
    fn show(self, value: Option<f64>) -> String {
        match (self, value) {
            (_, None) => "n/a".to_owned(),
            (Rule::MarginUs(_), Some(v)) => format!("{v:+.1} µs"),
            (Rule::BelowMb(_), Some(v)) => format!("{v:.1} MB"),
            (_, Some(v)) => format!("{v:.2}×"),
        }
    }

    fn target(self) -> String {
        match self {
            Rule::AtMost(limit) => format!("≤ {limit}×"),
            Rule::AtLeast(floor) => format!("≥ {floor}×"),
            Rule::MarginUs(limit) => format!("≤ +{limit} µs"),
            Rule::BelowMb(limit) => format!("< {limit} MB"),
        }
    }
}

/// One target of one run: both paths' figures, the judged value (`None`: the run cannot judge
/// it) and the rule.
#[derive(Debug, Clone)]
pub struct Judged {
    pub label: String,
    pub forwarder: f64,
    pub tollgate: f64,
    /// What the rule is applied to (a ratio, a margin or Tollgate's own figure).
    pub value: Option<f64>,
    /// Shown in the ratio column when it differs from the judged value (RSS: the ratio to the forwarder).
    pub shown: Option<String>,
    pub rule: Rule,
}

impl Judged {
    pub fn pass(&self) -> Option<bool> {
        self.value.map(|v| self.rule.passes(v))
    }
}

/// Tollgate's value over the forwarder's, when the forwarder's is positive.
fn ratio(tollgate: f64, forwarder: f64) -> Option<f64> {
    (forwarder > 0.0 && tollgate.is_finite()).then(|| tollgate / forwarder)
}

/// The ratio of two added latencies, only when both are positive: a path whose percentile lies
/// below the direct path's shows that the direct path's own tail decided the figure, so the run
/// cannot judge that percentile (it is reported as n/a, never as a pass).
fn added_ratio(tollgate: f64, forwarder: f64) -> Option<f64> {
    ratio(tollgate, forwarder).filter(|_| tollgate > 0.0)
}

/// Every target this run can speak to, in the report's order.
pub fn judge(results: &Results) -> Vec<Judged> {
    let [direct, forwarder, tollgate] = &results.paths[..] else { return Vec::new() };
    let rate = results.context.target_rate;
    let mut judged = Vec::new();
    let mut push = |label: String, forwarder: f64, tollgate: f64, value: Option<f64>, rule: Rule| {
        judged.push(Judged { label, forwarder, tollgate, value, shown: None, rule });
    };
    if let (Some(d), Some(f), Some(t)) = (direct.at(rate), forwarder.at(rate), tollgate.at(rate)) {
        for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
            let base = us(&d.stats.latency, q);
            let (fa, ta) = (us(&f.stats.latency, q) - base, us(&t.stats.latency, q) - base);
            push(format!("added latency {label} @{rate}/s (µs)"), fa, ta, added_ratio(ta, fa), Rule::AtMost(ADDED_LATENCY_RATIO));
        }
        let (fc, tc) = (f.cpu_per_request(), t.cpu_per_request());
        push(format!("CPU per request @{rate}/s (µs)"), fc, tc, ratio(tc, fc), Rule::AtMost(CPU_RATIO));
    }
    if let (Some(f), Some(t)) = (&forwarder.full, &tollgate.full) {
        let (fr, tr) = (f.stats.throughput(), t.stats.throughput());
        push("max throughput (req/s)".to_owned(), fr, tr, ratio(tr, fr), Rule::AtLeast(THROUGHPUT_RATIO));
    }
    if let (Some(d), Some(f), Some(t)) = (&direct.stream, &forwarder.stream, &tollgate.stream) {
        let base = us(&d.stats.ttfb, 0.5);
        let (fa, ta) = (us(&f.stats.ttfb, 0.5) - base, us(&t.stats.ttfb, 0.5) - base);
        let label = format!("streamed first byte added p50 @{}/s (µs)", results.context.stream_rate);
        push(label, fa, ta, (fa.is_finite() && ta.is_finite()).then_some(ta - fa), Rule::MarginUs(TTFB_MARGIN_US));
    }
    let (fm, tm) = (forwarder.rss_at_target.map_or(f64::NAN, mb), tollgate.rss_at_target.map_or(f64::NAN, mb));
    judged.push(Judged {
        label: format!("peak RSS @{rate}/s (MB)"),
        forwarder: fm,
        tollgate: tm,
        value: tm.is_finite().then_some(tm),
        shown: Some(ratio(tm, fm).map_or("n/a".to_owned(), |r| format!("{r:.2}×"))),
        rule: Rule::BelowMb(RSS_LIMIT_MB),
    });
    judged
}

fn verdict(pass: Option<bool>) -> String {
    match pass {
        Some(true) => "PASS".to_owned(),
        Some(false) => "FAIL".to_owned(),
        None => "n/a".to_owned(),
    }
}

/// The target table of one run: forwarder and Tollgate side by side, ratio, target, verdict.
pub fn targets(judged: &[Judged]) -> String {
    let mut rows = vec![row(&["target", "forwarder", "tollgate", "tollgate/fwd", "target", "result"])];
    for j in judged {
        let shown = j.shown.clone().unwrap_or_else(|| j.rule.show(j.value));
        rows.push(vec![j.label.clone(), f1(j.forwarder), f1(j.tollgate), shown, j.rule.target(), verdict(j.pass())]);
    }
    table(&rows)
}

/// The median of the values (the mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])),
    }
}

/// The targets over repeated runs: each run's judged value, how many runs passed of those that
/// could judge the target, and the verdict of the median of those runs.
pub fn summary(runs: &[Vec<Judged>]) -> String {
    let Some(first) = runs.first() else { return String::new() };
    let mut header = vec!["target".to_owned()];
    header.extend((1..=runs.len()).map(|n| format!("run {n}")));
    header.extend(["passed", "median", "target", "result"].map(str::to_owned));
    let mut rows = vec![header];
    for (i, target) in first.iter().enumerate() {
        let values: Vec<Option<f64>> = runs.iter().map(|run| run.get(i).and_then(|j| j.value)).collect();
        let judged: Vec<f64> = values.iter().flatten().copied().collect();
        let passed = judged.iter().filter(|v| target.rule.passes(**v)).count();
        let middle = median(&judged);
        let mut line = vec![target.label.clone()];
        line.extend(values.iter().map(|v| target.rule.show(*v)));
        line.push(format!("{passed}/{}", judged.len()));
        line.push(target.rule.show(middle));
        line.push(target.rule.target());
        line.push(verdict(middle.map(|m| target.rule.passes(m))));
        rows.push(line);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_latency_is_judged_only_when_both_paths_add_some() {
        assert_eq!(added_ratio(150.0, 120.0), Some(1.25));
        assert_eq!(added_ratio(-212.0, 16.4), None, "below the direct path's own tail: not a pass");
        assert_eq!(added_ratio(80.0, -5.0), None);
        assert_eq!(added_ratio(0.0, 100.0), None);
    }

    fn throughput(value: Option<f64>) -> Judged {
        Judged {
            label: "max throughput".to_owned(),
            forwarder: 1.0,
            tollgate: 1.0,
            value,
            shown: None,
            rule: Rule::AtLeast(THROUGHPUT_RATIO),
        }
    }

    #[test]
    fn repeated_runs_are_judged_by_the_median_of_the_runs_that_could_judge_and_every_run_is_shown() {
        let runs: Vec<Vec<Judged>> =
            [Some(0.78), Some(0.84), None, Some(0.83), Some(0.81)].into_iter().map(|v| vec![throughput(v)]).collect();
        let text = summary(&runs);
        let line = text.lines().nth(1).unwrap_or_default();
        for shown in ["0.78×", "0.84×", "n/a", "0.83×", "0.81×", "3/4", "0.82×", "PASS"] {
            assert!(line.contains(shown), "{shown} missing from {line}");
        }
        let failing: Vec<Vec<Judged>> = [0.78, 0.79, 0.85].into_iter().map(|v| vec![throughput(Some(v))]).collect();
        let line = summary(&failing).lines().nth(1).unwrap_or_default().to_owned();
        assert!(line.contains("1/3") && line.contains("0.79×") && line.ends_with("FAIL"), "{line}");
        assert_eq!(median(&[3.0, 1.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
