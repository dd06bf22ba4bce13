//! The governor: governance state shared by every surface that asks it — the snapshot (loaded at
//! start, brought up to date after each management write and whenever the stored generation
//! moves), the counters (rebuilt from stored usage), pricing and the usage writer — and the
//! background work that keeps them fresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tollgate_core::usage::{ChangeScope, GovernanceData, UsageStore};

use crate::counters::{Counters, line_of};
use crate::freshness::Freshness;
use crate::meters::{self, Gauges};
use crate::pricing::Pricing;
use crate::snapshot::{SharedSnapshot, Snapshot, SnapshotBuilder};
use crate::writer::{FlushTap, OpenUsageStore, UsageWriter, WriterHandle, lower_own_priority};

/// Reads everything and builds the snapshot of it on a thread of its own, at the usage writer's
/// lower priority, so a full rebuild (a second or more at 100k users) never holds a request
/// worker; the read itself runs on this runtime's I/O.
async fn load_and_build(store: Arc<dyn UsageStore>) -> Result<(GovernanceData, Snapshot), String> {
    let runtime = tokio::runtime::Handle::current();
    let (built_tx, built) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("snapshot-build".to_owned())
        .spawn(move || {
            lower_own_priority("snapshot rebuilds");
            let result = runtime.block_on(async move {
                let mut builder = SnapshotBuilder::default();
                let mut data = store.load_governance(&mut |c| builder.copy(c)).await.map_err(|e| e.to_string())?;
                let snapshot = builder.finish(std::mem::take(&mut data.keys), std::mem::take(&mut data.overrides));
                Ok((data, snapshot))
            });
            let _ = built_tx.send(result);
        })
        .map_err(|e| format!("snapshot build thread: {e}"))?;
    built.await.map_err(|_| "snapshot build thread ended without a result".to_owned())?
}

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
    /// Where the usage writer hands each written batch's budget lines (budget alerts).
    pub flush_tap: Option<FlushTap>,
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
    /// Which generation the snapshot reflects; held while the snapshot is being changed, so
    /// changes are read and installed in turn and a later read is never overwritten by an
    /// earlier one.
    pub freshness: tokio::sync::Mutex<Freshness>,
    /// When stored usage was last read into the counters.
    pub adopted_at: std::sync::Mutex<DateTime<Utc>>,
    /// When the snapshot was last rebuilt, whole or for some users (for its age, a metric).
    pub rebuilt_at: std::sync::Mutex<Instant>,
    /// Reservations `Held` guards own now (a metric, read when scraped).
    pub held: std::sync::atomic::AtomicUsize,
    /// Refusals of callers without a valid key logged this second.
    pub anonymous_refusals: crate::per_second::PerSecond,
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

