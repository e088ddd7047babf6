//! Settings of the bridge.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much of each user's stream is kept for replay (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Events kept per user (default 1000).
    pub max_events: usize,
    /// Bytes of events (their JSON) kept per user (default 8 MiB); the newest event is kept
    /// even alone over it.
    pub max_bytes: usize,
    /// Longest an event is kept (default 10 minutes); also how long an idle stream — no
    /// connection, no event — lives before it is dropped whole.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_events: 1000,
            max_bytes: 8 * 1024 * 1024,
            ttl: Duration::from_secs(600),
        }
    }
}

/// Everything [`configure`](agentwire_core::Configurable::configure) takes to turn an
/// [`UnconfiguredBridge`](crate::UnconfiguredBridge) into a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// History bounds.
    pub history: HistoryConfig,
    /// Live connections one user may hold at once (default 16).
    pub max_connections_per_user: usize,
    /// Streams (users with history or connections) held at once (default 100,000).
    pub max_users: usize,
    /// The largest event, in bytes of its JSON envelope (`limits.max_event_bytes`, default
    /// [`DEFAULT_MAX_EVENT_BYTES`]): a larger one is refused with `payload_too_large` and takes
    /// no seq, whichever way it came in.
    pub max_event_bytes: usize,
}

pub use agentwire_core::DEFAULT_MAX_EVENT_BYTES;

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            history: HistoryConfig::default(),
            max_connections_per_user: 16,
            max_users: 100_000,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}
