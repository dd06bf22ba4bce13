//! Settings: defaults, then the TOML file, then environment variables and flags (clap reads
//! both); every problem is collected so one start-up message names all of them. The file may also
//! declare roles, access profiles and users, which are checked here and applied by `declared`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tollgate_core::auth::Secret;
use tollgate_core::input::{CreateProfileRequest, UpdateProfileRequest};
use tollgate_core::users::Dac;

use crate::declared::{Declared, DeclaredAttachment, DeclaredProfile, DeclaredRole, DeclaredUser, json_of, typed};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./tollgate.db";
/// Shortest admin password accepted from the configuration (the same rule as the CLI's).
pub use tollgate_core::auth::MIN_ADMIN_PASSWORD_CHARS;
pub const DEFAULT_ENCRYPTION_KEY_FILE: &str = "./tollgate.key";

/// Values given on the command line or in the environment (clap has merged the two).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub config: Option<PathBuf>,
    pub admin_username: Option<String>,
    pub admin_password: Option<String>,
    /// Base64 of 32 bytes; seals the stored copies of virtual keys.
    pub encryption_key: Option<String>,
    pub encryption_key_file: Option<PathBuf>,
    /// Shared counters for several instances (`redis://…`); wins over `gateway.redis_url`.
    pub redis_url: Option<String>,
    /// The standard OpenTelemetry variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, …); win over `[traces]`.
    pub traces_env: crate::traces_config::TracesEnv,
}

/// Validated settings the server starts with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    /// The admin credential given by the operator, if any.
    pub admin: Option<(String, Secret)>,
    /// Where the sealing key comes from.
    pub encryption: EncryptionKey,
    pub log: String,
    /// Roles, access profiles and users the file declares; applied at start-up.
    pub declared: Declared,
    /// Providers, prices and data-plane settings.
    pub gateway: crate::gateway_config::GatewayConfig,
    /// Connection limits and failed-login throttling (`[server]`).
    pub server: crate::server_config::ServerConfig,
    /// Key rotation's grace period and scheduler pace (`[keys]`).
    pub keys: crate::keys_config::KeysConfig,
    /// `[mcp]` and the declared `[[mcp_clients]]`.
    pub mcp: crate::mcp_config::McpConfig,
    /// Who may scrape `/metrics` without a credential (`[metrics]`).
    pub metrics: crate::metrics_config::MetricsConfig,
    /// Budget-alert delivery: retries, backoff and timeout (`[alerts]`).
    pub alerts: crate::alerts_config::AlertsConfig,
    /// Where spans go over OTLP, if anywhere (`[traces]` and the `OTEL_…` variables).
    pub traces: crate::traces_config::TracesConfig,
}

/// The key that seals stored virtual-key values.
#[derive(Debug, Clone)]
pub enum EncryptionKey {
    /// Given by the operator (base64 of 32 bytes, already decoded).
    Given(Secret),
    /// Read from this file, which start-up creates (0600) with a new key if it is missing.
    File(PathBuf),
}

/// Every problem found in the settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// What the TOML file may hold.
#[derive(Debug, Default)]
struct FileValues {
    listen: Option<String>,
    database_url: Option<String>,
    admin_username: Option<String>,
    admin_password: Option<String>,
    encryption_key_file: Option<String>,
    log: Option<String>,
    declared: Declared,
    providers: Option<toml::Value>,
    pricing: Option<toml::Value>,
    gateway: Option<toml::Value>,
    server: Option<toml::Value>,
    keys: Option<toml::Value>,
    mcp: Option<toml::Value>,
    mcp_clients: Option<toml::Value>,
    metrics: Option<toml::Value>,
    alerts: Option<toml::Value>,
    traces: Option<toml::Value>,
}

/// Members of an `[[access_profiles]]` entry besides `name`, `active` and `roles`: those of the
/// create request.
const PROFILE_MEMBERS: [&str; 12] = [
    "description",
    "tags",
    "provider_configs",
    "budgets",
    "rate_limit",
    "calendar_aligned",
    "log_content",
    "auto_rotation_interval",
    "next_rotation_at",
    "mcp_tool_groups",
    "mcp_servers",
    "mcp_tool_overrides",
];

