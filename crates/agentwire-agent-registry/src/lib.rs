//! Agents, tools, the registry they live in, and the executor that runs them.
//!
//! Implement [`Agent`] and [`Tool`] for your own agents; implement [`AgentRegistry`] when they
//! come from somewhere else than code (a database, a file). [`RunExecutor`] drives a run on a
//! tokio task: `agent_started`, the agent's events — tool calls made through
//! [`RunContext::call_tool`] emit `tool_executing`/`tool_completed` by themselves — and exactly
//! one terminal event.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use agentwire_agent_registry::{AgentRegistry, DemoSettings, InMemoryAgentRegistry, RunExecutor};
//! use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, ConnectionQueue};
//! use agentwire_bridge_factory::{BridgeFactory, RunLimits};
//! use agentwire_core::{Configurable, UserContext, UserId};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default())?;
//! let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
//! let factory = BridgeFactory::new(Arc::new(bridge.clone()), RunLimits::default());
//! // The executor hands the registry its manager (`set_websocket_manager`) and keeps the factory.
//! let executor = RunExecutor::new(registry, factory, Duration::from_secs(30));
//!
//! let user = UserId::new("ada")?;
//! let inbox = Arc::new(ConnectionQueue::new(1 << 20));
//! bridge.attach(&user, inbox.clone(), None).await?;
//! executor.start(UserContext::new_run(user, None, None), "echo", "hello".into())?;
//!
//! // started, thinking, tool_executing, tool_completed, completed
//! let mut frames = Vec::new();
//! while frames.len() < 5 { inbox.next_batch(&mut frames, 16).await; }
//! assert!(frames[4].as_str().contains("agent_completed"));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod builtin;
mod error;
mod executor;
mod registry;
mod run_metrics;
mod shared;

pub use agent::{Agent, RunContext, Tool, ToolCall};
pub use async_trait::async_trait;
pub use builtin::{
    CalculatorTool, ClockTool, DemoAgent, DemoSettings, EchoAgent, EchoTool, evaluate,
    find_expression,
};
pub use error::AgentError;
pub use executor::{PreparedRun, RunExecutor, RunHandle};
pub use registry::{AgentInfo, AgentRegistry, InMemoryAgentRegistry, ToolInfo};