/// The stored generation is looked at this often (one read), and the snapshot rebuilt if it
/// moved: another instance's writes are seen within this period.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// The snapshot is rebuilt whole at least this often even when the generation has not moved, as
/// the safety net for a write whose generation bump was lost (a crash between its commit and the
/// bump) or that did not go through the management API.
pub const FULL_RELOAD_EVERY: Duration = Duration::from_mins(1);
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
        let (writer, writer_handle) = UsageWriter::spawn_on_own_thread(open_writer_store, counters.clone(), settings.flush_tap).await?;
        let inner = Inner {
            snapshot: SharedSnapshot::default(),
            counters,
            writer,
            pricing: settings.pricing,
            store,
            on_reload: settings.on_reload,
            freshness: tokio::sync::Mutex::new(Freshness::default()),
            adopted_at: std::sync::Mutex::new(adopted_at),
            rebuilt_at: std::sync::Mutex::new(Instant::now()),
            held: std::sync::atomic::AtomicUsize::new(0),
            anonymous_refusals: crate::per_second::PerSecond::default(),
        };
        let governor = Governor(Arc::new(inner));
        governor.rebuild(&mut *governor.0.freshness.lock().await).await?;
        // After the snapshot: it names the copy owning each line the counters take up.
        adopt_stored_usage(governor.snapshot(), governor.0.store.as_ref(), governor.0.counters.as_ref(), None).await?;
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

    /// Governance's state as the metrics' gauges show it: reservations in flight, what waits for
    /// the usage writer, the snapshot's age. Read when the metrics are scraped.
    pub fn gauges(&self) -> Gauges {
        let reservations = self.0.held.load(std::sync::atomic::Ordering::Relaxed);
        let snapshot_age = self.0.rebuilt_at.lock().map_or(Duration::ZERO, |at| at.elapsed());
        Gauges { reservations, queued: self.0.writer.queued(), snapshot_age }
    }

    /// Counts a rebuild of `scope` and restarts the snapshot's age.
    fn rebuilt(&self, scope: &'static str) {
        metrics::counter!(meters::RELOADS, "scope" => scope).increment(1);
        if let Ok(mut at) = self.0.rebuilt_at.lock() {
            *at = Instant::now();
        }
    }

    /// Readiness: the counters answer (in memory always; Redis within a second). The reason is
    /// for the log only.
    pub async fn ready(&self) -> Result<(), String> {
        self.0.counters.ping().await
    }

    /// Reads everything and swaps in a fresh snapshot; on failure the old one stays. The
    /// generation is read first, so the data read covers every write it counts.
    async fn rebuild(&self, fresh: &mut Freshness) -> Result<(), String> {
        let generation = self.0.store.generation().await.map_err(|e| e.to_string())?;
        let (data, snapshot) = load_and_build(Arc::clone(&self.0.store)).await?;
        for hook in &self.0.on_reload {
            hook(&data);
        }
        let old = self.0.snapshot.swap(snapshot);
        // Freeing a whole snapshot (100k users: tens of milliseconds) is no request's work.
        tokio::task::spawn_blocking(move || drop(old));
        fresh.rebuilt(generation);
        self.rebuilt("full");
        Ok(())
    }

    /// Re-reads just `users` and swaps in the snapshot with their part replaced.
    async fn apply_users(&self, users: &[String]) -> Result<(), String> {
        let data = self.0.store.load_users(users).await.map_err(|e| e.to_string())?;
        let next = self.0.snapshot.load().with_users(data);
        self.0.snapshot.store(next);
        self.rebuilt("users");
        Ok(())
    }

    /// Takes in a management write that has committed, before its answer is sent, so the very
    /// next request on this instance sees it: raises the stored generation (other instances
    /// rebuild at their next look), then re-reads just the users `scope` names, or everything.
    pub async fn changed(&self, scope: ChangeScope) {
        let bumped = self.0.store.bump_generation().await;
        let mut fresh = self.0.freshness.lock().await;
        match bumped {
            Ok(n) => fresh.own(n),
            Err(e) => {
                tracing::warn!(error = %e, "the governance generation could not be raised; other instances see this change at their next full reload");
            }
        }
        let applied = match scope {
            ChangeScope::Users(users) => self.apply_users(&users).await.map_err(|e| {
                tracing::warn!(error = %e, "reading the changed users failed; rebuilding the whole snapshot");
            }),
            ChangeScope::Everything => Err(()),
        };
        if applied.is_err()
            && let Err(e) = self.rebuild(&mut fresh).await
        {
            tracing::error!(error = %e, "governance snapshot reload failed; serving the previous one");
        }
        drop(fresh);
        self.adopt_new_windows().await;
    }

    /// Rebuilds the snapshot now, and takes up stored usage from newer windows than the counters
    /// hold.
    pub async fn reload(&self) {
        if let Err(e) = self.rebuild(&mut *self.0.freshness.lock().await).await {
            tracing::error!(error = %e, "governance snapshot reload failed; serving the previous one");
        }
        self.adopt_new_windows().await;
    }

    /// The periodic look: rebuilds only if the stored generation moved past what the snapshot
    /// reflects (another instance wrote), or the last full rebuild is `FULL_RELOAD_EVERY` old.
    async fn refresh(&self) {
        let stored = self.0.store.generation().await;
        let mut fresh = self.0.freshness.lock().await;
        if fresh.stale(stored.as_ref().ok().copied(), FULL_RELOAD_EVERY)
            && let Err(e) = self.rebuild(&mut fresh).await
        {
            tracing::error!(error = %e, "governance snapshot reload failed; serving the previous one");
        }
        drop(fresh);
        self.adopt_new_windows().await;
    }

    /// Takes up stored usage from newer windows than the counters hold — a line a management
    /// write zeroed.
    async fn adopt_new_windows(&self) {
        // Only rows whose window began since shortly before the last look: a zeroed line's window
        // begins at its reset. The margin covers a write that committed while the last look ran.
        let started = tollgate_core::clock::now();
        let since = self.0.adopted_at.lock().map_or(None, |at| Some(*at - chrono::Duration::minutes(1)));
        match adopt_stored_usage(self.snapshot(), self.0.store.as_ref(), self.0.counters.as_ref(), since).await {
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
    snapshot: Arc<Snapshot>,
    store: &dyn UsageStore,
    counters: &dyn Counters,
    since: Option<DateTime<Utc>>,
) -> Result<(), String> {
    let rows = store.load_usage(since).await.map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(());
    }
    // Naming each line's owner walks every line of the snapshot (400k at 100k users) and a write
    // that zeroed 100k lines offers as many rows: off the request workers.
    let offers = tokio::task::spawn_blocking(move || {
        let owners = snapshot.line_owners();
        rows.iter()
            .map(|row| {
                let (line, kind, used, window_start) = line_of(row);
                let owner = owners.get(line.as_str()).copied();
                (line, owner, kind, used, window_start)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| format!("naming the owners of stored lines: {e}"))?;
    for (n, (line, owner, kind, used, window_start)) in offers.into_iter().enumerate() {
        if n % ADOPT_BETWEEN_YIELDS == ADOPT_BETWEEN_YIELDS - 1 {
            tokio::task::yield_now().await;
        }
        counters.adopt(&line, owner, kind, used, window_start).await?;
    }
    Ok(())
}

/// Stored lines offered to the counters between two yields of the worker.
const ADOPT_BETWEEN_YIELDS: usize = 128;

async fn reload_periodically(governor: Governor) {
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        governor.refresh().await;
    }
}

async fn sweep_and_prune(governor: Governor, retention_days: i64) {
    let mut tick = tokio::time::interval(Duration::from_mins(1));
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        // The store's upkeep (planner statistics): a minute after start (the first tick is at
        // once), then hourly.
        if ticks % 60 == 2
            && let Err(e) = governor.0.store.maintain().await
        {
            tracing::warn!(error = %e, "database upkeep failed");
        }
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
