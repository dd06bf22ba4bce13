//! Child processes (mock, forwarder, Tollgate): started, their address read from stdout, stopped on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a child may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a child may take to leave once asked, before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running child; dropping it stops it.
#[derive(Debug)]
pub struct Child {
    pub name: &'static str,
    pub addr: SocketAddr,
    process: std::process::Child,
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}

impl Drop for Child {
    /// Asks the child to leave as it would in service — this binary's own children when their
    /// standard input closes, Tollgate on SIGTERM (it flushes its usage) — so each process ends
    /// through its normal exit (which also lets a profiling build write its profile, see
    /// `scripts/pgo.sh`); one that has not left within [`STOP_TIMEOUT`] is killed.
    fn drop(&mut self) {
        if self.process.stdin.take().is_none() {
            let pid = i32::try_from(self.process.id()).ok().and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        while matches!(self.process.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Kills the process if start-up fails before it becomes a [`Child`].
struct Starting(Option<std::process::Child>);

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address in a line such as `listening on 127.0.0.1:80` or `… listening on http://127.0.0.1:80`.
fn address_in(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    rest.trim().trim_start_matches("http://").trim_end_matches('/').parse().ok()
}

/// Starts `command` and waits until it prints the address it listens on; `log` (if any) names
/// the file its stderr goes to, quoted when start-up fails.
pub fn start(name: &'static str, mut command: Command, log: Option<&Path>) -> Result<Child, String> {
    command.stdout(Stdio::piped());
    if let Some(path) = log {
        let file = std::fs::File::create(path).map_err(|e| format!("{name}: log file {}: {e}", path.display()))?;
        command.stderr(file);
    }
    let mut starting = Starting(Some(command.spawn().map_err(|e| format!("{name}: cannot start: {e}"))?));
    let stdout = starting.0.as_mut().and_then(|c| c.stdout.take()).ok_or_else(|| format!("{name}: no stdout"))?;
    let (tx, rx) = mpsc::channel();
    // Reads until the child closes stdout (at its end), so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = address_in(&line) {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx.recv_timeout(START_TIMEOUT).map_err(|_| {
        let tail = log.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        format!("{name}: did not report its address within {START_TIMEOUT:?}\n{}", tail.join("\n"))
    })?;
    let child = starting.0.take().ok_or_else(|| format!("{name}: lost"))?;
    Ok(Child { name, addr, process: child })
}

/// `tollgate-bench <args>` with the pipe that ends it when this process goes.
pub fn own(args: &[&str]) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut command = Command::new(exe);
    command.args(args).arg("--exit-on-eof").stdin(Stdio::piped());
    Ok(command)
}

/// The Tollgate binary: the one given, else `tollgate` beside this binary (same target directory).
pub fn tollgate_binary(given: Option<&Path>) -> Result<PathBuf, String> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("tollgate"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "Tollgate binary {} not found: build it with `cargo build --release -p tollgate` or pass --tollgate-bin",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::address_in;

    #[test]
    fn addresses_are_read_from_either_announcement() {
        assert_eq!(address_in("listening on 127.0.0.1:81").map(|a| a.port()), Some(81));
        assert_eq!(address_in("tollgate listening on http://127.0.0.1:82").map(|a| a.port()), Some(82));
        assert_eq!(address_in("hello"), None);
    }
}
