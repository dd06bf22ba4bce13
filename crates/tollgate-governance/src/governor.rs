//! The governor: governance state shared by every surface that asks it — the snapshot (loaded at
//! start, reloaded after management writes and periodically), the counters (rebuilt from stored
//! usage), pricing and the usage writer — and the background work that keeps them fresh.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tollgate_core::usage::{GovernanceData, UsageStore};

use crate::counters::{Counters, line_of};
use crate::pricing::Pricing;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::writer::{OpenUsageStore, UsageWriter, WriterHandle};

/// Told the governance data on every reload, for state a surface derives from the same read
/// (the inference surface's API-managed providers).
pub type OnReload = Arc<dyn Fn(&GovernanceData) + Send + Sync>;

/// Governance settings.
#[derive(Clone)]
pub struct GovernorSettings {
    pub pricing: Pricing,
    /// Request-log lines older than this are deleted.
    pub log_retention_days: i64,
    /// Called with each reload's data before the snapshot is swapped.
    pub on_reload: Vec<OnReload>,
}

impl std::fmt::Debug for GovernorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernorSettings").field("log_retention_days", &self.log_retention_days).finish_non_exhaustive()
    }
}

/// Shared by every governed request, whatever its surface.
#[derive(Clone)]
pub struct Governor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub snapshot: SharedSnapshot,
    pub counters: Arc<dyn Counters>,
    pub writer: UsageWriter,
    pub pricing: Pricing,
    pub store: Arc<dyn UsageStore>,
    pub on_reload: Vec<OnReload>,
    /// When stored usage was last read into the counters.
    pub adopted_at: std::sync::Mutex<DateTime<Utc>>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor").finish_non_exhaustive()
    }
}

/// Background work that ends with the governor.
#[derive(Debug)]
pub struct GovernorTasks {
    writer: WriterHandle,
    sweeper: tokio::task::JoinHandle<()>,
    reloader: tokio::task::JoinHandle<()>,
    counters: Arc<dyn Counters>,
}

impl GovernorTasks {
    /// Stops the timers, drains the counters' background settlements and the usage writer. Call
    /// it once every governed request has ended.
    pub async fn shutdown(self) {
        self.sweeper.abort();
        self.reloader.abort();
        self.counters.drain().await;
        self.writer.close().await;
    }
}

/// Snapshots are also reloaded this often, as a safety net behind change notifications.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// A reservation older than this is released (no request lives that long).
pub const RESERVATION_TTL_MINUTES: i64 = 30;

impl Governor {
    /// Loads the snapshot, charges what a crash left unsettled, rebuilds the counters from stored
    /// usage and starts the tasks. `open_writer_store` opens the usage writer's own store on the
    /// writer's thread.
    pub async fn start(
        store: Arc<dyn UsageStore>,
        open_writer_store: OpenUsageStore,
        counters: Arc<dyn Counters>,
        settings: GovernorSettings,
    ) -> Result<(Governor, GovernorTasks), String> {
        // Requests a crash left unsettled are charged whole before the counters are rebuilt.
        let unsettled = store.charge_journal().await.map_err(|e| e.to_string())?;
        if unsettled > 0 {
            tracing::warn!(requests = unsettled, "charged the reservations of requests a crash left unsettled");
        }
        let adopted_at = tollgate_core::clock::now();
        let (writer, writer_handle) = UsageWriter::spawn_on_own_thread(open_writer_store, counters.clone()).await?;
        let inner = Inner {
            snapshot: SharedSnapshot::default(),
            counters,
            writer,
            pricing: settings.pricing,
            store,
            on_reload: settings.on_reload,
            adopted_at: std::sync::Mutex::new(adopted_at),
        };
        let governor = Governor(Arc::new(inner));
        // The snapshot first: it names the copy owning each line the counters take up.
        governor.load_snapshot().await?;
        adopt_stored_usage(&governor.snapshot(), governor.0.store.as_ref(), governor.0.counters.as_ref(), None).await?;
        let sweeper = tokio::spawn(sweep_and_prune(governor.clone(), settings.log_retention_days));
        let reloader = tokio::spawn(reload_periodically(governor.clone()));
        let counters = governor.0.counters.clone();
        Ok((governor, GovernorTasks { writer: writer_handle, sweeper, reloader, counters }))
    }

