//! A token bucket for inbound frames of one connection.

use std::time::Instant;

/// Allows `rate` frames per second on average and bursts of `burst`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
    /// Frames refused in a row.
    pub(crate) strikes: u32,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            rate: f64::from(rate),
            last: Instant::now(),
            strikes: 0,
        }
    }

    /// Takes a token; false when none is left.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
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
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3);
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert_eq!(b.strikes, 1);
        assert!(b.take(t0 + Duration::from_millis(150)));
        assert_eq!(b.strikes, 0);
    }
}
