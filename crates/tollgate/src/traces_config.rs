//! The `[traces]` section of the config file and the standard OpenTelemetry environment variables
//! that stand in for it: where spans are sent over OTLP/HTTP (nowhere by default), under which
//! service name, and which share of new traces is kept.

/// Service name reported when neither the file nor `OTEL_SERVICE_NAME` gives one.
pub const DEFAULT_SERVICE_NAME: &str = "tollgate";

/// The path an OTLP/HTTP receiver takes traces on, below a base endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// The standard variables, read by the binary (tests pass them in): each wins over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracesEnv {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full URL traces are posted to.
    pub traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (`/v1/traces` is added).
    pub endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
}

impl TracesEnv {
    /// The variables as the process has them (empty ones count as unset, as the specification
    /// says).
    pub fn from_process() -> TracesEnv {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        TracesEnv {
            traces_endpoint: read("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            endpoint: read("OTEL_EXPORTER_OTLP_ENDPOINT"),
            service_name: read("OTEL_SERVICE_NAME"),
        }
    }
}

/// Whether and where spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TracesConfig {
    /// The full URL spans are posted to (`…/v1/traces`); `None`: tracing is off.
    pub endpoint: Option<String>,
    pub service_name: String,
    /// Share of new traces kept, 0 to 1; a caller's `traceparent` decides for its own trace.
    pub sample_ratio: f64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig { endpoint: None, service_name: DEFAULT_SERVICE_NAME.to_owned(), sample_ratio: 1.0 }
    }
}

impl TracesConfig {
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
    }
}

/// Reads `[traces]` and then the environment over it; every problem goes to `problems`.
pub fn parse(value: Option<&toml::Value>, env: &TracesEnv, problems: &mut Vec<String>) -> TracesConfig {
    let mut config = TracesConfig::default();
    let mut base = None;
    if let Some(value) = value {
        match value.as_table() {
            Some(table) => {
                for (key, v) in table {
                    let at = format!("traces.{key}");
                    match (key.as_str(), v) {
                        ("otlp_endpoint", toml::Value::String(s)) => base = Some((at, s.clone())),
                        ("service_name", toml::Value::String(s)) if !s.trim().is_empty() => config.service_name.clone_from(s),
                        ("sample_ratio", v) => {
                            match v.as_float().or_else(|| v.as_integer().and_then(|i| i32::try_from(i).ok()).map(f64::from)) {
                                Some(r) if (0.0..=1.0).contains(&r) => config.sample_ratio = r,
                                _ => problems.push(format!("{at}: must be a number from 0 to 1")),
                            }
                        }
                        ("otlp_endpoint" | "service_name", _) => problems.push(format!("{at}: must be a non-empty string")),
                        _ => problems.push(format!("{at}: unknown setting")),
                    }
                }
            }
            None => problems.push("traces: must be a table".to_owned()),
        }
    }
    if let Some(name) = &env.service_name {
        config.service_name.clone_from(name);
    }
    let full = match (&env.traces_endpoint, &env.endpoint, base) {
        (Some(url), _, _) => Some(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".to_owned(), url.clone())),
        (None, Some(url), _) => Some(("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), below(url))),
        (None, None, Some((at, url))) => Some((at, below(&url))),
        (None, None, None) => None,
    };
    if let Some((at, url)) = full {
        match url::Url::parse(&url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => config.endpoint = Some(url),
            _ => problems.push(format!("{at}: '{url}' is not an http:// or https:// URL such as http://127.0.0.1:4318")),
        }
    }
    config
}

/// The traces URL below a base endpoint (a trailing slash or not).
fn below(base: &str) -> String {
    format!("{}{TRACES_PATH}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str, env: &TracesEnv) -> (TracesConfig, Vec<String>) {
        let value: toml::Table = text.parse().unwrap_or_default();
        let mut problems = Vec::new();
        let config = parse(value.get("traces"), env, &mut problems);
        (config, problems)
    }

    #[test]
    fn tracing_is_off_unless_an_endpoint_is_given() {
        let (config, problems) = parsed("", &TracesEnv::default());
        assert!(problems.is_empty());
        assert!(!config.enabled());
        assert_eq!(config.service_name, "tollgate");
        assert!((config.sample_ratio - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn the_file_gives_a_base_endpoint_and_the_traces_path_is_added() {
        let text = "[traces]\notlp_endpoint = \"http://collector:4318/\"\nservice_name = \"gw\"\nsample_ratio = 0.25";
        let (config, problems) = parsed(text, &TracesEnv::default());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.endpoint.as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(config.service_name, "gw");
        assert!((config.sample_ratio - 0.25).abs() < f64::EPSILON);
    }

    #[test]
    fn the_standard_variables_win_over_the_file() {
        let text = "[traces]\notlp_endpoint = \"http://file:4318\"\nservice_name = \"gw\"";
        let env = TracesEnv { traces_endpoint: None, endpoint: Some("http://env:4318".into()), service_name: Some("svc".into()) };
        let (config, _) = parsed(text, &env);
        assert_eq!(config.endpoint.as_deref(), Some("http://env:4318/v1/traces"));
        assert_eq!(config.service_name, "svc");
        let env = TracesEnv { traces_endpoint: Some("http://env:4318/custom".into()), ..env };
        assert_eq!(parsed(text, &env).0.endpoint.as_deref(), Some("http://env:4318/custom"));
    }

    #[test]
    fn bad_values_are_problems_naming_their_setting() {
        let text = "[traces]\notlp_endpoint = \"collector:4318\"\nsample_ratio = 2\nflavour = 1";
        let (_, problems) = parsed(text, &TracesEnv::default());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("traces.otlp_endpoint:")));
        assert!(problems.iter().any(|p| p.starts_with("traces.sample_ratio:")));
        assert!(problems.iter().any(|p| p.starts_with("traces.flavour: unknown")));
        let env = TracesEnv { endpoint: Some("ftp://x".into()), ..TracesEnv::default() };
        assert!(parsed("", &env).1[0].starts_with("OTEL_EXPORTER_OTLP_ENDPOINT:"));
    }
}
