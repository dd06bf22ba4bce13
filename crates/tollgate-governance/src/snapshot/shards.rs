//! A map split into a fixed number of shared shards, so that a changed copy of it clones only
//! the shards its change touches (a few hundred entries each at 100k) and shares the rest.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

use hashbrown::HashMap;

/// Shards per map: at a million keys about 4,000 entries each, at 100k users about 400.
pub const SHARDS: usize = 256;

/// The shard of a key value hash: its first byte (the hash is uniform already).
pub fn key_shard(hash: &[u8; 32]) -> usize {
    usize::from(hash[0])
}

/// The shard of a user id: FNV-1a of its bytes, folded to a byte. Stable across processes and
/// runs, so a test can rely on where a user lands.
pub fn user_shard(user: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in user.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    usize::try_from((h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24)) & 0xff).unwrap_or(0)
}

/// `SHARDS` maps, each behind an `Arc`; cloning the whole copies `SHARDS` pointers.
#[derive(Debug, Clone)]
pub struct Shards<K, V> {
    shards: Vec<Arc<HashMap<K, V>>>,
}

impl<K, V> Default for Shards<K, V> {
    fn default() -> Self {
        Shards { shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect() }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Shards<K, V> {
    /// Built from `(shard, key, value)` entries. Each map starts with room for its share of
    /// them and some slack, so filling it does not rehash it several times over.
    pub fn build(entries: impl ExactSizeIterator<Item = (usize, K, V)>) -> Self {
        let share = entries.len() / SHARDS;
        let mut maps: Vec<HashMap<K, V>> = (0..SHARDS).map(|_| HashMap::with_capacity(share + share / 4 + 4)).collect();
        for (shard, key, value) in entries {
            if let Some(map) = maps.get_mut(shard) {
                map.insert(key, value);
            }
        }
        Shards { shards: maps.into_iter().map(Arc::new).collect() }
    }

    pub fn get<Q>(&self, shard: usize, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards.get(shard)?.get(key)
    }

    /// The shard, made this map's own first if it is shared (copy on write).
    fn own(&mut self, shard: usize) -> Option<&mut HashMap<K, V>> {
        self.shards.get_mut(shard).map(Arc::make_mut)
    }

    pub fn insert(&mut self, shard: usize, key: K, value: V) {
        if let Some(map) = self.own(shard) {
            map.insert(key, value);
        }
    }

    pub fn remove<Q>(&mut self, shard: usize, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.get(shard, key).is_some()
            && let Some(map) = self.own(shard)
        {
            map.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}
