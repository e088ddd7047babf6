//! Per-user bounds of the HTTP API (docs/security.md):
//!
//! - a request rate per user on the user routes (`limits.http_requests_per_second`,
//!   `limits.http_burst`), charged by the [`ApiUser`] extractor after authentication;
//! - an event rate per target user on `/v1/publish` (`limits.publish_per_second`,
//!   `limits.publish_burst`);
//! - a cap on one user's concurrent HTTP streams (`limits.max_http_streams_per_user`): each
//!   open `/v1/stream`, `/agui/{agent}` response or live `/ds` read holds a [`StreamSlot`].
//!
//! Over a rate: 429 `rate_limited` with `Retry-After`; over the stream cap: 429
//! `too_many_streams`. Both are counted in `agentwire_http_limited_total{reason}`.
//!
//! The rates are GCRA limiters of the `governor` crate, the same implementation as the
//! per-connection `/ws` frame limit and the `/ds` append limit.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentwire_core::{ErrorCode, UserId};
use agentwire_startup::LimitsConfig;
use axum::extract::FromRequestParts;
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use agentwire_auth::Identity;

use crate::{ApiError, AppState, AuthenticatedIdentity};

/// Checks between two sweeps of a limiter's idle keys.
const SWEEP_EVERY: u64 = 4096;

/// A rate per user: `per_second` sustained, `burst` at once.
pub(crate) struct UserRate {
    limiter: DefaultKeyedRateLimiter<UserId>,
    checks: AtomicU64,
}

impl UserRate {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one unit of `user`'s budget; `Err(wait)` when none is left, with how long until
    /// the next one is.
    pub(crate) fn check(&self, user: &UserId) -> Result<(), Duration> {
        // Users whose budget is full again hold no state: the map stays as large as the set
        // of recently active users.
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(user)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

impl std::fmt::Debug for UserRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRate")
            .field("users", &self.limiter.len())
            .finish()
    }
}

/// The per-user HTTP bounds of one server, shared by its handlers.
#[derive(Debug)]
pub(crate) struct HttpLimits {
    requests: UserRate,
    publishes: UserRate,
    streams: Arc<StreamSlots>,
}

impl HttpLimits {
    pub(crate) fn new(limits: &LimitsConfig) -> Self {
        Self {
            requests: UserRate::new(limits.http_requests_per_second, limits.http_burst),
            publishes: UserRate::new(limits.publish_per_second, limits.publish_burst),
            streams: Arc::new(StreamSlots {
                max: limits.max_http_streams_per_user,
                open: DashMap::new(),
            }),
        }
    }

    /// Charges one request of `user`.
    pub(crate) fn request(&self, user: &UserId) -> Result<(), RateLimited> {
        self.requests.check(user).map_err(|wait| RateLimited {
            reason: "rate",
            message: "too many requests: over limits.http_requests_per_second for this user",
            wait,
        })
    }

    /// Charges one `/v1/publish` event to `user`'s stream.
    pub(crate) fn publish(&self, user: &UserId) -> Result<(), RateLimited> {
        self.publishes.check(user).map_err(|wait| RateLimited {
            reason: "publish_rate",
            message: "too many events published to this user: over limits.publish_per_second",
            wait,
        })
    }

    /// A slot for one more HTTP stream of `user`, held until the stream ends.
    pub(crate) fn open_stream(&self, user: &UserId) -> Result<StreamSlot, ApiError> {
        self.streams.acquire(user)
    }
}

/// A request over a per-user rate: answered 429 `rate_limited` with `Retry-After` (whole
/// seconds, at least 1), counted by `reason`.
#[derive(Debug)]
pub(crate) struct RateLimited {
    reason: &'static str,
    message: &'static str,
    wait: Duration,
}

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        metrics::counter!("agentwire_http_limited_total", "reason" => self.reason).increment(1);
        let secs = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!("{}; retry in {secs} s", self.message),
        )
        .into_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        response
    }
}

/// Open HTTP streams per user.
#[derive(Debug)]
struct StreamSlots {
    max: usize,
    open: DashMap<UserId, usize>,
}

impl StreamSlots {
    fn acquire(self: &Arc<Self>, user: &UserId) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.entry(user.clone()).or_insert(0);
        if *open >= self.max {
            drop(open);
            metrics::counter!("agentwire_http_limited_total", "reason" => "streams").increment(1);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyStreams,
                format!(
                    "you already have {} HTTP streams open, the most allowed \
                     (limits.max_http_streams_per_user); close one first",
                    self.max
                ),
            ));
        }
        *open += 1;
        Ok(StreamSlot {
            slots: Arc::clone(self),
            user: user.clone(),
        })
    }
}

/// One open HTTP stream of a user; the count goes down when it is dropped.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    slots: Arc<StreamSlots>,
    user: UserId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.open.remove_if_mut(&self.user, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

/// An [`AuthenticatedIdentity`] whose request fits the user's HTTP request rate
/// (`limits.http_requests_per_second`): the extractor of the HTTP API's user routes. Over the
/// rate the request is answered 429 `rate_limited` with `Retry-After`, before its handler runs.
/// The identity's expiry ends the streams of `/v1/stream` and `/agui/{agent}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiUser(pub(crate) Identity);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let AuthenticatedIdentity(identity) =
            AuthenticatedIdentity::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        state
            .http_limits()
            .request(&identity.user)
            .map_err(IntoResponse::into_response)?;
        Ok(Self(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_allows_its_burst_then_says_how_long_to_wait() {
        let rate = UserRate::new(1, 3);
        let alice = UserId::new("alice").unwrap();
        let bob = UserId::new("bob").unwrap();
        assert!((0..3).all(|_| rate.check(&alice).is_ok()));
        let wait = rate.check(&alice).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(rate.check(&bob).is_ok(), "each user has their own budget");
    }

    #[test]
    fn stream_slots_are_counted_per_user_and_freed_on_drop() {
        let limits = HttpLimits::new(&LimitsConfig {
            max_http_streams_per_user: 2,
            ..LimitsConfig::default()
        });
        let alice = UserId::new("alice").unwrap();
        let one = limits.open_stream(&alice).unwrap();
        let two = limits.open_stream(&alice).unwrap();
        let refused = limits.open_stream(&alice).unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooManyStreams);
        assert!(limits.open_stream(&UserId::new("bob").unwrap()).is_ok());
        drop(one);
        let three = limits.open_stream(&alice).unwrap();
        drop(two);
        drop(three);
        assert!(limits.streams.open.is_empty(), "no entry is left behind");
    }
}
