//! The `[alerts]` section of the config file: how budget-alert webhooks are retried and how long
//! one attempt may take.

use std::time::Duration;

/// Settings of budget-alert delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertsConfig {
    /// Pause before the second attempt; each later one waits twice the one before (capped at
    /// `MAX_BACKOFF`).
    pub retry_base: Duration,
    /// Attempts in all before an alert is given up as failed.
    pub max_attempts: u32,
    /// How long one POST may take, answer included.
    pub timeout: Duration,
}

/// Longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_hours(1);

impl Default for AlertsConfig {
    fn default() -> Self {
        Self { retry_base: Duration::from_secs(5), max_attempts: 8, timeout: Duration::from_secs(10) }
    }
}

impl AlertsConfig {
    /// The pause after `attempts` failed attempts: `retry_base × 2^(attempts − 1)`, capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        self.retry_base.checked_mul(factor).unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF)
    }

    /// How often pending alerts are looked for: as often as the shortest retry, at most every second.
    pub fn poll(&self) -> Duration {
        self.retry_base.min(Duration::from_secs(1))
    }

    /// How long an attempt holds its event against other instances: well past its timeout.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(30)
    }
}

/// A whole number in `range`, or a problem naming `at`.
fn whole(problems: &mut Vec<String>, at: &str, value: &toml::Value, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
    let read = value.as_integer().and_then(|n| u64::try_from(n).ok()).filter(|n| range.contains(n));
    if read.is_none() {
        problems.push(format!("{at}: must be a whole number from {} to {}", range.start(), range.end()));
    }
    read
}

/// Reads `[alerts]`; every problem goes to `problems`, and a setting with one keeps its default.
pub fn parse(value: Option<&toml::Value>, problems: &mut Vec<String>) -> AlertsConfig {
    let mut config = AlertsConfig::default();
    let Some(value) = value else { return config };
    let Some(table) = value.as_table() else {
        problems.push("alerts: must be a table".to_owned());
        return config;
    };
    for (key, v) in table {
        let at = format!("alerts.{key}");
        match key.as_str() {
            "retry_base_ms" => {
                if let Some(n) = whole(problems, &at, v, 10..=600_000) {
                    config.retry_base = Duration::from_millis(n);
                }
            }
            "max_attempts" => {
                if let Some(n) = whole(problems, &at, v, 1..=20) {
                    config.max_attempts = u32::try_from(n).unwrap_or(1);
                }
            }
            "timeout_ms" => {
                if let Some(n) = whole(problems, &at, v, 100..=60_000) {
                    config.timeout = Duration::from_millis(n);
                }
            }
            _ => problems.push(format!("{at}: unknown setting")),
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_settings_are_read_and_the_backoff_doubles_up_to_its_cap() {
        let good: toml::Value = toml::from_str("retry_base_ms = 100\nmax_attempts = 3\ntimeout_ms = 500").unwrap_or_else(|e| panic!("{e}"));
        let mut problems = Vec::new();
        let config = parse(Some(&good), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config, AlertsConfig { retry_base: Duration::from_millis(100), max_attempts: 3, timeout: Duration::from_millis(500) });
        let pauses: Vec<u128> = (1..=4).map(|n| config.backoff(n).as_millis()).collect();
        assert_eq!(pauses, vec![100, 200, 400, 800]);
        assert_eq!(AlertsConfig::default().backoff(40), MAX_BACKOFF);
        let bad: toml::Value = toml::from_str("retry_base_ms = 1\nmax_attempts = 0\nspeed = 1").unwrap_or_else(|e| panic!("{e}"));
        let config = parse(Some(&bad), &mut problems);
        assert_eq!(config, AlertsConfig::default(), "a refused value keeps its default");
        for needle in ["alerts.retry_base_ms", "alerts.max_attempts", "alerts.speed: unknown"] {
            assert!(problems.iter().any(|p| p.starts_with(needle)), "{needle} missing from {problems:?}");
        }
    }
}
