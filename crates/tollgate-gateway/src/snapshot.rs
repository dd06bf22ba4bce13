//! The immutable governance snapshot the hot path reads: keys by value hash, each user's active
//! copies, budget overrides. Rebuilt from the store and swapped as a unit (`ArcSwap`).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tollgate_core::copies::UserCopy;
use tollgate_core::ids::BudgetId;
use tollgate_core::overrides::BudgetOverride;
use tollgate_core::usage::{GovernanceData, KeyRecord, UsageStore};

/// Governance state at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub keys: HashMap<String, KeyRecord>,
    /// Copies per user, oldest first.
    pub copies: HashMap<String, Vec<Arc<UserCopy>>>,
    pub overrides: HashMap<BudgetId, BudgetOverride>,
}

impl Snapshot {
    pub fn build(data: GovernanceData) -> Snapshot {
        let keys = data.keys.into_iter().map(|k| (k.value_hash.clone(), k)).collect();
        let mut copies: HashMap<String, Vec<Arc<UserCopy>>> = HashMap::new();
        for copy in data.copies {
            copies.entry(copy.user_id.clone()).or_default().push(Arc::new(copy));
        }
        let overrides = data.overrides.into_iter().map(|o| (o.budget_id.clone(), o)).collect();
        Snapshot { keys, copies, overrides }
    }
}

/// The current snapshot, shared by every request.
#[derive(Debug, Clone)]
pub struct SharedSnapshot(Arc<ArcSwap<Snapshot>>);

impl Default for SharedSnapshot {
    fn default() -> Self {
        Self(Arc::new(ArcSwap::from_pointee(Snapshot::default())))
    }
}

impl SharedSnapshot {
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Reads the store and swaps in a fresh snapshot; on failure the old one stays.
    pub async fn reload(&self, store: &dyn UsageStore) -> Result<(), String> {
        let data = store.load_governance().await.map_err(|e| e.to_string())?;
        self.0.store(Arc::new(Snapshot::build(data)));
        Ok(())
    }
}
