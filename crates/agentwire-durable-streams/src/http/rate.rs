//! Rates on `/ds`: GCRA limiters of `governor` (as the server's other rates) keyed by owner, or
//! by peer address where no owner is known yet, holding state only for keys whose budget is not
//! full again.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota};

/// Checks between two sweeps of owners whose budget is full again.
const SWEEP_EVERY: u64 = 4096;

/// `per_second` sustained, `burst` at once, per key.
pub(crate) struct KeyedRate<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedRate<K> {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one unit of `key`'s budget; `false` when none is left.
    pub(crate) fn check(&self, key: &K) -> bool {
        // The map stays as large as the set of recently active keys.
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).is_ok()
    }
}
