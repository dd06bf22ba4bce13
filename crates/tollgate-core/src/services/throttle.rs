//! Failed-login throttling: after `max_failures` failed admin logins for one (client address,
//! username) pair within `window`, that pair is refused for `window` without its password being
//! checked, so guessing costs the guesser time and the server no Argon2. Pure bookkeeping; the
//! caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default failed logins allowed per pair within the window.
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// Default window, and how long a pair is refused once it has used its failures.
pub const DEFAULT_WINDOW: Duration = Duration::from_mins(1);
/// Pairs tracked at most; beyond, pairs with nothing left to remember are forgotten first.
const MAX_TRACKED: usize = 10_000;
/// Characters of a username kept in a key (longer ones are cut, so a key stays small).
const USERNAME_CHARS: usize = 128;

/// How many failures a pair may have, and for how long they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self { max_failures: DEFAULT_MAX_FAILURES, window: DEFAULT_WINDOW }
    }
}

type Key = (Option<IpAddr>, String);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// When the first of `failures` happened.
    since: Instant,
    locked_until: Option<Instant>,
}

/// The failures of every (address, username) pair seen recently.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<Key, Entry>>,
}

fn key(client: Option<IpAddr>, username: &str) -> Key {
    (client, username.chars().take(USERNAME_CHARS).collect())
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self { policy: ThrottlePolicy { max_failures: policy.max_failures.max(1), ..policy }, entries: Mutex::default() }
    }

    /// `Err(wait)` while the pair is locked out: the login must be refused, whatever its password.
    pub fn check(&self, client: Option<IpAddr>, username: &str, now: Instant) -> Result<(), Duration> {
        let Ok(entries) = self.entries.lock() else { return Ok(()) };
        match entries.get(&key(client, username)).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed login; the one that uses up the pair's failures locks it for the window.
    pub fn failed(&self, client: Option<IpAddr>, username: &str, now: Instant) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= MAX_TRACKED {
            let window = self.policy.window;
            entries.retain(|_, e| e.locked_until.is_some_and(|u| u > now) || now.duration_since(e.since) < window);
            if entries.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = entries.entry(key(client, username)).or_insert(Entry { failures: 0, since: now, locked_until: None });
        if now.duration_since(entry.since) >= self.policy.window || entry.locked_until.is_some_and(|u| u <= now) {
            *entry = Entry { failures: 0, since: now, locked_until: None };
        }
        entry.failures += 1;
        if entry.failures >= self.policy.max_failures {
            entry.locked_until = Some(now + self.policy.window);
        }
    }

    /// A successful login forgets the pair's failures.
    pub fn succeeded(&self, client: Option<IpAddr>, username: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&key(client, username));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn a_pair_is_locked_for_the_window_after_its_failures_and_others_are_not() {
        let throttle = LoginThrottle::new(ThrottlePolicy { max_failures: 3, window: Duration::from_mins(1) });
        let t0 = Instant::now();
        for i in 0..2 {
            throttle.failed(IP, "admin", t0 + Duration::from_secs(i));
            assert_eq!(throttle.check(IP, "admin", t0 + Duration::from_secs(i)), Ok(()), "failure {i} does not lock yet");
        }
        throttle.failed(IP, "admin", t0 + Duration::from_secs(2));
        assert_eq!(throttle.check(IP, "admin", t0 + Duration::from_secs(12)), Err(Duration::from_secs(50)));
        assert_eq!(throttle.check(IP, "root", t0 + Duration::from_secs(12)), Ok(()), "another username is not locked");
        assert_eq!(throttle.check(None, "admin", t0 + Duration::from_secs(12)), Ok(()), "another address is not locked");
        assert_eq!(throttle.check(IP, "admin", t0 + Duration::from_secs(62)), Ok(()), "the lock ends with the window");
        throttle.failed(IP, "admin", t0 + Duration::from_secs(63));
        assert_eq!(throttle.check(IP, "admin", t0 + Duration::from_secs(63)), Ok(()), "a lapsed lock starts counting afresh");
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_lock_and_a_success_forgets_them() {
        let throttle = LoginThrottle::new(ThrottlePolicy { max_failures: 2, window: Duration::from_secs(10) });
        let t0 = Instant::now();
        throttle.failed(IP, "admin", t0);
        throttle.failed(IP, "admin", t0 + Duration::from_secs(10));
        assert_eq!(throttle.check(IP, "admin", t0 + Duration::from_secs(10)), Ok(()));
        throttle.succeeded(IP, "admin");
        throttle.failed(IP, "admin", t0 + Duration::from_secs(11));
        assert_eq!(throttle.check(IP, "admin", t0 + Duration::from_secs(11)), Ok(()), "the success reset the count");
        throttle.failed(IP, "admin", t0 + Duration::from_secs(12));
        assert!(throttle.check(IP, "admin", t0 + Duration::from_secs(12)).is_err());
    }
}
