//! The budget-alert task: takes the budget lines each usage flush wrote (from the writer's tap),
//! asks governance's `AlertIndex` which thresholds they reached, claims each event once in the
//! database (the instance whose insert made the row delivers it), delivers it at once, and every
//! poll retries the pending events whose backoff ended, leasing each so that two instances never
//! deliver the same one.

mod deliver;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tollgate_core::alerts::{AlertDelivery, AlertPayload, AlertRule, AlertStore, NewAlertEvent};
use tollgate_core::egress::EgressPolicy;
use tollgate_core::money::Money;
use tollgate_core::vkeys::Sealer;
use tollgate_governance::Governor;
use tollgate_governance::alerts::{AlertIndex, Crossing};
use tollgate_governance::counters::LineValue;
use tollgate_governance::snapshot::Snapshot;

pub use deliver::{EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};

use crate::alerts_config::AlertsConfig;
use deliver::Deliverer;

/// Rules are read again at most this often (only when a flush charged a budget).
const RULES_FRESH: Duration = Duration::from_secs(1);
/// Pending events leased per poll.
const LEASE_BATCH: u32 = 16;
/// Events this instance knows are claimed, kept to spare the database a repeated insert; past
/// this many the set starts over (a forgotten one costs one insert that does nothing).
const CLAIMED_KEPT: usize = 100_000;

/// The running task; `shutdown` stops it and lets attempts in flight finish (within their timeout).
#[derive(Debug)]
pub struct AlertsTask {
    stop: Arc<Notify>,
    handle: JoinHandle<()>,
}

/// What makes an event unique: rule, copy, budget line, window start, threshold.
type EventKey = (i64, i64, String, DateTime<Utc>, u32);

struct Watcher {
    store: Arc<dyn AlertStore>,
    governor: Governor,
    deliverer: Arc<Deliverer>,
    rules: Vec<AlertRule>,
    rules_read: Option<Instant>,
    /// The index and the snapshot it was built from.
    index: Arc<AlertIndex>,
    indexed: Option<Arc<Snapshot>>,
    claimed: HashSet<EventKey>,
    inflight: JoinSet<()>,
}

impl AlertsTask {
    pub fn start(
        store: Arc<dyn AlertStore>,
        sealer: Sealer,
        governor: Governor,
        mut lines: mpsc::Receiver<Vec<LineValue>>,
        config: AlertsConfig,
        egress: EgressPolicy,
    ) -> Result<AlertsTask, String> {
        let deliverer = Arc::new(Deliverer::new(store.clone(), sealer, config, egress)?);
        let mut watcher = Watcher {
            store,
            governor,
            deliverer,
            rules: Vec::new(),
            rules_read: None,
            index: Arc::default(),
            indexed: None,
            claimed: HashSet::new(),
            inflight: JoinSet::new(),
        };
        let stop = Arc::new(Notify::new());
        let stopping = stop.clone();
        let handle = tokio::spawn(async move {
            let mut poll = tokio::time::interval(config.poll());
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stopping.notified() => break,
                    Some(values) = lines.recv() => watcher.seen(&values).await,
                    _ = poll.tick() => watcher.retry_due().await,
                }
                while watcher.inflight.try_join_next().is_some() {}
            }
            let drain = async { while watcher.inflight.join_next().await.is_some() {} };
            if tokio::time::timeout(config.timeout + Duration::from_secs(1), drain).await.is_err() {
                // Their leases run out and another instance (or the next start) attempts them again.
                watcher.inflight.abort_all();
            }
        });
        Ok(AlertsTask { stop, handle })
    }

    pub async fn shutdown(self) {
        self.stop.notify_one();
        if let Err(e) = self.handle.await {
            tracing::warn!(error = %e, "the budget-alert task ended abnormally");
        }
    }
}

