//! The immutable governance snapshot the hot path reads: keys by value hash, each user's copies
//! with the overrides on their budgets. Built whole from the store, or derived from the current
//! one for a few users (copy-on-write, one small shard per touched key or user), and swapped as a
//! unit (`ArcSwap`).

mod shards;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tollgate_core::copies::UserCopy;
use tollgate_core::ids::BudgetId;
use tollgate_core::overrides::BudgetOverride;
use tollgate_core::profile::{Budget, RateLimit};
use tollgate_core::usage::{GovernanceData, KeyRecord, UsersData};

use shards::{Shards, key_shard, user_shard};

/// Governance state at one instant.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Keys by the SHA-256 of their value (decoded from the stored hex once, here), sharded by
    /// the hash's first byte.
    keys: Shards<[u8; 32], Arc<KeyRecord>>,
    /// What each user holds, sharded by a hash of the user id.
    users: Shards<Arc<str>, Arc<Holdings>>,
}

/// One user's part of the snapshot.
#[derive(Debug, Default, PartialEq)]
pub struct Holdings {
    /// Copies, oldest first.
    pub copies: Vec<Arc<GovernedCopy>>,
    /// The hashes of the user's keys, so that a change to the user finds the keys to replace.
    key_hashes: Vec<[u8; 32]>,
}

/// A user's copy as the hot path reads it, with the counter line names of its budgets and rate
/// limits made once per snapshot, so a request's claims share them instead of making their own,
/// and the overrides on its budgets.
#[derive(Debug, PartialEq)]
pub struct GovernedCopy {
    pub copy: UserCopy,
    /// Lines of the profile-level budgets and rate limit.
    pub profile: Lines,
    /// Lines of each provider config, in the policy's order.
    pub configs: Vec<Lines>,
    /// Overrides on this copy's budgets (a copy has a few at most).
    pub overrides: Vec<BudgetOverride>,
}

impl std::ops::Deref for GovernedCopy {
    type Target = UserCopy;

    fn deref(&self) -> &UserCopy {
        &self.copy
    }
}

impl GovernedCopy {
    pub fn new(copy: UserCopy, overrides: Vec<BudgetOverride>) -> GovernedCopy {
        let profile = Lines::of(&copy.policy.budgets, copy.policy.rate_limit.as_ref());
        let configs = copy.policy.provider_configs.iter().map(|p| Lines::of(&p.budgets, p.rate_limit.as_ref())).collect();
        GovernedCopy { copy, profile, configs, overrides }
    }

    /// The override on one of this copy's budgets, if any.
    pub fn override_of(&self, budget: &BudgetId) -> Option<&BudgetOverride> {
        self.overrides.iter().find(|o| o.budget_id == *budget)
    }
}

/// Counter line names of one level of a policy: a budget's line is its id, a rate limit's are
/// `<id>:t` (tokens) and `<id>:r` (requests).
#[derive(Debug, Clone, Default, PartialEq)]
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

/// A key's value hash as stored (hex) decoded; `None` for a malformed one, which no presented
/// value can match anyway.
fn decoded(hash: &str) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(hex::decode(hash).ok()?).ok()
}

/// Each user's holdings, from keys, copies (oldest first) and overrides read together.
fn holdings_of(
    keys: &[([u8; 32], Arc<KeyRecord>)],
    copies: Vec<UserCopy>,
    overrides: Vec<BudgetOverride>,
) -> hashbrown::HashMap<String, Holdings> {
    let mut by_copy: hashbrown::HashMap<i64, Vec<BudgetOverride>> = hashbrown::HashMap::new();
    for o in overrides {
        by_copy.entry(o.copy_id).or_default().push(o);
    }
    let mut users: hashbrown::HashMap<String, Holdings> = hashbrown::HashMap::new();
    for copy in copies {
        let overrides = by_copy.remove(&copy.id).unwrap_or_default();
        let user = users.entry_ref(copy.user_id.as_str()).or_default();
        user.copies.push(Arc::new(GovernedCopy::new(copy, overrides)));
    }
    for (hash, key) in keys {
        users.entry_ref(key.user_id.as_str()).or_default().key_hashes.push(*hash);
    }
    for held in users.values_mut() {
        held.key_hashes.sort_unstable();
    }
    users
}

