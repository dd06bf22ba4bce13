//! The `[metrics]` section of the config file: the scrape addresses that may read `/metrics`
//! without a credential.

use tollgate_admin::Network;

/// Who may scrape without a credential (everyone else needs the admin credential or a management
/// API key with `Observability:View`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address blocks (`10.0.0.0/8`, `::1/128`, or a single address); none by default.
    pub allow: Vec<Network>,
}

/// Reads `[metrics]`; every problem goes to `problems`.
pub fn parse(value: Option<&toml::Value>, problems: &mut Vec<String>) -> MetricsConfig {
    let mut config = MetricsConfig::default();
    let Some(value) = value else { return config };
    let Some(table) = value.as_table() else {
        problems.push("metrics: must be a table".to_owned());
        return config;
    };
    for (key, v) in table {
        let at = format!("metrics.{key}");
        match key.as_str() {
            "allow" => {
                let Some(entries) = v.as_array() else {
                    problems.push(format!("{at}: must be a list of address blocks such as \"127.0.0.1/32\""));
                    continue;
                };
                for (i, entry) in entries.iter().enumerate() {
                    match entry.as_str().map(Network::parse) {
                        Some(Ok(network)) => config.allow.push(network),
                        Some(Err(e)) => problems.push(format!("{at}[{i}]: {e}")),
                        None => problems.push(format!("{at}[{i}]: must be a string such as \"10.0.0.0/8\"")),
                    }
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
    fn scrape_addresses_are_read_and_each_bad_one_is_named() {
        let good: toml::Value = toml::from_str("allow = [\"127.0.0.1/32\", \"::1\"]").unwrap_or_else(|e| panic!("{e}"));
        let mut problems = Vec::new();
        assert_eq!(parse(Some(&good), &mut problems).allow.len(), 2);
        assert!(problems.is_empty(), "{problems:?}");
        let bad: toml::Value = toml::from_str("allow = [\"10.0.0.1/8\", 3]\nopen = true").unwrap_or_else(|e| panic!("{e}"));
        let config = parse(Some(&bad), &mut problems);
        assert!(config.allow.is_empty());
        for needle in ["metrics.allow[0]", "metrics.allow[1]", "metrics.open: unknown"] {
            assert!(problems.iter().any(|p| p.starts_with(needle)), "{needle} missing from {problems:?}");
        }
    }
}
