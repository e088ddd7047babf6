//! The error type of the core contracts.

use crate::{ErrorCode, GrammarError};

/// Errors of the core types and contracts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// An id with characters or a length agentwire does not accept.
    #[error("invalid {what} {value:?}: use 1 to 128 characters of A-Z a-z 0-9 _ - . : @ |")]
    InvalidId {
        /// Which kind of id.
        what: &'static str,
        /// The start of the offending value.
        value: String,
    },
    /// The sink's connection is gone; the bridge drops it from the registry.
    #[error("the connection is closed")]
    SinkClosed,
    /// The sink's queue is over its byte cap; the bridge closes it as a slow consumer (4008).
    #[error("the connection's send queue is full ({queued_bytes} bytes queued)")]
    SinkFull {
        /// Bytes queued when the frame was refused.
        queued_bytes: usize,
    },
    /// The event does not fit its run's grammar and was not forwarded.
    #[error("event rejected: {0}")]
    Grammar(#[from] GrammarError),
    /// The stream backend cannot accept events right now (e.g. the broker is unreachable).
    #[error("the event stream is unavailable: {0}; retry once the broker is back")]
    Unavailable(String),
    /// The event is in its stream and was delivered, but the backend could not confirm it as
    /// durable (too few replicas acknowledged it in time); it may be lost if the backend fails
    /// over now.
    #[error("{0}")]
    NotReplicated(String),
    /// The server is shutting down and accepts no new work.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The event's envelope is over the largest event size (`limits.max_event_bytes`); it was not
    /// published.
    #[error(
        "the event is {size} bytes of JSON, over the {max}-byte limit (limits.max_event_bytes); send less text per event"
    )]
    EventTooLarge {
        /// The event's size, its seq counted at 20 digits.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A run could not be started or found; `code` is the wire code to report.
    #[error("{code}: {message}")]
    Refused {
        /// The wire code (`unknown_agent`, `too_many_runs`, `run_not_found`, …).
        code: ErrorCode,
        /// What to tell the user.
        message: String,
    },
}

impl CoreError {
    /// The wire code a client sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::InvalidId { .. } => ErrorCode::InvalidField,
            CoreError::Grammar(_) => ErrorCode::OutOfGrammar,
            CoreError::Unavailable(_) | CoreError::NotReplicated(_) => ErrorCode::Unavailable,
            CoreError::ShuttingDown => ErrorCode::ShuttingDown,
            CoreError::Refused { code, .. } => *code,
            CoreError::EventTooLarge { .. } => ErrorCode::PayloadTooLarge,
            CoreError::SinkClosed | CoreError::SinkFull { .. } => ErrorCode::Internal,
        }
    }
}
