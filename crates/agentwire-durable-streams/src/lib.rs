//! The [Durable Streams](https://github.com/durable-streams/durable-streams) protocol — ordered,
//! offset-addressable, resumable HTTP streams — as an axum [`Router`](axum::Router), over a
//! [`StreamStore`] you choose. Use it to serve any Durable Streams client (TypeScript, Python,
//! Go, …, TanStack AI, the AI SDK transport) from agentwire, with agentwire's authentication
//! and per-user bounds in front.
//!
//! The agentwire server mounts it at `/ds` (`docs/durable-streams.md`); embed it yourself like
//! this:
//!
//! ```
//! use std::sync::Arc;
//! use agentwire_durable_streams::{DurableStreams, DurableStreamsConfig, MemoryStore, no_auth};
//!
//! let config = DurableStreamsConfig::default();
//! let store = Arc::new(MemoryStore::new(config.owner_limits()));
//! // `no_auth` is for a loopback test server; pass your own authentication otherwise.
//! let app: axum::Router = axum::Router::new()
//!     .nest("/ds", DurableStreams::new(store, no_auth(), config).router());
//! # let _ = app;
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
pub mod create;
mod error;
mod http;
mod memory;
pub mod model;
pub mod offset;
#[cfg(feature = "redis")]
mod redis_store;
mod store;
pub mod stream;
pub mod subscription;

pub use config::{DurableStreamsConfig, StoreKind};
pub use error::DsError;
pub use http::{Authenticate, DurableStreams, no_auth};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use store::{OwnerLimits, StreamStore};
pub use subscription::{MemorySubscriptions, SubscriptionStore};
