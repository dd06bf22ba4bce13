//! The immutable governance snapshot the hot path reads: keys by value hash, each user's copies
//! with the overrides on their budgets. Built whole from the store, or derived from the current
//! one for a few users (copy-on-write, one small shard per touched key or user), and swapped as a
//! unit (`ArcSwap`).

mod copy;
mod intern;
mod shards;

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use hashbrown::hash_map::EntryRef;
use tollgate_core::copies::UserCopy;
use tollgate_core::overrides::BudgetOverride;
use tollgate_core::usage::{KeyBlock, KeyRecord, UsersData, key_block, value_live};

pub use copy::{BudgetLine, GovernedCopy, Level, McpGrants, Models, ProviderGrant, RateLine};
use intern::Interner;
use shards::{Shards, key_shard, user_shard};

/// Governance state at one instant.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Keys by the SHA-256 of their value (decoded from the stored hex once, here), sharded by
    /// the hash's first byte.
    keys: Shards<[u8; 32], Arc<GovernedKey>>,
    /// What each user holds, sharded by a hash of the user id.
    users: Shards<Arc<str>, Arc<Holdings>>,
}

/// A virtual key as the hot path reads it (one per live value: a rotated key's previous value
/// in its grace period is a second entry).
#[derive(Debug, PartialEq)]
pub struct GovernedKey {
    pub id: Box<str>,
    /// Shared with the user's entry in the snapshot.
    pub user_id: Arc<str>,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// For a previous value only: the end of its grace period.
    pub value_expires_at: Option<DateTime<Utc>>,
}

impl GovernedKey {
    /// Whether the presented value still opens the key at `now` (see `KeyRecord::value_live_at`).
    pub fn value_live_at(&self, now: DateTime<Utc>) -> bool {
        value_live(self.value_expires_at, now)
    }

    /// Why the key refuses every request at `now`, if it does.
    pub fn blocked_at(&self, now: DateTime<Utc>) -> Option<KeyBlock> {
        key_block(self.is_active, self.expires_at, now)
    }
}

/// One user's part of the snapshot.
#[derive(Debug, Default, PartialEq)]
pub struct Holdings {
    /// Copies, oldest first.
    pub copies: Vec<GovernedCopy>,
    /// The hashes of the user's keys, so that a change to the user finds the keys to replace.
    key_hashes: Vec<[u8; 32]>,
}

/// A key's value hash as stored (hex) decoded; `None` for a malformed one, which no presented
/// value can match anyway.
fn decoded(hash: &str) -> Option<[u8; 32]> {
    let mut bytes = [0; 32];
    hex::decode_to_slice(hash, &mut bytes).ok()?;
    Some(bytes)
}

/// Makes a snapshot's parts from copies as a load reads them, then its keys and overrides.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    interner: Interner,
    users: hashbrown::HashMap<Arc<str>, Holdings>,
}

/// The user's shared id and holdings, made empty if it had none (one hash lookup either way).
fn held_by<'m>(users: &'m mut hashbrown::HashMap<Arc<str>, Holdings>, user: &str) -> (Arc<str>, &'m mut Holdings) {
    match users.entry_ref(user) {
        EntryRef::Occupied(entry) => (Arc::clone(entry.key()), entry.into_mut()),
        EntryRef::Vacant(entry) => {
            let id: Arc<str> = Arc::from(user);
            (Arc::clone(&id), entry.insert_entry_with_key(id, Holdings::default()).into_mut())
        }
    }
}

/// Pushes onto a user's copies or key hashes with room for exactly one item at first: most users
/// hold one copy and one key, and a vector's first growth makes room for four (tens of megabytes
/// of unused room at 100k users, and a reallocation each to shrink it back).
fn push_exact<T>(items: &mut Vec<T>, item: T) {
    if items.capacity() == 0 {
        items.reserve_exact(1);
    }
    items.push(item);
}

/// Keys and users' holdings, compact, ready to be placed in shards.
struct Parts {
    keys: Vec<([u8; 32], Arc<GovernedKey>)>,
    users: hashbrown::HashMap<Arc<str>, Holdings>,
}

impl SnapshotBuilder {
    /// Takes one copy (in any order: each user's copies are put oldest first at the end).
    pub fn copy(&mut self, mut copy: UserCopy) {
        let user = std::mem::take(&mut copy.user_id);
        let copy = GovernedCopy::new(copy, &mut self.interner);
        push_exact(&mut held_by(&mut self.users, &user).1.copies, copy);
    }

    /// The snapshot of the copies taken, `keys` and the `overrides` on those copies' budgets.
    pub fn finish(self, keys: Vec<KeyRecord>, overrides: Vec<BudgetOverride>) -> Snapshot {
        let Parts { keys, users } = self.parts(keys, overrides);
        // The two maps are independent: the keys' is placed on a second thread while this one
        // places the users' (at 100k users each takes tens of milliseconds).
        std::thread::scope(|scope| {
            let keys = scope.spawn(move || Shards::build(keys.into_iter().map(|(hash, key)| (key_shard(&hash), hash, key))));
            let users = Shards::build(users.into_iter().map(|(user, held)| (user_shard(&user), user, Arc::new(held))));
            let keys = keys.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Snapshot { keys, users }
        })
    }

