//! The native WebSocket protocol v1 (docs/protocol.md): client frames, control frames, codes.

use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ConnectionId, RunId, ThreadId, UserId};

/// The subprotocol the server selects.
pub const SUBPROTOCOL: &str = "agentwire.v1";

/// One serialized server frame, shared by every connection it goes to.
///
/// `seq` is the stream position for event frames and 0 for control frames (which have none),
/// so a connection can drop an event it already delivered without parsing the JSON.
///
/// A frame also carries two pieces of metadata for metrics, neither of which is sent: the event
/// type (read from the envelope, see [`Frame::event_type`]) and, for a frame on its way to live
/// connections, the instant the broker accepted it ([`Frame::accepted_at`]). Equality compares
/// only `seq` and the bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    seq: u64,
    text: Bytes,
    /// The index of the event type in [`EVENT_TYPES`](crate::EVENT_TYPES).
    event_type: Option<u8>,
    accepted_at: Option<Instant>,
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq && self.text == other.text
    }
}

impl Eq for Frame {}

impl Frame {
    /// An event frame at `seq`. `json` must be the UTF-8 JSON of that event: a `Vec<u8>`, or
    /// `Bytes` split off a chunk many frames share.
    pub fn event(seq: u64, json: impl Into<Bytes>) -> Self {
        let text = json.into();
        Self {
            seq,
            event_type: crate::event::envelope_type(&text),
            text,
            accepted_at: None,
        }
    }

    /// [`Self::event`] for a producer that knows the event's kind: the frame takes its type from
    /// `kind` instead of reading it back from the JSON. `json` must be the envelope of an event
    /// of that kind (metrics count the frame under `kind`'s type).
    pub fn event_of_kind(seq: u64, json: impl Into<Bytes>, kind: &crate::EventKind) -> Self {
        Self {
            seq,
            text: json.into(),
            event_type: Some(kind.type_index() as u8),
            accepted_at: None,
        }
    }

    /// A control frame (no `seq`) from any serializable value.
    pub fn control(value: &impl Serialize) -> Self {
        Self::control_json(
            serde_json::to_vec(value).expect("serializing a control frame cannot fail"),
        )
    }

    /// A control frame from JSON agentwire wrote itself.
    fn control_json(json: Vec<u8>) -> Self {
        Self {
            seq: 0,
            text: Bytes::from(json),
            event_type: None,
            accepted_at: None,
        }
    }

    /// This frame marked as accepted at `at`: a broker sets it on the frame it hands to live
    /// connections, and the transport measures delivery latency (accepted → written to the
    /// socket) from it. Frames read back from history have none.
    pub fn accepted_at(mut self, at: Instant) -> Self {
        self.accepted_at = Some(at);
        self
    }

    /// When the broker accepted this frame, for a live frame; `None` for control frames and
    /// frames replayed from history.
    pub fn accepted(&self) -> Option<Instant> {
        self.accepted_at
    }

    /// The event `type` of an event frame (`"agent_started"`, …), `None` for control frames.
    pub fn event_type(&self) -> Option<&'static str> {
        self.event_type
            .map(|i| crate::event::EVENT_TYPES[usize::from(i)])
    }

    /// The index of [`Self::event_type`] in [`EVENT_TYPES`](crate::EVENT_TYPES): for a transport
    /// that counts frames by type without comparing strings.
    pub fn event_type_index(&self) -> Option<usize> {
        self.event_type.map(usize::from)
    }

    /// The stream position, or 0 for control frames.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The JSON text as bytes (always valid UTF-8).
    pub fn bytes(&self) -> &Bytes {
        &self.text
    }

    /// The JSON text as bytes, without copying; for a transport that hands it to the socket.
    pub fn into_bytes(self) -> Bytes {
        self.text
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        // Built only from serde_json output, which is UTF-8.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// Bytes this frame holds in a queue.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether the frame is empty (never, for frames built by agentwire).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// A WebSocket close code with agentwire's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// Normal closure.
    pub const NORMAL: Self = Self(1000);
    /// Server shutting down; resume elsewhere.
    pub const GOING_AWAY: Self = Self(1001);
    /// Policy violation (e.g. too many connections).
    pub const POLICY: Self = Self(1008);
    /// A frame over the size limit.
    pub const TOO_BIG: Self = Self(1009);
    /// Unexpected server condition.
    pub const INTERNAL: Self = Self(1011);
    /// 1012 service restart: the connection must be opened again (the stream was reset under
    /// it, or an operator dropped it); the client reconnects with its last seq and epoch.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// The credentials the connection was opened (or last refreshed) with expired; reconnect
    /// with a fresh token, or send a `refresh` frame before the expiry to keep the connection.
    pub const TOKEN_EXPIRED: Self = Self(4001);
    /// The client read too slowly; resume with the last seq.
    pub const SLOW_CONSUMER: Self = Self(4008);
    /// The client kept sending over its rate limit.
    pub const RATE_LIMITED: Self = Self(4029);
}