impl Watcher {
    /// Brings rules and index up to date: rules at most every `RULES_FRESH`, the index whenever
    /// they or the snapshot changed (built on the blocking pool: it walks every copy).
    async fn refresh(&mut self) {
        let mut changed = false;
        if self.rules_read.is_none_or(|at| at.elapsed() >= RULES_FRESH) {
            match self.store.enabled_alert_rules().await {
                Ok(rules) => {
                    changed = rules != self.rules || self.rules_read.is_none();
                    self.rules = rules;
                    self.rules_read = Some(Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "reading the budget alert rules failed; keeping the last ones"),
            }
        }
        let snapshot = self.governor.snapshot();
        let moved = self.indexed.as_ref().is_none_or(|seen| !Arc::ptr_eq(seen, &snapshot));
        if changed || moved {
            let (rules, built_on) = (self.rules.clone(), snapshot.clone());
            match tokio::task::spawn_blocking(move || AlertIndex::new(&built_on, rules)).await {
                Ok(index) => {
                    self.index = Arc::new(index);
                    self.indexed = Some(snapshot);
                }
                Err(e) => tracing::warn!(error = %e, "indexing budget lines for alerts failed"),
            }
        }
    }

    /// Claims and delivers every threshold the written `values` reached.
    async fn seen(&mut self, values: &[LineValue]) {
        self.refresh().await;
        if self.index.is_empty() {
            return;
        }
        let Some(snapshot) = self.indexed.clone() else { return };
        let now = tollgate_core::clock::now();
        let lease = chrono::Duration::from_std(self.deliverer.config().lease()).unwrap_or(chrono::Duration::MAX);
        for crossing in self.index.crossings(&snapshot, values, now) {
            let key = (crossing.rule_id, crossing.copy_id, crossing.budget_id.clone(), crossing.window_start, crossing.threshold);
            if self.claimed.contains(&key) {
                continue;
            }
            let event = event_of(&crossing, now);
            match self.store.claim_alert(&event, now.checked_add_signed(lease).unwrap_or(now)).await {
                Ok(created) => {
                    if self.claimed.len() >= CLAIMED_KEPT {
                        self.claimed.clear();
                    }
                    self.claimed.insert(key);
                    if created {
                        tracing::info!(event = %event.id, rule = crossing.rule_id, copy = crossing.copy_id, threshold = crossing.threshold, "budget alert fired");
                        self.deliver(AlertDelivery {
                            id: event.id,
                            rule_id: event.rule_id,
                            profile_id: event.profile_id,
                            user_id: event.user_id,
                            body: event.body,
                            attempts: 0,
                        });
                    }
                }
                // Looked at again when the line is next charged.
                Err(e) => tracing::warn!(error = %e, "claiming a budget alert failed"),
            }
        }
    }

    /// Leases and attempts the pending events whose next attempt is due.
    async fn retry_due(&mut self) {
        let now = tollgate_core::clock::now();
        let lease = chrono::Duration::from_std(self.deliverer.config().lease()).unwrap_or(chrono::Duration::MAX);
        match self.store.lease_due_alerts(now, now.checked_add_signed(lease).unwrap_or(now), LEASE_BATCH).await {
            Ok(due) => due.into_iter().for_each(|d| self.deliver(d)),
            Err(e) => tracing::warn!(error = %e, "looking for budget alerts to retry failed"),
        }
    }

    fn deliver(&mut self, delivery: AlertDelivery) {
        let deliverer = self.deliverer.clone();
        self.inflight.spawn(async move { deliverer.attempt(delivery).await });
    }
}

fn dollars(micros: u64) -> f64 {
    Money::from_micros(i64::try_from(micros).unwrap_or(i64::MAX)).unwrap_or(Money::ZERO).dollars()
}

/// The event of `crossing`, with the body every attempt sends.
fn event_of(crossing: &Crossing, now: DateTime<Utc>) -> NewAlertEvent {
    let id = uuid::Uuid::new_v4().to_string();
    let payload = AlertPayload {
        event_id: id.clone(),
        kind: "budget.threshold_reached".to_owned(),
        rule_id: crossing.rule_id,
        access_profile_id: crossing.profile_id.0,
        access_profile_name: crossing.profile_name.clone(),
        copy_id: crossing.copy_id,
        user_id: crossing.user_id.clone(),
        budget_id: crossing.budget_id.clone(),
        threshold_percent: crossing.threshold,
        used: dollars(crossing.used),
        limit: dollars(crossing.limit),
        window_start: crossing.window_start,
        window_reset: crossing.window_reset,
        created_at: now,
    };
    NewAlertEvent {
        body: serde_json::to_string(&payload).unwrap_or_default(),
        id,
        rule_id: crossing.rule_id,
        profile_id: crossing.profile_id,
        copy_id: crossing.copy_id,
        user_id: crossing.user_id.clone(),
        budget_id: crossing.budget_id.clone(),
        window_start: crossing.window_start,
        threshold: crossing.threshold,
        created_at: now,
    }
}
