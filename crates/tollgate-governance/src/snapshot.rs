//! The immutable governance snapshot the hot path reads: keys by value hash, each user's
//! copies, budget overrides. Rebuilt from the store and swapped as a unit (`ArcSwap`).

use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;
use tollgate_core::copies::UserCopy;
use tollgate_core::ids::BudgetId;
use tollgate_core::overrides::BudgetOverride;
use tollgate_core::profile::{Budget, RateLimit};
use tollgate_core::usage::{GovernanceData, KeyRecord};

/// Governance state at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Keys by the SHA-256 of their value (decoded from the stored hex once, here).
    pub keys: HashMap<[u8; 32], KeyRecord>,
    /// Copies per user, oldest first.
    pub copies: HashMap<String, Vec<Arc<GovernedCopy>>>,
    pub overrides: HashMap<BudgetId, BudgetOverride>,
}

/// A user's copy as the hot path reads it, with the counter line names of its budgets and rate
/// limits made once per snapshot, so a request's claims share them instead of making their own.
#[derive(Debug)]
pub struct GovernedCopy {
    pub copy: UserCopy,
    /// Lines of the profile-level budgets and rate limit.
    pub profile: Lines,
    /// Lines of each provider config, in the policy's order.
    pub configs: Vec<Lines>,
}

impl std::ops::Deref for GovernedCopy {
    type Target = UserCopy;

    fn deref(&self) -> &UserCopy {
        &self.copy
    }
}

impl GovernedCopy {
    pub fn new(copy: UserCopy) -> GovernedCopy {
        let profile = Lines::of(&copy.policy.budgets, copy.policy.rate_limit.as_ref());
        let configs = copy.policy.provider_configs.iter().map(|p| Lines::of(&p.budgets, p.rate_limit.as_ref())).collect();
        GovernedCopy { copy, profile, configs }
    }
}

/// Counter line names of one level of a policy: a budget's line is its id, a rate limit's are
/// `<id>:t` (tokens) and `<id>:r` (requests).
#[derive(Debug, Clone, Default)]
pub struct Lines {
    /// One per budget, in order.
    pub budgets: Vec<Arc<str>>,
    pub tokens: Option<Arc<str>>,
    pub requests: Option<Arc<str>>,
}

impl Lines {
    fn of(budgets: &[Budget], rate_limit: Option<&RateLimit>) -> Lines {
        Lines {
            budgets: budgets.iter().map(|b| Arc::from(b.id.0.as_str())).collect(),
            tokens: rate_limit.map(|r| Arc::from(format!("{}:t", r.id.0))),
            requests: rate_limit.map(|r| Arc::from(format!("{}:r", r.id.0))),
        }
    }
}

impl Snapshot {
    /// The user copy owning each counter line (a line belongs to exactly one copy).
    pub fn line_owners(&self) -> HashMap<&str, i64> {
        let mut owners = HashMap::new();
        for copy in self.copies.values().flatten() {
            for lines in std::iter::once(&copy.profile).chain(&copy.configs) {
                for line in lines.budgets.iter().chain(&lines.tokens).chain(&lines.requests) {
                    owners.insert(&**line, copy.id);
                }
            }
        }
        owners
    }

    /// The snapshot of `data` (its providers are the inference surface's to read).
    pub fn build(data: GovernanceData) -> Snapshot {
        let keys = data.keys.into_iter().filter_map(|k| Some((<[u8; 32]>::try_from(hex::decode(&k.value_hash).ok()?).ok()?, k))).collect();
        let mut copies: HashMap<String, Vec<Arc<GovernedCopy>>> = HashMap::new();
        for copy in data.copies {
            copies.entry(copy.user_id.clone()).or_default().push(Arc::new(GovernedCopy::new(copy)));
        }
        let overrides = data.overrides.into_iter().map(|o| (o.budget_id.clone(), o)).collect();
        Snapshot { keys, copies, overrides }
    }
}

/// The current snapshot, shared by every request.
#[derive(Debug, Clone)]
pub struct SharedSnapshot {
    current: Arc<ArcSwap<Snapshot>>,
}

impl Default for SharedSnapshot {
    fn default() -> Self {
        Self { current: Arc::new(ArcSwap::from_pointee(Snapshot::default())) }
    }
}

impl SharedSnapshot {
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Swaps in the snapshot of `data`.
    pub fn install(&self, data: GovernanceData) {
        self.current.store(Arc::new(Snapshot::build(data)));
    }
}
