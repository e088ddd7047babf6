//! `BridgeFactory` and `RunEmitter`: how agents put events into exactly one user's stream.
//!
//! Use this crate when you write an executor or a transport that starts runs: ask the factory for
//! a [`RunEmitter`] with the run's [`UserContext`](agentwire_core::UserContext), publish the run's
//! events through it, and cancel runs by owner. The emitter enforces the run grammar and ends a
//! dropped run with `agent_error {code:"agent_dropped"}`.
//!
//! ```
//! use std::sync::Arc;
//! use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
//! use agentwire_bridge_factory::{BridgeFactory, RunLimits};
//! use agentwire_core::{Configurable, UserContext, UserId};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default())?;
//! let factory = BridgeFactory::new(Arc::new(bridge), RunLimits::default());
//! let run = factory.begin_run(UserContext::new_run(UserId::new("ada")?, None, None), "demo")?;
//!
//! run.started(None).await?;
//! run.tool_executing("c_1", "calculator", json!({"expression": "2+2"})).await?;
//! // Out of grammar: the run cannot complete while c_1 is open.
//! assert!(run.completed(json!(4)).await.is_err());
//! run.tool_completed("c_1", "calculator", Ok(json!(4)), 1).await?;
//! run.completed(json!(4)).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod emitter;
mod error;
mod external;
mod factory;
mod publish;

pub use emitter::{Emitted, RunEmitter};
pub use error::FactoryError;
pub use external::{ExternalError, ExternalLimits, ExternalRuns};
pub use factory::{BridgeFactory, DEFAULT_MAX_EVENT_BYTES, RunLimits};

#[cfg(test)]
mod tests;
