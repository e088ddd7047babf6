//! Per-owner rates on `/ds`: a GCRA limiter of `governor` (as the server's other rates) keyed by
//! [`Owner`], holding state only for owners whose budget is not full again.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::model::Owner;

/// Checks between two sweeps of owners whose budget is full again.
const SWEEP_EVERY: u64 = 4096;

/// `per_second` sustained, `burst` at once, per owner.
pub(crate) struct OwnerRate {
    limiter: DefaultKeyedRateLimiter<Owner>,
    checks: AtomicU64,
}

impl OwnerRate {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one unit of `owner`'s budget; `false` when none is left.
    pub(crate) fn check(&self, owner: &Owner) -> bool {
        // The map stays as large as the set of recently active owners.
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(owner).is_ok()
    }
}
