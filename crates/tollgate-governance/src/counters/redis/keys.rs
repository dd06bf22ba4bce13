//! Redis key names. Every key a script touches is named here and passed to it in `KEYS`, and the
//! keys of one reservation share a hash tag — the bucket of the user copy its lines belong to —
//! so each script call stays inside one Redis Cluster slot.

/// User copies are spread over this many buckets (hash tags `{0}` … `{1023}`); each bucket has
/// its own reservation index, which a sweep visits one by one.
pub(super) const BUCKETS: i64 = 1024;

/// The bucket of user copy `copy`.
pub(super) fn bucket(copy: i64) -> i64 {
    copy.rem_euclid(BUCKETS)
}

/// The key names under one deployment's prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: std::sync::Arc<str>,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.into() }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where the keys of `bucket` start: `<prefix>{<bucket>}:`.
    fn tagged(&self, bucket: i64) -> String {
        format!("{}{{{bucket}}}:", self.prefix)
    }

    /// A user copy's counters: a hash whose field `<line>` holds `<window start>:<used>:<reserved>`,
    /// `exp` its expiry, and `@<reservation>` what each reservation of the copy holds.
    pub(super) fn copy(&self, copy: i64) -> String {
        format!("{}copy:{copy}", self.tagged(bucket(copy)))
    }

    /// The bucket's reservations, scored by when their instance last vouched for them.
    pub(super) fn index(&self, bucket: i64) -> String {
        format!("{}reservations", self.tagged(bucket))
    }

    /// What a sweep charged for a reservation, for its late settlement.
    pub(super) fn marker(&self, bucket: i64, member: &str) -> String {
        format!("{}swept:{member}", self.tagged(bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_of_one_copy_share_one_hash_tag() {
        let keys = Keys::new("tg:");
        let b = bucket(1025);
        assert_eq!(b, 1);
        for key in [keys.copy(1025), keys.index(b), keys.marker(b, "i:1:1025")] {
            assert!(key.starts_with("tg:{1}:"), "{key}");
        }
        assert_eq!(bucket(-3), BUCKETS - 3, "never a negative tag");
    }
}
