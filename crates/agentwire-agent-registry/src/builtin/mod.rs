//! The built-in agents (`demo`, `echo`) and tools (`calculator`, `clock`, `echo`).

mod calculator;
mod clock;
mod demo;
mod echo;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use calculator::{CalculatorTool, evaluate, find_expression};
pub use clock::ClockTool;
pub use demo::DemoAgent;
pub use echo::{EchoAgent, EchoTool};

use crate::InMemoryAgentRegistry;

/// Pacing of the `demo` agent, so a person can watch it work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Pause after each thinking step (default 300ms).
    #[serde(with = "humantime_serde")]
    pub step_delay: Duration,
    /// Pause between streamed answer pieces (default 40ms).
    #[serde(with = "humantime_serde")]
    pub token_delay: Duration,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            step_delay: Duration::from_millis(300),
            token_delay: Duration::from_millis(40),
        }
    }
}

impl DemoSettings {
    /// No pauses (for tests).
    pub fn instant() -> Self {
        Self {
            step_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
        }
    }
}

pub(crate) fn register(r: &mut InMemoryAgentRegistry, demo: DemoSettings) {
    r.register_agent(DemoAgent::new(demo))
        .register_agent(EchoAgent)
        .register_tool(CalculatorTool)
        .register_tool(ClockTool)
        .register_tool(EchoTool);
}

pub(crate) async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