impl Settings {
    /// Resolves settings: flag/env over file over default.
    pub fn resolve(overrides: Overrides) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let file = match &overrides.config {
            Some(path) => read_file(path, &mut problems),
            None => FileValues::default(),
        };
        let listen_text = overrides.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse::<SocketAddr>().ok();
        if listen.is_none() {
            problems.push(format!("listen: '{listen_text}' is not a socket address such as 127.0.0.1:8080"));
        }
        let database_url = overrides.database_url.or(file.database_url).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if tollgate_store::Backend::of_url(&database_url).is_none() {
            problems.push("database_url: must start with sqlite:// or postgres://".to_owned());
        }
        let username = overrides.admin_username.or(file.admin_username);
        let password = overrides.admin_password.or(file.admin_password);
        let admin = match (username, password) {
            (None, None) => None,
            (Some(_), None) => {
                problems.push("admin: a username is set but no password (TOLLGATE_ADMIN_PASSWORD or [admin] password)".to_owned());
                None
            }
            (username, Some(password)) => {
                let username = username.unwrap_or_else(|| tollgate_core::services::auth::DEFAULT_ADMIN_USERNAME.to_owned());
                if username.trim().is_empty() || username.contains(':') {
                    problems.push("admin username: must be non-empty and contain no ':'".to_owned());
                }
                if password.chars().count() < MIN_ADMIN_PASSWORD_CHARS {
                    problems.push(format!("admin password: must be at least {MIN_ADMIN_PASSWORD_CHARS} characters"));
                }
                Some((username, Secret::new(password)))
            }
        };
        let encryption = match overrides.encryption_key {
            Some(text) => {
                use base64::Engine;
                match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                    Ok(bytes) if bytes.len() == 32 => EncryptionKey::Given(Secret::new(text.trim())),
                    _ => {
                        problems.push(
                            "encryption key: TOLLGATE_ENCRYPTION_KEY must be the base64 of 32 bytes (e.g. `openssl rand -base64 32`)"
                                .to_owned(),
                        );
                        EncryptionKey::Given(Secret::new(""))
                    }
                }
            }
            None => EncryptionKey::File(
                overrides
                    .encryption_key_file
                    .or(file.encryption_key_file.map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_ENCRYPTION_KEY_FILE)),
            ),
        };
        let log = file.log.unwrap_or_else(|| "info".to_owned());
        let declared = file.declared;
        let mut gateway =
            crate::gateway_config::parse(file.providers.as_ref(), file.pricing.as_ref(), file.gateway.as_ref(), &mut problems);
        let server = crate::server_config::parse(file.server.as_ref(), &mut problems);
        let keys = crate::keys_config::parse(file.keys.as_ref(), &mut problems);
        let mcp = crate::mcp_config::parse(file.mcp.as_ref(), file.mcp_clients.as_ref(), &mut problems);
        let metrics = crate::metrics_config::parse(file.metrics.as_ref(), &mut problems);
        let alerts = crate::alerts_config::parse(file.alerts.as_ref(), &mut problems);
        let traces = crate::traces_config::parse(file.traces.as_ref(), &overrides.traces_env, &mut problems);
        if let Some(url) = overrides.redis_url {
            problems.extend(crate::gateway_config::check_redis_url(&url));
            gateway.redis_url = Some(Secret::new(url));
        }
        match listen {
            Some(listen) if problems.is_empty() => {
                Ok(Settings { listen, database_url, admin, encryption, log, declared, gateway, server, keys, mcp, metrics, alerts, traces })
            }
            _ => Err(ConfigError(problems)),
        }
    }
}

fn read_file(path: &Path, problems: &mut Vec<String>) -> FileValues {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(format!("config file {shown}: cannot be read: {e}"));
            return FileValues::default();
        }
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            problems.push(format!("config file {shown}: {}", e.message()));
            return FileValues::default();
        }
    };
    let mut values = FileValues::default();
    for (key, value) in &table {
        match key.as_str() {
            "listen" => values.listen = string(problems, key, value),
            "database_url" => values.database_url = string(problems, key, value),
            "log" => values.log = string(problems, key, value),
            "encryption_key_file" => values.encryption_key_file = string(problems, key, value),
            "admin" => match value.as_table() {
                Some(admin) => {
                    for (k, v) in admin {
                        let path = format!("admin.{k}");
                        match k.as_str() {
                            "username" => values.admin_username = string(problems, &path, v),
                            "password" => values.admin_password = string(problems, &path, v),
                            _ => problems.push(format!("{path}: unknown setting")),
                        }
                    }
                }
                None => problems.push("admin: must be a table".to_owned()),
            },
            "roles" => values.declared.roles = roles(problems, value),
            "access_profiles" => values.declared.access_profiles = profiles(problems, value),
            "users" => values.declared.users = users(problems, value),
            "providers" => values.providers = Some(value.clone()),
            "pricing" => values.pricing = Some(value.clone()),
            "gateway" => values.gateway = Some(value.clone()),
            "server" => values.server = Some(value.clone()),
            "keys" => values.keys = Some(value.clone()),
            "mcp" => values.mcp = Some(value.clone()),
            "mcp_clients" => values.mcp_clients = Some(value.clone()),
            "metrics" => values.metrics = Some(value.clone()),
            "alerts" => values.alerts = Some(value.clone()),
            "traces" => values.traces = Some(value.clone()),
            _ => problems.push(format!("{key}: unknown setting")),
        }
    }
    values
}

