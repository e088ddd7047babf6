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
