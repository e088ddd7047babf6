//! agentwire's startup: six phases, each a type, each timed.
//!
//! Use it to assemble agentwire in your own binary: [`Startup`] walks `Config → Broker → Bridge →
//! Agents → Health → Finalize`, each phase consuming the previous phase's product, so a skipped or
//! reordered phase does not compile. `Finalize` proves the critical path with a real synthetic run
//! before anything is served. A failure is a [`StartupError`] naming the phase, the component,
//! the cause and a hint.
//!
//! ```
//! use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
//! use agentwire_startup::{AgentwireConfig, ConfigOverrides, Startup};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), agentwire_startup::StartupError> {
//! let config = AgentwireConfig::load(None, &ConfigOverrides::default())?;
//! let ready = Startup::new(config)?
//!     .connect_broker().await?
//!     .build_bridge()?
//!     .register_agents(InMemoryAgentRegistry::with_builtins(DemoSettings::default())).await?
//!     .register_health_checks(Vec::new())
//!     .finalize().await?;
//! println!("ready in {:.1} ms", ready.report().total_ms);
//! # Ok(()) }
//! ```
//!
//! The Redis broker (`broker = "redis://…"`) is the `redis` cargo feature (default on; the
//! workspace depends on this crate without it and `agentwire-server` turns it on). Without it a
//! Redis URL fails phase `Broker` with an error naming the feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod broker;
mod config;
mod config_error;
mod error;
mod llm;
mod startup;
mod validate;

pub use config::{
    AgentDefinition, AgentsConfig, AgentwireConfig, AuthConfig, AuthMode, ConfigOverrides,
    HealthConfig, HeartbeatConfig, LimitsConfig, MetricsConfig, RedisSettings, ShutdownConfig,
    TOP_LEVEL_KEYS,
};
pub use error::{Phase, StartupError};
pub use startup::{
    AgentsWired, BridgeConfigured, BrokerReady, ConfigLoaded, HealthRegistered, PhaseTiming, Ready,
    Startup, StartupReport,
};
