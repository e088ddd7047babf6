//! The inbound frame limit of one connection: a GCRA limiter of the `governor` crate (the same
//! implementation as the server's per-user HTTP limits), plus a count of refusals in a row.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota};

/// Allows `rate` frames per second on average and bursts of `burst`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limiter: DefaultDirectRateLimiter,
    /// Frames refused in a row.
    pub(crate) strikes: u32,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultDirectRateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            strikes: 0,
        }
    }

    /// Takes a token; false when none is left.
    pub(crate) fn take(&mut self) -> bool {
        if self.limiter.check().is_ok() {
            self.strikes = 0;
            true
        } else {
            self.strikes += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refuses_and_counts_strikes() {
        // A slow rate, so no token comes back while the test runs.
        let mut b = TokenBucket::new(1, 3);
        assert!((0..3).all(|_| b.take()));
        assert!(!b.take());
        assert!(!b.take());
        assert_eq!(b.strikes, 2);
    }
}