/// The error codes of the wire protocol and the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    BadJson,
    /// The `type` is not one the server knows.
    UnknownType,
    /// A field is missing, of the wrong type, or out of range.
    InvalidField,
    /// No agent of that name.
    UnknownAgent,
    /// No run of that id for this user (also for another user's run).
    RunNotFound,
    /// Too many frames per second.
    RateLimited,
    /// Too many concurrent runs for this user.
    TooManyRuns,
    /// Too many concurrent HTTP streams (SSE, live reads) for this user.
    TooManyStreams,
    /// An event that does not fit its run's grammar.
    OutOfGrammar,
    /// Missing or invalid credentials.
    Unauthorized,
    /// A body, or an event (`limits.max_event_bytes`), over the configured limit.
    PayloadTooLarge,
    /// No such route or resource.
    NotFound,
    /// The server is shutting down.
    ShuttingDown,
    /// The server could not serve the request now (e.g. the broker is unreachable).
    Unavailable,
    /// A bug or an unexpected condition on the server.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::UnknownAgent => "unknown_agent",
            ErrorCode::RunNotFound => "run_not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyRuns => "too_many_runs",
            ErrorCode::TooManyStreams => "too_many_streams",
            ErrorCode::OutOfGrammar => "out_of_grammar",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a client frame was refused; sent back as an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    /// The wire code.
    pub code: ErrorCode,
    /// What was wrong, for a person.
    pub message: String,
    /// The request id, when the frame had a readable one.
    pub id: Option<String>,
}

impl FrameError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>, id: Option<String>) -> Self {
        Self {
            code,
            message: message.into(),
            id,
        }
    }

    /// The `error` control frame for this error.
    pub fn to_frame(&self) -> Frame {
        Frame::control(&ControlFrame::Error {
            code: self.code,
            message: &self.message,
            id: self.id.as_deref(),
        })
    }
}

/// `connection_established` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionEstablished {
    /// The server's id for this connection.
    pub connection_id: String,
    /// The authenticated user.
    pub user_id: UserId,
    /// The user's stream epoch.
    pub epoch: String,
    /// The head of the user's stream when the connection was made.
    pub last_seq: u64,
    /// How often the server pings.
    pub heartbeat_ms: u64,
    /// The resume that happened on connect, if any.
    pub resumed: Option<Resumed>,
    /// Milliseconds until the server closes the connection because its credentials expire
    /// (4001), unless a `refresh` frame moves the expiry; absent when they do not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
}

impl ConnectionEstablished {
    /// Builds the data for a connection.
    pub fn new(
        connection_id: ConnectionId,
        user_id: UserId,
        epoch: String,
        last_seq: u64,
        heartbeat_ms: u64,
    ) -> Self {
        Self {
            connection_id: connection_id.to_string(),
            user_id,
            epoch,
            last_seq,
            heartbeat_ms,
            resumed: None,
            expires_in_ms: None,
        }
    }
}

/// The outcome of a resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    /// The first replayed seq (`last_seq + 1`).
    pub from_seq: u64,
    /// How many events were replayed.
    pub replayed: u64,
}

/// `replay_gap` data: events asked for that history no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayGap {
    /// First missing seq.
    pub from_seq: u64,
    /// Last missing seq.
    pub to_seq: u64,
}

/// Server frames without a `seq`. Their fields sit at the top level (docs/protocol.md), except
/// `connection_established` and `replay_gap`, which carry `data` like events do.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ControlFrame<'a> {
    /// First frame on every connection.
    ConnectionEstablished {
        /// The connection's details.
        data: &'a ConnectionEstablished,
    },
    /// A request was accepted.
    Ack {
        /// The client's request id.
        id: &'a str,
        /// The run started (for `user_message`) or cancelled.
        #[serde(skip_serializing_if = "Option::is_none")]
        run_id: Option<&'a RunId>,
        /// The run's thread (for `user_message`).
        #[serde(skip_serializing_if = "Option::is_none")]
        thread_id: Option<&'a ThreadId>,
    },
    /// A `refresh` was accepted: the connection now expires with the new token.
    #[serde(rename = "ack")]
    Refreshed {
        /// The client's request id.
        id: &'a str,
        /// Milliseconds until the server closes the connection unless refreshed again; absent
        /// when the new credentials do not expire.
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_in_ms: Option<u64>,
    },
    /// Answer to `ping`.
    Pong {
        /// The client's request id.
        id: &'a str,
    },
    /// A request was refused.
    Error {
        /// The wire code.
        code: ErrorCode,
        /// What was wrong.
        message: &'a str,
        /// The request id, if the request had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    /// History no longer holds what was asked for.
    ReplayGap {
        /// The missing range.
        data: ReplayGap,
    },
}

impl ControlFrame<'_> {
    /// Serializes the frame once.
    pub fn to_frame(&self) -> Frame {
        use crate::envelope::{write_id, write_str};
        // `ack` and `pong` answer every request: written directly, like event envelopes
        // (byte-identical to serde's output; tested below).
        let json = match self {
            ControlFrame::Ack {
                id,
                run_id,
                thread_id,
            } => {
                // Sized for the whole frame: keys and quotes are 50 bytes, and ids need no
                // escaping (a request id that does grows the vector once).
                let ids = run_id.map_or(0, |r| r.as_str().len())
                    + thread_id.map_or(0, |t| t.as_str().len());
                let mut out = Vec::with_capacity(56 + id.len() + ids);
                out.extend_from_slice(b"{\"type\":\"ack\",\"id\":");
                write_str(&mut out, id);
                if let Some(run_id) = run_id {
                    out.extend_from_slice(b",\"run_id\":");
                    write_id(&mut out, run_id.as_str());
                }
                if let Some(thread_id) = thread_id {
                    out.extend_from_slice(b",\"thread_id\":");
                    write_id(&mut out, thread_id.as_str());
                }
                out.push(b'}');
                out
            }
            ControlFrame::Pong { id } => {
                let mut out = Vec::with_capacity(32);
                out.extend_from_slice(b"{\"type\":\"pong\",\"id\":");
                write_str(&mut out, id);
                out.push(b'}');
                out
            }
            _ => return Frame::control(self),
        };
        Frame::control_json(json)
    }
}

#[cfg(test)]
mod tests;