fn string(problems: &mut Vec<String>, key: &str, value: &toml::Value) -> Option<String> {
    let text = value.as_str().map(str::to_owned);
    if text.is_none() {
        problems.push(format!("{key}: must be a string"));
    }
    text
}

fn boolean(problems: &mut Vec<String>, key: &str, value: &toml::Value) -> Option<bool> {
    let flag = value.as_bool();
    if flag.is_none() {
        problems.push(format!("{key}: must be true or false"));
    }
    flag
}

/// The tables of an array of tables such as `[[roles]]`, each with its path (`roles[0]`).
fn entries<'a>(problems: &mut Vec<String>, key: &str, value: &'a toml::Value) -> Vec<(String, &'a toml::Table)> {
    let Some(items) = value.as_array() else {
        problems.push(format!("{key}: must be an array of tables"));
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_table() {
            Some(table) => out.push((format!("{key}[{i}]"), table)),
            None => problems.push(format!("{key}[{i}]: must be a table")),
        }
    }
    out
}

/// Checks the keys of one entry: unknown ones are problems, and so is a missing required one.
fn keys(problems: &mut Vec<String>, path: &str, table: &toml::Table, known: &[&str], required: &[&str]) {
    problems.extend(table.keys().filter(|k| !known.contains(&k.as_str())).map(|k| format!("{path}.{k}: unknown setting")));
    problems.extend(required.iter().filter(|k| !table.contains_key(**k)).map(|k| format!("{path}.{k}: is required")));
}

fn member(problems: &mut Vec<String>, path: &str, table: &toml::Table, key: &str) -> Option<String> {
    table.get(key).and_then(|v| string(problems, &format!("{path}.{key}"), v)).map(|s| s.trim().to_owned())
}

/// Records `key` as used; a second use is a problem at `path`.
fn once(problems: &mut Vec<String>, seen: &mut HashSet<String>, path: &str, key: String, what: &str) {
    if !seen.insert(key) {
        problems.push(format!("{path}: another entry already declares this {what}"));
    }
}

fn roles(problems: &mut Vec<String>, value: &toml::Value) -> Vec<DeclaredRole> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (path, table) in entries(problems, "roles", value) {
        keys(problems, &path, table, &["name", "description", "dac"], &["name"]);
        let name = member(problems, &path, table, "name");
        let description = table.get("description").and_then(|v| string(problems, &format!("{path}.description"), v));
        let dac = member(problems, &path, table, "dac").and_then(|d| {
            let dac = Dac::parse(&d);
            if dac.is_none() {
                problems.push(format!("{path}.dac: must be one of own-data, team-data, all-data"));
            }
            dac
        });
        let Some(name) = name else { continue };
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !valid || name.len() > 255 {
            problems.push(format!("{path}.name: must match ^[a-z][a-z0-9_.]*$ and be at most 255 characters"));
        }
        once(problems, &mut seen, &format!("{path}.name"), name.clone(), "role name");
        out.push(DeclaredRole { name, description, dac });
    }
    out
}

fn users(problems: &mut Vec<String>, value: &toml::Value) -> Vec<DeclaredUser> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (path, table) in entries(problems, "users", value) {
        keys(problems, &path, table, &["name", "email", "role"], &["name", "email"]);
        let (name, email, role) =
            (member(problems, &path, table, "name"), member(problems, &path, table, "email"), member(problems, &path, table, "role"));
        let (Some(name), Some(email)) = (name, email) else { continue };
        once(problems, &mut seen, &format!("{path}.email"), email.to_lowercase(), "e-mail");
        out.push(DeclaredUser { name, email, role });
    }
    out
}