    fn parts(self, keys: Vec<KeyRecord>, overrides: Vec<BudgetOverride>) -> Parts {
        let mut users = self.users;
        if !overrides.is_empty() {
            let mut by_copy: hashbrown::HashMap<i64, Vec<BudgetOverride>> = hashbrown::HashMap::new();
            for grant in overrides {
                by_copy.entry(grant.copy_id).or_default().push(grant);
            }
            for copy in users.values_mut().flat_map(|held| held.copies.iter_mut()) {
                copy.overrides = by_copy.remove(&copy.id).unwrap_or_default();
            }
        }
        let keys: Vec<_> = keys
            .into_iter()
            .filter_map(|k| {
                let hash = decoded(&k.value_hash)?;
                let (user_id, held) = held_by(&mut users, &k.user_id);
                push_exact(&mut held.key_hashes, hash);
                let key = GovernedKey {
                    id: k.id.into_boxed_str(),
                    user_id,
                    is_active: k.is_active,
                    expires_at: k.expires_at,
                    value_expires_at: k.value_expires_at,
                };
                Some((hash, Arc::new(key)))
            })
            .collect();
        for held in users.values_mut() {
            held.key_hashes.sort_unstable();
            held.copies.sort_unstable_by_key(|c| c.id);
            held.key_hashes.shrink_to_fit();
            held.copies.shrink_to_fit();
        }
        Parts { keys, users }
    }
}

impl Snapshot {
    /// The user copy owning each counter line (a line belongs to exactly one copy).
    pub fn line_owners(&self) -> hashbrown::HashMap<&str, i64> {
        let mut owners = hashbrown::HashMap::new();
        for copy in self.users.iter().flat_map(|(_, held)| held.copies.iter()) {
            for line in copy.levels().flat_map(Level::lines) {
                owners.insert(&**line, copy.id);
            }
        }
        owners
    }

    /// The snapshot of these keys, copies (oldest first) and overrides.
    pub fn of(keys: Vec<KeyRecord>, copies: Vec<UserCopy>, overrides: Vec<BudgetOverride>) -> Snapshot {
        let mut builder = SnapshotBuilder::default();
        for copy in copies {
            builder.copy(copy);
        }
        builder.finish(keys, overrides)
    }

    /// This snapshot with `data.users`' keys, copies and overrides replaced by those in `data`:
    /// only the shards holding those users and their old and new keys are copied; everything
    /// else is shared with `self`.
    pub fn with_users(&self, data: UsersData) -> Snapshot {
        let mut next = self.clone();
        let mut builder = SnapshotBuilder::default();
        for copy in data.copies {
            builder.copy(copy);
        }
        let mut parts = builder.parts(data.keys, data.overrides);
        for user in &data.users {
            if let Some(old) = self.holdings(user) {
                for hash in &old.key_hashes {
                    next.keys.remove(key_shard(hash), hash);
                }
            }
            let shard = user_shard(user);
            match parts.users.remove_entry(user.as_str()) {
                Some((id, held)) => next.users.insert(shard, id, Arc::new(held)),
                None => next.users.remove(shard, user.as_str()),
            }
        }
        for (hash, key) in parts.keys {
            // A key moved to a user outside `data.users` would leave a stale hash there; keys
            // never change hands, so the only case is a key listed under its own user.
            next.keys.insert(key_shard(&hash), hash, key);
        }
        next
    }

    /// Every user with holdings and their copies, in no particular order.
    pub fn holders(&self) -> impl Iterator<Item = (&Arc<str>, &[GovernedCopy])> {
        self.users.iter().map(|(user, held)| (user, held.copies.as_slice()))
    }

    /// The key whose value hashes to `hash`.
    pub fn key(&self, hash: &[u8; 32]) -> Option<&GovernedKey> {
        self.keys.get(key_shard(hash), hash).map(Arc::as_ref)
    }

    /// The key with this id, at its current value (a rotated key's previous value only while it
    /// is the only one). A scan over every key, for management reads, never on a request.
    pub fn key_by_id(&self, id: &str) -> Option<&GovernedKey> {
        let mut found = self.keys.iter().map(|(_, k)| k.as_ref()).filter(|k| &*k.id == id);
        let first = found.next()?;
        Some(if first.value_expires_at.is_some() { found.next().unwrap_or(first) } else { first })
    }

    /// The user's copies, oldest first (none for an unknown user).
    pub fn copies(&self, user: &str) -> &[GovernedCopy] {
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
pub type Contents<'s> = (Vec<(&'s [u8; 32], &'s GovernedKey)>, Vec<(&'s str, &'s Holdings)>);

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

    /// Swaps in `snapshot` and gives back the one it replaced.
    pub fn swap(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        self.current.swap(Arc::new(snapshot))
    }
}

#[cfg(test)]
mod tests;
