//! `StartupError`: which phase failed, in which component, why, and what to do.

use serde::Serialize;

/// The startup phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Load and validate the configuration.
    Config,
    /// Connect the event broker.
    Broker,
    /// Create and configure the bridge.
    Bridge,
    /// Wire the agent registry and executor.
    Agents,
    /// Register the health checks.
    Health,
    /// Prove the critical path with a synthetic run.
    Finalize,
}

impl Phase {
    /// The phase's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Config => "Config",
            Phase::Broker => "Broker",
            Phase::Bridge => "Bridge",
            Phase::Agents => "Agents",
            Phase::Health => "Health",
            Phase::Finalize => "Finalize",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A startup failure. Its `Display` is the one line the binary prints before exiting non-zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("startup failed in phase {phase}: {component}: {cause} (hint: {hint})")]
#[non_exhaustive]
pub struct StartupError {
    /// The phase that failed.
    pub phase: Phase,
    /// The component or setting at fault.
    pub component: String,
    /// What went wrong.
    pub cause: String,
    /// What to do about it.
    pub hint: String,
}

impl StartupError {
    /// A startup error.
    pub fn new(
        phase: Phase,
        component: impl Into<String>,
        cause: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        metrics::counter!("agentwire_startup_failures_total", "phase" => phase.as_str())
            .increment(1);
        Self {
            phase,
            component: component.into(),
            cause: cause.into(),
            hint: hint.into(),
        }
    }
}
