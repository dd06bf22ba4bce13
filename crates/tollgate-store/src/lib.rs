//! SQLite and Postgres adapters of the core's storage ports, through one SQL dialect (sqlx `Any`
//! with `$N` placeholders) and per-backend migrations. Every write is one transaction.

mod admin;
mod alerts;
mod api_keys;
mod audit;
mod bulk;
mod directory;
mod journal;
mod log_hours;
mod logs;
mod mcp;
mod plan;
mod profiles;
mod providers;
mod rotation;
mod spend;
mod sql;
mod tx;
mod usage;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use tollgate_core::ports::StoreError;

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Recognises `sqlite:` and `postgres:`/`postgresql:` URLs.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// The SQL store: one connection pool, either backend.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// The usage writer's own pool, which the writer closes when it stops (`UsageStore::close`).
    writer_owned: bool,
}

impl SqlStore {
    /// Connects (creating a SQLite file if missing) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        let (backend, url) = parse_url(url)?;
        if backend == Backend::Sqlite {
            create_private_file(&url)?;
        }
        let max = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        };
        let pool = pool_options(backend, max).connect(&url).await.map_err(map_err)?;
        let migrated = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await,
        };
        migrated.map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        Ok(SqlStore { pool, backend, writer_owned: false })
    }

    /// The store the usage writer persists through (decision 89), for the database `connect` has
    /// already opened and migrated at `url`: a pool of its own (one connection, opened on first use,
    /// so on the writer's task and, for SQLite, from its thread).
    pub fn for_usage_writer(url: &str) -> Result<SqlStore, StoreError> {
        let (backend, url) = parse_url(url)?;
        let pool = pool_options(backend, 1).connect_lazy(&url).map_err(map_err)?;
        Ok(SqlStore { pool, backend, writer_owned: true })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for tests that need to set up rows no API writes yet.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The backend of `url` and the URL to open (a SQLite file is created if missing).
fn parse_url(url: &str) -> Result<(Backend, String), StoreError> {
    let backend = Backend::of_url(url).ok_or_else(|| StoreError::Backend("database URL must start with sqlite: or postgres://".into()))?;
    if backend == Backend::Sqlite && (url.contains(":memory:") || url.contains("mode=memory")) {
        // Each pooled connection would get a database of its own, and usage must outlive the process.
        return Err(StoreError::Backend("an in-memory SQLite database is not supported; give a file, e.g. sqlite://tollgate.db".into()));
    }
    install_default_drivers();
    let url = match backend {
        Backend::Sqlite if !url.contains("mode=") => format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' }),
        _ => url.to_owned(),
    };
    Ok((backend, url))
}

/// Creates a missing SQLite database file readable by its owner only (0600 on Unix), as the
/// sealing key's file is; SQLite gives its `-wal` and `-shm` files the database file's mode. An
/// existing file keeps the mode its operator gave it.
fn create_private_file(url: &str) -> Result<(), StoreError> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let creates = query.split('&').any(|p| p == "mode=rwc");
    if !creates || path.is_empty() || std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // Created meanwhile by another process: it is that process's file.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Backend(format!("cannot create the database file {path}: {e}"))),
    }
}

/// Pool settings of either backend; every SQLite connection gets the same pragmas.
fn pool_options(backend: Backend, max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A SQLite connection cannot go stale; pinging it costs a round trip to its thread on
        // every acquire (the usage writer acquires one at every flush).
        .test_before_acquire(backend == Backend::Postgres)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
}

/// Maps a driver error onto what the services can act on.
#[expect(clippy::needless_pass_by_value, reason = "shaped for .map_err(map_err), which hands the error over by value")]
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "6" | "517" | "262")) => {
            StoreError::Busy(db.message().to_owned())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Busy(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

/// The one text form of a timestamp in the database.
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("bad timestamp {text:?} in database: {e}")))
}

pub(crate) fn parse_opt_ts(text: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|t| parse_ts(&t)).transpose()
}

pub(crate) fn json_err(e: &serde_json::Error) -> StoreError {
    StoreError::Backend(format!("bad JSON in database: {e}"))
}

/// The key under which names are unique: trimmed and case-folded.
pub(crate) fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}