fn profiles(problems: &mut Vec<String>, value: &toml::Value) -> Vec<DeclaredProfile> {
    let mut seen = HashSet::new();
    // Role name → the entry that makes it that role's default; a role has one default profile.
    let mut defaults = HashMap::new();
    let mut out = Vec::new();
    for (path, table) in entries(problems, "access_profiles", value) {
        let mut members = serde_json::Map::new();
        let (mut active, mut roles) = (None, Vec::new());
        for (key, v) in table {
            match key.as_str() {
                "active" => active = boolean(problems, &format!("{path}.active"), v),
                "roles" => roles = attachments(problems, &format!("{path}.roles"), v, &path, &mut defaults),
                k if k == "name" || PROFILE_MEMBERS.contains(&k) => {
                    members.insert(key.clone(), json_of(v));
                }
                _ => problems.push(format!("{path}.{key}: unknown setting")),
            }
        }
        match table.get("name").and_then(toml::Value::as_str) {
            Some(name) => once(problems, &mut seen, &format!("{path}.name"), name.trim().to_lowercase(), "access profile name"),
            None if !table.contains_key("name") => problems.push(format!("{path}.name: is required")),
            None => {}
        }
        // Each member alone first, so that one problem per member is reported, not just the first.
        let mut typed_well = true;
        for (key, member) in &members {
            let alone = serde_json::Map::from_iter([("name".to_owned(), Value::from("")), (key.clone(), member.clone())]);
            typed_well &= typed::<CreateProfileRequest>(problems, &path, &Value::Object(alone)).is_some();
        }
        let members = Value::Object(members);
        if !typed_well {
            continue;
        }
        let Some(create) = typed::<CreateProfileRequest>(problems, &path, &members) else { continue };
        let Some(update) = typed::<UpdateProfileRequest>(problems, &path, &members) else { continue };
        out.push(DeclaredProfile { name: create.name.trim().to_owned(), create, update, active, roles });
    }
    out
}

