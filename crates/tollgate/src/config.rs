//! Settings: defaults, then the TOML file, then environment variables and flags (clap reads
//! both); every problem is collected so one start-up message names all of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tollgate_core::auth::Secret;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./tollgate.db";
/// Shortest admin password accepted from the configuration.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 8;
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
}

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
        match listen {
            Some(listen) if problems.is_empty() => Ok(Settings { listen, database_url, admin, encryption, log }),
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
}
