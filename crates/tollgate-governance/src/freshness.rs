//! Which stored generation the snapshot reflects, and whether the periodic look must rebuild.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The generation the snapshot reflects, and this instance's own bumps not yet folded in.
#[derive(Debug)]
pub struct Freshness {
    /// Every write counted up to this generation is in the snapshot.
    seen: i64,
    /// Generations this instance raised for writes it has applied itself; they join `seen` once
    /// every generation before them has (another instance's write in between is not applied).
    own: BTreeSet<i64>,
    /// When the snapshot was last rebuilt whole.
    built_at: Instant,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness { seen: i64::MIN, own: BTreeSet::new(), built_at: Instant::now() }
    }
}

impl Freshness {
    /// A full rebuild read everything after the store stood at `generation`.
    pub fn rebuilt(&mut self, generation: i64) {
        self.seen = self.seen.max(generation);
        self.built_at = Instant::now();
        self.fold();
    }

    /// This instance raised the generation to `n` for a write it applies itself.
    pub fn own(&mut self, n: i64) {
        self.own.insert(n);
        self.fold();
    }

    fn fold(&mut self) {
        let seen = self.seen;
        self.own.retain(|n| *n > seen);
        while self.own.remove(&(self.seen + 1)) {
            self.seen += 1;
        }
    }

    /// Whether the snapshot must be rebuilt: the stored generation is not the one it reflects
    /// (or could not be read), or the last full rebuild is older than `every`.
    pub fn stale(&self, stored: Option<i64>, every: Duration) -> bool {
        stored != Some(self.seen) || self.built_at.elapsed() >= every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_hours(1);

    #[test]
    fn own_writes_in_order_need_no_rebuild() {
        let mut fresh = Freshness::default();
        fresh.rebuilt(4);
        fresh.own(6);
        assert!(fresh.stale(Some(6), LONG), "5 is not ours: another instance wrote it");
        fresh.own(5);
        assert!(!fresh.stale(Some(6), LONG), "5 and 6 are both ours and applied");
    }

    #[test]
    fn another_instances_write_needs_a_rebuild_which_folds_in_later_own_writes() {
        let mut fresh = Freshness::default();
        fresh.rebuilt(1);
        fresh.own(3);
        assert!(fresh.stale(Some(3), LONG));
        fresh.rebuilt(2);
        assert!(!fresh.stale(Some(3), LONG), "2 read by the rebuild, 3 applied by us");
    }

    #[test]
    fn an_unreadable_generation_or_an_old_rebuild_means_rebuild() {
        let mut fresh = Freshness::default();
        fresh.rebuilt(7);
        assert!(fresh.stale(None, LONG));
        assert!(fresh.stale(Some(7), Duration::ZERO));
        assert!(!fresh.stale(Some(7), LONG));
    }
}
