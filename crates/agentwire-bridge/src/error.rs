//! The bridge's error type.

use agentwire_core::{CoreError, ErrorCode};

/// Errors of [`crate::AgentWebSocketBridge`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// A setting is out of range.
    #[error("invalid bridge setting {key}: {reason}")]
    InvalidConfig {
        /// The setting's config key.
        key: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The user already holds the most connections allowed.
    #[error(
        "this user already has {max} live connections, the most allowed (limits.max_connections_per_user)"
    )]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// The bridge holds the most streams allowed.
    #[error("the server already serves {max} users, the most allowed (limits.max_users)")]
    TooManyUsers {
        /// The limit.
        max: usize,
    },
    /// A resume named a seq the stream has not reached.
    #[error(
        "last_seq {last_seq} is ahead of the stream head {head}; resume with a seq you received"
    )]
    ResumeAhead {
        /// What the client sent.
        last_seq: u64,
        /// The stream's last seq.
        head: u64,
    },
    /// A `resume` frame on a connection that already delivered events, asking for earlier ones.
    #[error(
        "this connection already delivered events up to seq {delivered}; reconnect with ?last_seq={last_seq} to replay earlier ones in order"
    )]
    ResumeAfterDelivery {
        /// What the client asked for.
        last_seq: u64,
        /// What the connection already delivered.
        delivered: u64,
    },
    /// The connection is not attached (it was closed or dropped).
    #[error("the connection is not attached to the bridge")]
    NotAttached,
    /// The broker cannot serve the request now.
    #[error("the {broker} broker is unavailable: {cause}")]
    BrokerUnavailable {
        /// The broker's name.
        broker: &'static str,
        /// What failed.
        cause: String,
    },
    /// The event is stored and was delivered, but fewer replicas than the broker waits for
    /// acknowledged it in time: it may be lost if the primary fails now. Unlike
    /// `BrokerUnavailable`, the stream holds it (and the run's events after it may follow).
    #[error("the {broker} broker stored the event but did not confirm it: {cause}")]
    NotReplicated {
        /// The broker's name.
        broker: &'static str,
        /// How many replicas answered, of how many, within what time.
        cause: String,
    },
    /// The event's envelope is over the largest event size (`limits.max_event_bytes`); it was
    /// not stored and took no seq.
    #[error(
        "the event is {size} bytes of JSON, over the {max}-byte limit (limits.max_event_bytes); send less text per event"
    )]
    EventTooLarge {
        /// The envelope's size, its seq counted at the largest ([`RunEvent::size_at_any_seq`](agentwire_core::RunEvent::size_at_any_seq)).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bridge is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl BridgeError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            BridgeError::ResumeAhead { .. } | BridgeError::ResumeAfterDelivery { .. } => {
                ErrorCode::InvalidField
            }
            BridgeError::TooManyConnections { .. } | BridgeError::TooManyUsers { .. } => {
                ErrorCode::Unavailable
            }
            BridgeError::ShuttingDown => ErrorCode::ShuttingDown,
            BridgeError::BrokerUnavailable { .. } | BridgeError::NotReplicated { .. } => {
                ErrorCode::Unavailable
            }
            BridgeError::EventTooLarge { .. } => ErrorCode::PayloadTooLarge,
            BridgeError::InvalidConfig { .. } | BridgeError::NotAttached => ErrorCode::Internal,
        }
    }
}

impl From<BridgeError> for CoreError {
    fn from(e: BridgeError) -> Self {
        match &e {
            BridgeError::ShuttingDown => CoreError::ShuttingDown,
            BridgeError::BrokerUnavailable { .. } => CoreError::Unavailable(e.to_string()),
            BridgeError::NotReplicated { .. } => CoreError::NotReplicated(e.to_string()),
            &BridgeError::EventTooLarge { size, max } => CoreError::EventTooLarge { size, max },
            _ => CoreError::Refused {
                code: e.code(),
                message: e.to_string(),
            },
        }
    }
}