    /// The snapshot decisions are made on now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.snapshot.load()
    }

    /// The prices budgets are charged at.
    pub fn pricing(&self) -> &Pricing {
        &self.0.pricing
    }

    /// Readiness: the counters answer (in memory always; Redis within a second). The reason is
    /// for the log only.
    pub async fn ready(&self) -> Result<(), String> {
        self.0.counters.ping().await
    }

    /// Reads the store and swaps in a fresh snapshot; on failure the old one stays.
    async fn load_snapshot(&self) -> Result<(), String> {
        let data = self.0.store.load_governance().await.map_err(|e| e.to_string())?;
        for hook in &self.0.on_reload {
            hook(&data);
        }
        self.0.snapshot.install(data);
        Ok(())
    }

    /// Rebuilds the snapshot now (called after every management write), and takes up stored
    /// usage from newer windows than the counters hold — a line a management write zeroed.
    pub async fn reload(&self) {
        if let Err(e) = self.load_snapshot().await {
            tracing::error!(error = %e, "governance snapshot reload failed; serving the previous one");
        }
        // Only rows whose window began since shortly before the last look: a zeroed line's window
        // begins at its reset. The margin covers a write that committed while the last look ran.
        let started = tollgate_core::clock::now();
        let since = self.0.adopted_at.lock().map_or(None, |at| Some(*at - chrono::Duration::minutes(1)));
        match adopt_stored_usage(&self.snapshot(), self.0.store.as_ref(), self.0.counters.as_ref(), since).await {
            Ok(()) => {
                if let Ok(mut at) = self.0.adopted_at.lock() {
                    *at = (*at).max(started);
                }
            }
            Err(e) => tracing::error!(error = %e, "stored usage could not be read; counters keep their values"),
        }
    }

    /// Used and reserved of a counter line of user copy `copy` (for tests and diagnostics).
    pub async fn counter(&self, line: &str, copy: i64) -> Option<(u64, u64)> {
        self.0.counters.peek(line, copy).await
    }
}

/// Offers stored line values (those of windows begun after `since`, or all) to the counters,
/// which keep whichever window is newer, each with the user copy that owns it in `snapshot`.
async fn adopt_stored_usage(
    snapshot: &Snapshot,
    store: &dyn UsageStore,
    counters: &dyn Counters,
    since: Option<DateTime<Utc>>,
) -> Result<(), String> {
    let rows = store.load_usage(since).await.map_err(|e| e.to_string())?;
    let owners = if rows.is_empty() { hashbrown::HashMap::new() } else { snapshot.line_owners() };
    for row in rows {
        let (line, kind, used, window_start) = line_of(&row);
        counters.adopt(&line, owners.get(line.as_str()).copied(), kind, used, window_start).await?;
    }
    Ok(())
}

async fn reload_periodically(governor: Governor) {
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        governor.reload().await;
    }
}

async fn sweep_and_prune(governor: Governor, retention_days: i64) {
    let mut tick = tokio::time::interval(Duration::from_mins(1));
    loop {
        tick.tick().await;
        let now = tollgate_core::clock::now();
        governor.0.counters.refresh(now).await;
        let swept = governor.0.counters.sweep(chrono::Duration::minutes(RESERVATION_TTL_MINUTES), now).await;
        if swept > 0 {
            tracing::warn!(swept, "swept reservations that outlived their request or their instance");
        }
        if let Err(e) = governor.0.store.prune_request_logs(now - chrono::Duration::days(retention_days)).await {
            tracing::warn!(error = %e, "request-log pruning failed");
        }
    }
}
