//! The `[server]` section of the config file: what one client connection may hold (header-read
//! deadline, connections at once) and how failed admin logins are throttled.

use std::time::Duration;

use tollgate_core::services::throttle::ThrottlePolicy;

use crate::serve::ConnectionLimits;

/// Limits that protect the server from slow or abusive clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerConfig {
    pub connections: ConnectionLimits,
    pub login: ThrottlePolicy,
}

/// A whole number of at least 1, or a problem naming `at`.
fn positive(problems: &mut Vec<String>, at: &str, value: &toml::Value) -> Option<u64> {
    let read = value.as_integer().and_then(|n| u64::try_from(n).ok()).filter(|n| *n >= 1);
    if read.is_none() {
        problems.push(format!("{at}: must be a whole number of at least 1"));
    }
    read
}

/// Reads `[server]`; every problem goes to `problems`, and a setting with one keeps its default.
pub fn parse(value: Option<&toml::Value>, problems: &mut Vec<String>) -> ServerConfig {
    let mut config = ServerConfig::default();
    let Some(value) = value else { return config };
    let Some(table) = value.as_table() else {
        problems.push("server: must be a table".to_owned());
        return config;
    };
    for (key, v) in table {
        let at = format!("server.{key}");
        match key.as_str() {
            "header_read_timeout_secs" => {
                if let Some(n) = positive(problems, &at, v) {
                    config.connections.header_read_timeout = Duration::from_secs(n);
                }
            }
            "max_connections" => {
                if let Some(n) = positive(problems, &at, v) {
                    config.connections.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
                }
            }
            "login_max_failures" => {
                if let Some(n) = positive(problems, &at, v) {
                    config.login.max_failures = u32::try_from(n).unwrap_or(u32::MAX);
                }
            }
            "login_lockout_secs" => {
                if let Some(n) = positive(problems, &at, v) {
                    config.login.window = Duration::from_secs(n);
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
    fn server_limits_are_read_and_bad_values_are_named() {
        let good: toml::Value =
            toml::from_str("header_read_timeout_secs = 2\nmax_connections = 10\nlogin_max_failures = 3\nlogin_lockout_secs = 7")
                .unwrap_or_else(|e| panic!("{e}"));
        let mut problems = Vec::new();
        let config = parse(Some(&good), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.connections, ConnectionLimits { header_read_timeout: Duration::from_secs(2), max_connections: 10 });
        assert_eq!(config.login, ThrottlePolicy { max_failures: 3, window: Duration::from_secs(7) });
        let bad: toml::Value =
            toml::from_str("header_read_timeout_secs = 0\nmax_connections = \"many\"\nspeed = 1").unwrap_or_else(|e| panic!("{e}"));
        let config = parse(Some(&bad), &mut problems);
        assert_eq!(config, ServerConfig::default(), "a refused value keeps its default");
        assert_eq!(problems.len(), 3, "{problems:?}");
        for needle in ["server.header_read_timeout_secs", "server.max_connections", "server.speed: unknown"] {
            assert!(problems.iter().any(|p| p.starts_with(needle)), "{needle} missing from {problems:?}");
        }
    }
}
