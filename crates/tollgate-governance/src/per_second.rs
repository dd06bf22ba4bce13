//! A lock-free cap of so many events per second (the second and its count share one atomic word).

use std::sync::atomic::{AtomicU64, Ordering};

/// At most `limit` takes per second, without a lock: the second and the count taken in it share
/// one atomic word.
#[derive(Debug, Default)]
pub(crate) struct PerSecond(AtomicU64);

impl PerSecond {
    const COUNT_BITS: u32 = 24;

    pub(crate) fn take(&self, second: u64, limit: u32) -> bool {
        let mask = (1u64 << Self::COUNT_BITS) - 1;
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let (at, taken) = (current >> Self::COUNT_BITS, current & mask);
            let next = if at == second {
                if taken >= u64::from(limit) {
                    return false;
                }
                current + 1
            } else {
                (second << Self::COUNT_BITS) | 1
            };
            match self.0.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_is_taken_in_a_second_and_the_next_second_starts_afresh() {
        let limit = PerSecond::default();
        assert_eq!((0..5).filter(|_| limit.take(100, 3)).count(), 3);
        assert!(limit.take(101, 3), "a new second");
        assert_eq!((0..5).filter(|_| limit.take(101, 3)).count(), 2);
    }
}
