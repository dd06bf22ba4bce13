//! CPU time, memory and context switches of processes from /proc (Linux).

use std::collections::HashMap;
use std::time::Duration;

/// Clock ticks per second of `utime`/`stime` (USER_HZ, 100 on Linux's common architectures).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of the process, all threads, living and exited.
pub fn cpu_time(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name (field 2) is in parentheses and may hold spaces; count fields after it.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" come field 3 (state) onwards: utime is field 14, stime field 15.
    let tick = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| format!("/proc/{pid}/stat: no field {i}"));
    let ticks = tick(14)? + tick(15)?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// A `Vm…` line of /proc/<pid>/status, in bytes.
fn status_kb(pid: u32, key: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("/proc/{pid}/status: no {key}"))
}

/// Resident set size now, in bytes.
pub fn rss(pid: u32) -> Result<u64, String> {
    status_kb(pid, "VmRSS")
}

/// The machine's load averages over 1, 5 and 15 minutes, as the kernel gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|e| e.to_string(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Peak resident set size since start (or since [`reset_peak`]), in bytes.
pub fn peak_rss(pid: u32) -> Result<u64, String> {
    status_kb(pid, "VmHWM")
}

/// Resets the peak RSS to the current RSS (Linux 4.0+); false when the kernel refuses.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Context switches (voluntary and not) of the process's living threads.
pub fn context_switches(pid: u32) -> Result<u64, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| format!("/proc/{pid}/task: {e}"))?;
    let mut total = 0;
    for task in tasks.flatten() {
        // A thread may end between listing and reading; it is skipped.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        total += status
            .lines()
            .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}

/// CPU time stolen by the hypervisor from all CPUs, from /proc/stat.
pub fn stolen() -> Result<Duration, String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).ok_or("/proc/stat: no cpu line")?;
    // cpu user nice system idle iowait irq softirq steal …
    let steal = line.split_whitespace().nth(8).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    Ok(Duration::from_millis(steal * 1000 / TICKS_PER_SECOND))
}

/// CPU time of every process on the machine, by pid: its own plus that of its children it has
/// reaped (so work of short-lived compilers shows up in their parent).
pub fn all_processes() -> HashMap<u32, Duration> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A process may end between listing and reading; it is skipped.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<u64> = rest.split_whitespace().skip(11).take(4).filter_map(|f| f.parse().ok()).collect();
        out.insert(pid, Duration::from_millis(fields.iter().sum::<u64>() * 1000 / TICKS_PER_SECOND));
    }
    out
}

/// CPU time other processes on the machine took while the benchmark ran (the three children and
/// this process excluded), and what the hypervisor stole.
#[derive(Debug, Clone)]
pub struct Usage {
    pub wall: Duration,
    pub others: Duration,
    pub steal: Duration,
}
