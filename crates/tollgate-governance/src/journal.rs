//! The crash journal: at each usage flush, reservations open since the flush before are recorded
//! in the store and those settled since are forgotten, so a crash (`kill -9`, power loss of the
//! process) leaves every longer request recorded, and the next start charges it whole.

use std::collections::HashSet;

use tollgate_core::usage::{OpenReservation, UsageStore};

use crate::counters::Counters;
use crate::counters::row;

/// What this process has recorded. A reservation is recorded once it has been open at two
/// flushes in a row, so the many requests shorter than a flush never reach the store.
#[derive(Debug)]
pub(crate) struct Journal {
    /// Makes ids unique across restarts (a process numbers its reservations from 1).
    instance: String,
    /// Open at the last flush.
    seen: HashSet<u64>,
    /// In the store's journal now.
    recorded: HashSet<u64>,
}

impl Journal {
    pub fn new() -> Journal {
        Journal { instance: uuid::Uuid::new_v4().simple().to_string(), seen: HashSet::new(), recorded: HashSet::new() }
    }

    fn key(&self, id: u64) -> String {
        format!("{}-{id}", self.instance)
    }

    /// Records what has stayed open since the last flush and forgets what has settled; on a
    /// failed write nothing changes here, so the next flush tries the same again.
    pub async fn sync(&mut self, store: &dyn UsageStore, counters: &dyn Counters) {
        let (seen, recorded) = (&self.seen, &self.recorded);
        let (open, fresh) = counters.open_reservations(&|id| seen.contains(&id) && !recorded.contains(&id));
        let open: HashSet<u64> = open.into_iter().collect();
        let closed: Vec<u64> = self.recorded.iter().filter(|id| !open.contains(id)).copied().collect();
        if !fresh.is_empty() || !closed.is_empty() {
            let opened: Vec<OpenReservation> =
                fresh.iter().map(|(id, lines)| OpenReservation { id: self.key(*id), lines: lines.iter().map(row).collect() }).collect();
            let forgotten: Vec<String> = closed.iter().map(|id| self.key(*id)).collect();
            match store.journal(&opened, &forgotten).await {
                Ok(()) => {
                    self.recorded.extend(fresh.iter().map(|(id, _)| *id));
                    for id in &closed {
                        self.recorded.remove(id);
                    }
                }
                Err(e) => tracing::error!(error = %e, "recording open reservations failed; will retry"),
            }
        }
        self.seen = open;
    }
}
