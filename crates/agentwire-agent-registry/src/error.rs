//! The registry's error type.

use agentwire_bridge_factory::FactoryError;
use agentwire_core::{CoreError, ErrorCode};

/// Errors of agents, tools, the registry and the executor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The agent failed; the run ends with `agent_error {code:"agent_failed"}`.
    #[error("{0}")]
    Failed(String),
    /// The agent failed in a way it names itself: the run ends with `agent_error {code}` (e.g.
    /// `llm_auth`, `max_steps`) instead of `agent_failed`.
    #[error("{message}")]
    Coded {
        /// The `agent_error.code`: lower snake case, stable, documented by the agent.
        code: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A tool failed; its call already completed with `ok:false`.
    #[error("tool {tool} failed: {message}")]
    Tool {
        /// The tool.
        tool: String,
        /// What went wrong.
        message: String,
    },
    /// The agent called a tool the registry does not have.
    #[error("no tool named {0:?} is registered")]
    UnknownTool(String),
    /// No agent of that name.
    #[error("no agent named {name:?}; available: {available}")]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        available: String,
    },
    /// The run could not be started or an event could not be published.
    #[error(transparent)]
    Run(#[from] FactoryError),
}

impl AgentError {
    /// An agent failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        AgentError::Failed(message.into())
    }

    /// The `agent_error.code` a run that ends with this error reports: the agent's own code for
    /// [`AgentError::Coded`], `payload_too_large` for an event over `limits.max_event_bytes`,
    /// `agent_failed` otherwise.
    pub fn run_error_code(&self) -> &'static str {
        match self {
            AgentError::Coded { code, .. } => code,
            AgentError::Run(e) if e.code() == ErrorCode::PayloadTooLarge => {
                ErrorCode::PayloadTooLarge.as_str()
            }
            _ => "agent_failed",
        }
    }

    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AgentError::UnknownAgent { .. } => ErrorCode::UnknownAgent,
            AgentError::Run(e) => e.code(),
            _ => ErrorCode::Internal,
        }
    }
}

impl From<AgentError> for CoreError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Run(f) => f.into(),
            other => CoreError::Refused {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}
