//! `AgentWebSocketBridge`: delivers each user's run events to that user's connections, in order,
//! without loss.
//!
//! Use this crate alone when you bring your own transport: implement
//! [`agentwire_core::WebSocketSink`] for your connection (or use [`ConnectionQueue`], the bounded
//! queue agentwire's own server uses), [`attach`](AgentWebSocketBridge::attach) it for a user,
//! and [`publish`](AgentWebSocketBridge::publish_event) events. The bridge assigns per-user `seq`s,
//! keeps a bounded history for resume, and closes slow consumers instead of growing memory.
//!
//! It records its `agentwire_*` metrics (events accepted, replays, `replay_gap`s, slow-consumer
//! closes, and every [`Broker`] operation with its errors and duration) through the `metrics`
//! facade: install any `metrics` recorder to collect them. Without a recorder they cost next to
//! nothing. The bytes queued for the bridge's connections are an integer the bridge owns,
//! [`BridgeStats::queued_bytes`], which a server reports as a gauge when it is scraped.
//!
//! ```
//! use std::sync::Arc;
//! use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, ConnectionQueue, ResumeFrom};
//! use agentwire_core::{AgentStarted, Configurable, EventKind, RunEvent, RunId, ThreadId, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default())?;
//! let bob = UserId::new("bob")?;
//! let started = RunEvent::now(RunId::generate(), ThreadId::generate(), "demo".into(),
//!     EventKind::AgentStarted(AgentStarted { input: None }));
//! bridge.publish_event(&bob, &started).await?; // seq 1, kept in history while bob is offline
//!
//! // bob connects and resumes from seq 0: the missed event is replayed, then live events follow.
//! let queue = Arc::new(ConnectionQueue::new(1 << 20));
//! let attached = bridge.attach(&bob, queue.clone(), Some(ResumeFrom::default())).await?;
//! assert_eq!(attached.resumed.unwrap().replayed, 1);
//!
//! let mut frames = Vec::new();
//! queue.next_batch(&mut frames, 64).await;
//! assert_eq!(frames[0].seq(), 1);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod arena;
mod bridge;
mod broker;
mod config;
mod error;
mod history;
mod memory;
mod metered;
mod queue;
mod replay;
mod stream;
mod telemetry;

pub use bridge::{AgentWebSocketBridge, Attachment, BridgeStats, HistoryPage, UnconfiguredBridge};
pub use broker::{Broker, LiveSink, ReadLimit, StreamSlice};
pub use config::{BridgeConfig, DEFAULT_MAX_EVENT_BYTES, HistoryConfig};
pub use error::BridgeError;
pub use history::{HistoryBuffer, Replay};
pub use memory::{MemoryBroker, NO_STREAM_EPOCH};
pub use queue::{Batch, ConnectionQueue, QueuedBytes};
pub use stream::ResumeFrom;
pub use telemetry::{EVENTS_ACCEPTED, EVENTS_DELIVERED, EventCounters};
