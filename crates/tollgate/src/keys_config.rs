//! The `[keys]` section of the config file: how long a rotated key's previous value keeps working,
//! and how often the scheduler looks for keys due for rotation.

use std::time::Duration;

use tollgate_core::rotation::DEFAULT_GRACE;

/// Longest grace period: a previous value may outlive its rotation by a week at most.
const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;
/// Longest pause between two looks for due keys: a key is rotated within a minute of its time.
const MAX_CHECK_SECS: u64 = 60;

/// Settings of the managed keys' lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysConfig {
    /// How long the value a rotation replaced still authenticates.
    pub rotation_grace: Duration,
    /// Pause between two passes of the rotation scheduler.
    pub rotation_check: Duration,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self { rotation_grace: DEFAULT_GRACE, rotation_check: Duration::from_secs(30) }
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

/// Reads `[keys]`; every problem goes to `problems`, and a setting with one keeps its default.
pub fn parse(value: Option<&toml::Value>, problems: &mut Vec<String>) -> KeysConfig {
    let mut config = KeysConfig::default();
    let Some(value) = value else { return config };
    let Some(table) = value.as_table() else {
        problems.push("keys: must be a table".to_owned());
        return config;
    };
    for (key, v) in table {
        let at = format!("keys.{key}");
        match key.as_str() {
            "rotation_grace_secs" => {
                if let Some(n) = whole(problems, &at, v, 0..=MAX_GRACE_SECS) {
                    config.rotation_grace = Duration::from_secs(n);
                }
            }
            "rotation_check_secs" => {
                if let Some(n) = whole(problems, &at, v, 1..=MAX_CHECK_SECS) {
                    config.rotation_check = Duration::from_secs(n);
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
    fn key_settings_are_read_and_values_out_of_range_are_named() {
        let good: toml::Value = toml::from_str("rotation_grace_secs = 0\nrotation_check_secs = 1").unwrap_or_else(|e| panic!("{e}"));
        let mut problems = Vec::new();
        let config = parse(Some(&good), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config, KeysConfig { rotation_grace: Duration::ZERO, rotation_check: Duration::from_secs(1) });
        let bad: toml::Value =
            toml::from_str("rotation_grace_secs = 604801\nrotation_check_secs = 61\nspeed = 1").unwrap_or_else(|e| panic!("{e}"));
        let config = parse(Some(&bad), &mut problems);
        assert_eq!(config, KeysConfig::default(), "a refused value keeps its default");
        for needle in ["keys.rotation_grace_secs", "keys.rotation_check_secs", "keys.speed: unknown"] {
            assert!(problems.iter().any(|p| p.starts_with(needle)), "{needle} missing from {problems:?}");
        }
    }
}