fn attachments(
    problems: &mut Vec<String>,
    key: &str,
    value: &toml::Value,
    profile: &str,
    defaults: &mut HashMap<String, String>,
) -> Vec<DeclaredAttachment> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (path, table) in entries(problems, key, value) {
        keys(problems, &path, table, &["role", "default", "apply_to_existing"], &["role"]);
        let role = member(problems, &path, table, "role");
        let flag = |problems: &mut Vec<String>, name: &str| {
            table.get(name).and_then(|v| boolean(problems, &format!("{path}.{name}"), v)).unwrap_or(false)
        };
        let (default, apply_to_existing) = (flag(problems, "default"), flag(problems, "apply_to_existing"));
        let Some(role) = role else { continue };
        once(problems, &mut seen, &format!("{path}.role"), role.clone(), "role");
        if default && let Some(other) = defaults.insert(role.clone(), profile.to_owned()) {
            problems.push(format!("{path}.default: {other} is already the default of role \"{role}\"; a role has one default"));
        }
        out.push(DeclaredAttachment { role, default, apply_to_existing });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_nothing() {
        let s = Settings::resolve(Overrides::default());
        assert!(
            s.as_ref().is_ok_and(|s| s.listen.to_string() == DEFAULT_LISTEN && s.database_url == DEFAULT_DATABASE_URL && s.admin.is_none())
        );
    }

    #[test]
    fn one_error_names_every_problem() {
        let dir = std::env::temp_dir().join(format!("tollgate-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("bad.toml");
        let _ = std::fs::write(&file, "colour = \"blue\"\n[admin]\nusername = \"root\"\n");
        let err = Settings::resolve(Overrides {
            listen: Some("nowhere".into()),
            database_url: Some("mysql://x".into()),
            config: Some(file),
            ..Overrides::default()
        });
        let problems = err.err().map(|e| e.0).unwrap_or_default();
        assert_eq!(problems.len(), 4, "{problems:?}");
        for needle in ["colour", "listen", "database_url", "no password"] {
            assert!(problems.iter().any(|p| p.contains(needle)), "{needle} missing from {problems:?}");
        }
    }

    #[test]
    fn flags_and_environment_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("tollgate-config-win-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("ok.toml");
        let _ = std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://file.db\"\n");
        let s = Settings::resolve(Overrides { listen: Some("127.0.0.1:9100".into()), config: Some(file), ..Overrides::default() });
        assert!(s.is_ok_and(|s| s.listen.port() == 9100 && s.database_url == "sqlite://file.db"));
    }

    #[test]
    fn a_configured_admin_password_needs_as_many_characters_as_one_set_with_the_cli() {
        let with = |password: &str| {
            Settings::resolve(Overrides { admin_password: Some(password.to_owned()), ..Overrides::default() }).map(|s| s.admin.is_some())
        };
        let refused = with("elevenchars").err().map(|e| e.0).unwrap_or_default();
        assert_eq!(refused, vec!["admin password: must be at least 12 characters".to_owned()]);
        assert_eq!(with("twelve-chars"), Ok(true));
    }

    fn resolve_file(name: &str, text: &str) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!("tollgate-config-{name}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("declared.toml");
        let _ = std::fs::write(&file, text);
        Settings::resolve(Overrides { config: Some(file), ..Overrides::default() })
    }

    #[test]
    fn a_valid_declaration_parses() {
        let text = r#"
            [[roles]]
            name = "engineer"
            description = "Builds things"
            dac = "team-data"

            [[access_profiles]]
            name = " Engineering "
            tags = ["eng"]
            budgets = [{ max_limit = 100, reset_duration = "1M" }, { max_limit = 2.5, reset_duration = "1d" }]
            rate_limit = { request_max_limit = 600, request_reset_duration = "1h" }
            next_rotation_at = 2099-01-01T00:00:00Z
            auto_rotation_interval = "30d"
            active = true
              [[access_profiles.roles]]
              role = "engineer"
              default = true

            [[users]]
            name = "Ann"
            email = "ann@example.com"
            role = "engineer"
        "#;
        let declared = resolve_file("valid", text).map_or_else(|e| panic!("{e}"), |s| s.declared);
        assert_eq!(declared.roles.len(), 1);
        assert_eq!((declared.roles[0].name.as_str(), declared.roles[0].dac), ("engineer", Some(Dac::TeamData)));
        let profile = &declared.access_profiles[0];
        assert_eq!((profile.name.as_str(), profile.active), ("Engineering", Some(true)));
        assert_eq!(profile.create.budgets.as_ref().map(Vec::len), Some(2));
        assert!(profile.create.next_rotation_at.is_some());
        assert!(profile.update.budgets.is_some() && profile.update.rate_limit.is_some(), "declared members are set on update");
        assert!(profile.update.description.is_none() && profile.update.provider_configs.is_none(), "others are left alone");
        assert_eq!(
            (profile.roles[0].role.as_str(), profile.roles[0].default, profile.roles[0].apply_to_existing),
            ("engineer", true, false)
        );
        assert_eq!(declared.users[0].role.as_deref(), Some("engineer"));
    }

    #[test]
    fn wrong_types_unknown_keys_and_duplicates_are_all_listed() {
        let text = r#"
            [[roles]]
            name = "Engineer"
            colour = "red"
            dac = "everything"

            [[access_profiles]]
            name = "Eng"
            budget = 5
            budgets = [{ max_limit = "lots", reset_duration = "1M" }]
              [[access_profiles.roles]]
              role = "engineer"
              defualt = true

            [[access_profiles]]
            name = " eng "
            rate_limit = { request_max_limit = -1, request_reset_duration = "1h" }
            tags = "eng"

            [[access_profiles]]
            name = "Ops"
            provider_configs = [{ allowed_models = ["gpt-4o"] }]
            active = "yes"

            [[users]]
            name = "Ann"
            email = "ann@example.com"
            age = 3

            [[users]]
            email = "ANN@example.com "
        "#;
        let problems = resolve_file("wrong", text).err().map(|e| e.0).unwrap_or_default();
        let expected = [
            "roles[0].name: must match",
            "roles[0].colour: unknown setting",
            "roles[0].dac: must be one of",
            "access_profiles[0].budget: unknown setting",
            "access_profiles[0].budgets[0].max_limit: invalid type: string \"lots\"",
            "access_profiles[0].roles[0].defualt: unknown setting",
            "access_profiles[1].name: another entry",
            "access_profiles[1].rate_limit.request_max_limit: invalid value: integer `-1`",
            "access_profiles[1].tags: invalid type: string",
            "access_profiles[2].provider_configs[0]: missing field `provider_name`",
            "access_profiles[2].active: must be true or false",
            "users[0].age: unknown setting",
            "users[1].name: is required",
        ];
        for needle in expected {
            assert!(problems.iter().any(|p| p.starts_with(needle)), "{needle} missing from {problems:#?}");
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }
}