fn decoded_keys(keys: Vec<KeyRecord>) -> Vec<([u8; 32], Arc<KeyRecord>)> {
    keys.into_iter().filter_map(|k| Some((decoded(&k.value_hash)?, Arc::new(k)))).collect()
}

impl Snapshot {
    /// The user copy owning each counter line (a line belongs to exactly one copy).
    pub fn line_owners(&self) -> hashbrown::HashMap<&str, i64> {
        let mut owners = hashbrown::HashMap::new();
        for copy in self.users.iter().flat_map(|(_, held)| held.copies.iter()) {
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
        let keys = decoded_keys(data.keys);
        let users = holdings_of(&keys, data.copies, data.overrides);
        Snapshot {
            keys: Shards::build(keys.into_iter().map(|(hash, key)| (key_shard(&hash), hash, key))),
            users: Shards::build(users.into_iter().map(|(user, held)| (user_shard(&user), Arc::from(user), Arc::new(held)))),
        }
    }

    /// This snapshot with `data.users`' keys, copies and overrides replaced by those in `data`:
    /// only the shards holding those users and their old and new keys are copied; everything
    /// else is shared with `self`.
    pub fn with_users(&self, data: UsersData) -> Snapshot {
        let mut next = self.clone();
        let keys = decoded_keys(data.keys);
        let mut users = holdings_of(&keys, data.copies, data.overrides);
        for user in &data.users {
            if let Some(old) = self.holdings(user) {
                for hash in &old.key_hashes {
                    next.keys.remove(key_shard(hash), hash);
                }
            }
            let shard = user_shard(user);
            match users.remove(user.as_str()) {
                Some(held) => next.users.insert(shard, Arc::from(user.as_str()), Arc::new(held)),
                None => next.users.remove(shard, user.as_str()),
            }
        }
        for (hash, key) in keys {
            // A key moved to a user outside `data.users` would leave a stale hash there; keys
            // never change hands, so the only case is a key listed under its own user.
            next.keys.insert(key_shard(&hash), hash, key);
        }
        next
    }

    /// The key whose value hashes to `hash`.
    pub fn key(&self, hash: &[u8; 32]) -> Option<&KeyRecord> {
        self.keys.get(key_shard(hash), hash).map(Arc::as_ref)
    }

    /// The user's copies, oldest first (none for an unknown user).
    pub fn copies(&self, user: &str) -> &[Arc<GovernedCopy>] {
        self.holdings(user).map_or(&[][..], |h| h.copies.as_slice())
    }

    fn holdings(&self, user: &str) -> Option<&Holdings> {
        self.users.get(user_shard(user), user).map(Arc::as_ref)
    }

    /// How many keys and how many users with keys or copies it holds.
    pub fn size(&self) -> (usize, usize) {
        (self.keys.len(), self.users.len())
    }

    /// Every key and every user's holdings, sorted: two snapshots with the same content give
    /// equal lists, however each was made.
    pub fn contents(&self) -> Contents<'_> {
        let mut keys: Vec<_> = self.keys.iter().map(|(h, k)| (h, k.as_ref())).collect();
        keys.sort_by_key(|(h, _)| **h);
        let mut users: Vec<_> = self.users.iter().map(|(u, h)| (u.as_ref(), h.as_ref())).collect();
        users.sort_by_key(|(u, _)| *u);
        (keys, users)
    }
}

/// Every key by hash and every user's holdings, each list sorted.
pub type Contents<'s> = (Vec<(&'s [u8; 32], &'s KeyRecord)>, Vec<(&'s str, &'s Holdings)>);

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

    /// Swaps in `snapshot`.
    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests;
