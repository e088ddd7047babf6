//! The factory's error type.

use agentwire_core::{CoreError, ErrorCode};

/// Errors of [`crate::BridgeFactory`] and [`crate::RunEmitter`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// The user already has the most concurrent runs allowed.
    #[error(
        "this user already has {max} runs in progress, the most allowed (limits.max_runs_per_user); wait for one to end or cancel one"
    )]
    TooManyRuns {
        /// The limit.
        max: usize,
    },
    /// No run of that id belongs to the user (also when it is another user's run).
    #[error("no run {run_id} of yours is in progress")]
    RunNotFound {
        /// The id asked for.
        run_id: String,
    },
    /// The user already has a run in progress with this id.
    #[error("run id {run_id} is already in use by one of your runs in progress: use a new run id")]
    RunIdInUse {
        /// The id asked for.
        run_id: String,
    },
    /// The factory accepts no new runs (shutdown).
    #[error("the server is shutting down and starts no new runs")]
    ShuttingDown,
    /// The event was refused by the grammar or the bridge.
    #[error(transparent)]
    Publish(#[from] CoreError),
}

impl FactoryError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            FactoryError::TooManyRuns { .. } => ErrorCode::TooManyRuns,
            FactoryError::RunNotFound { .. } => ErrorCode::RunNotFound,
            FactoryError::RunIdInUse { .. } => ErrorCode::InvalidField,
            FactoryError::ShuttingDown => ErrorCode::ShuttingDown,
            FactoryError::Publish(e) => e.code(),
        }
    }
}

impl From<FactoryError> for CoreError {
    fn from(e: FactoryError) -> Self {
        match e {
            FactoryError::Publish(e) => e,
            FactoryError::ShuttingDown => CoreError::ShuttingDown,
            other => CoreError::Refused {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}
