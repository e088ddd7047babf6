//! `[durable_streams]`: the settings of the Durable Streams surface.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::OwnerLimits;

/// Which store holds the streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// In this process; lost on restart (the embedded default).
    #[default]
    Memory,
    /// In the Redis that `broker` names, shared by every node.
    Redis,
}

/// `[durable_streams]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurableStreamsConfig {
    /// Serve the protocol (under `mount`).
    pub enabled: bool,
    /// The path the surface is mounted at: a stream's URL is `<mount>/<stream path>`, and the
    /// reserved control prefix is `<mount>/__ds/`.
    pub mount: String,
    /// Where streams live.
    pub store: StoreKind,
    /// Prefix of the Redis keys (and the notification channel) of the `redis` store.
    pub redis_prefix: String,
    /// Serve without authentication, every request as one anonymous owner. For running the
    /// conformance suite against a loopback server only: refused unless the server listens on
    /// a loopback address.
    pub insecure_no_auth: bool,
    /// How long a long-poll waits for data before answering 204.
    #[serde(with = "humantime_serde")]
    pub long_poll_timeout: Duration,
    /// How long an SSE response lives before the server closes it (the client reconnects at
    /// its offset; PROTOCOL.md §10.2 suggests about 60 s).
    #[serde(with = "humantime_serde")]
    pub sse_lifetime: Duration,
    /// Largest payload one read returns (more is paged by `Stream-Next-Offset`).
    pub max_read_bytes: usize,
    /// Largest append or initial body (413 past it).
    pub max_append_bytes: usize,
    /// Streams a user may hold at once (429 past it).
    pub max_streams_per_user: u64,
    /// Payload bytes a user may hold across their streams (429 past it).
    pub max_bytes_per_user: u64,
    /// Sustained requests per second per user, of every kind: reads (live or not), `HEAD`,
    /// appends, deletes, subscription management and claims; and per peer address on the
    /// wake-token routes (`callback`, `ack`, `release`). 429 past it.
    pub requests_per_second: u32,
    /// Requests a user may make in a burst above the sustained rate.
    pub request_burst: u32,
    /// Sustained appends per second per user (429 past it); appends count as requests too.
    pub appends_per_second: u32,
    /// Appends a user may make in a burst above the sustained rate.
    pub append_burst: u32,
    /// Subscriptions (PROTOCOL.md §6) a user may hold at once (429 past it).
    pub max_subscriptions_per_user: u64,
    /// Accept `http://localhost` and `http://127.0.0.x` webhook URLs (the development exception
    /// of PROTOCOL.md §6.2). Refused unless the server listens on a loopback address.
    pub webhook_dev_loopback: bool,
}

impl Default for DurableStreamsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mount: "/ds".into(),
            store: StoreKind::Memory,
            redis_prefix: "aw:ds".into(),
            insecure_no_auth: false,
            long_poll_timeout: Duration::from_secs(15),
            sse_lifetime: Duration::from_secs(60),
            max_read_bytes: 1 << 20,
            max_append_bytes: 4 << 20,
            max_streams_per_user: 10_000,
            max_bytes_per_user: 1 << 30,
            requests_per_second: 1_000,
            request_burst: 5_000,
            appends_per_second: 1_000,
            append_burst: 5_000,
            max_subscriptions_per_user: 100,
            webhook_dev_loopback: false,
        }
    }
}

impl DurableStreamsConfig {
    /// Checks the settings against the address the server listens on.
    ///
    /// # Errors
    /// The setting at fault and why: `insecure_no_auth` off loopback, the `redis` store without
    /// a Redis `broker`, or a zero bound.
    pub fn validate(&self, listen: SocketAddr, broker: &str) -> Result<(), (&'static str, String)> {
        if self.enabled && self.store == StoreKind::Redis && !broker.starts_with("redis") {
            return Err((
                "durable_streams.store",
                format!("the redis store uses the broker's Redis, but broker is {broker:?}"),
            ));
        }
        if self.enabled && self.store == StoreKind::Redis && broker.starts_with("redis+cluster://")
        {
            return Err((
                "durable_streams.store",
                "the redis store needs one Redis server; it does not speak Redis Cluster yet"
                    .into(),
            ));
        }
        if self.insecure_no_auth && !listen.ip().is_loopback() {
            return Err((
                "durable_streams.insecure_no_auth",
                format!(
                    "unauthenticated Durable Streams would be reachable on {listen}; it is for a loopback conformance server only"
                ),
            ));
        }
        if self.webhook_dev_loopback && !listen.ip().is_loopback() {
            return Err((
                "durable_streams.webhook_dev_loopback",
                format!(
                    "loopback http webhooks are a development exception; the server listens on {listen}"
                ),
            ));
        }
        if let Err(why) = check_mount(&self.mount) {
            return Err(("durable_streams.mount", why));
        }
        if self.max_read_bytes == 0
            || self.max_append_bytes == 0
            || self.appends_per_second == 0
            || self.requests_per_second == 0
        {
            return Err((
                "durable_streams",
                "max_read_bytes, max_append_bytes, appends_per_second and requests_per_second must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The per-user bounds a store enforces.
    pub fn owner_limits(&self) -> OwnerLimits {
        OwnerLimits {
            max_streams: self.max_streams_per_user,
            max_bytes: self.max_bytes_per_user,
        }
    }
}

/// First path segments the agentwire server routes itself.
const TAKEN: [&str; 9] = [
    "v1",
    "ws",
    "health",
    "metrics",
    "debug",
    "agui",
    "",
    "agentwire.js",
    "demo.js",
];

/// A mount is `/` and one or more non-empty segments of `A-Z a-z 0-9 . _ -`, not under a path
/// the server uses itself.
fn check_mount(mount: &str) -> Result<(), String> {
    let rest = mount
        .strip_prefix('/')
        .ok_or_else(|| format!("{mount:?} must start with /"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    let valid = |s: &&str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if !segments.iter().all(valid) {
        return Err(format!(
            "{mount:?} must be /-separated non-empty segments of A-Z a-z 0-9 . _ -"
        ));
    }
    if TAKEN.contains(&segments[0]) {
        return Err(format!("{mount:?} overlaps a route of the server"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts() {
        assert!(check_mount("/ds").is_ok());
        assert!(check_mount("/ds/v1/stream").is_ok());
        for bad in ["ds", "/", "/ds/", "/v1/stream", "/health", "/a//b", "/a b"] {
            assert!(check_mount(bad).is_err(), "{bad}");
        }
    }
}
