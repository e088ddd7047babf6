//! The contracts of agentwire: the event model, the wire types, ids, and the traits the other
//! crates implement and talk through.
//!
//! Depend on this crate when you implement a component — a [`WebSocketSink`] for your own
//! transport, an [`EventSink`] for your own stream backend — or when you read agentwire's wire
//! format in a client. It depends on serde and little else.
//!
//! ```
//! use agentwire_core::{
//!     AgentStarted, EventKind, RunEvent, RunGrammar, RunId, StreamEvent, ThreadId,
//! };
//!
//! let event = RunEvent::now(
//!     RunId::generate(),
//!     ThreadId::new("t_1")?,
//!     "demo".into(),
//!     EventKind::AgentStarted(AgentStarted { input: Some("2+2?".into()) }),
//! );
//!
//! // Every producer goes through the grammar: a run starts with agent_started.
//! let mut grammar = RunGrammar::new();
//! grammar.check(&event.kind)?;
//!
//! // The bridge serializes an accepted event once, with its seq; clients read it back.
//! let json = event.to_envelope_json(1);
//! let back: StreamEvent = serde_json::from_slice(&json)?;
//! assert_eq!((back.seq, back.event.kind.type_name()), (1, "agent_started"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod context;
mod contracts;
mod envelope;
mod error;
mod event;
mod grammar;
mod ids;
mod now_or_later;
mod wire;

pub use async_trait::async_trait;
pub use client::{ClientFrame, DEFAULT_AGENT, UserMessage};
pub use context::UserContext;
pub use contracts::{Configurable, EventSink, RunLauncher, WebSocketSink, WebSocketSinkExt};
pub use error::CoreError;
pub use event::{
    AgentCompleted, AgentErrorData, AgentMessageDelta, AgentStarted, AgentThinking,
    DEFAULT_MAX_EVENT_BYTES, EVENT_TYPES, EventKind, MIN_EVENT_BYTES, RunEvent, StreamEvent,
    TokenUsage, ToolCompleted, ToolExecuting, unix_millis,
};
pub use grammar::{Accepted, Committed, GrammarError, RunGrammar};
pub use ids::{ConnectionId, MAX_ID_LEN, RunId, ThreadId, UserId};
pub use now_or_later::{BoxFuture, NowOrLater};
pub use wire::{
    CloseCode, ConnectionEstablished, ControlFrame, ErrorCode, Frame, FrameError, ReplayGap,
    Resumed, SUBPROTOCOL,
};
