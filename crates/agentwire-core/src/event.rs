//! The event model (docs/protocol.md): what a run emits, and how an accepted event is framed on
//! the wire.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{RunId, ThreadId};

/// The default largest event (`limits.max_event_bytes`): 256 KiB of JSON envelope.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;

/// The smallest allowed largest event: the events agentwire writes itself to end a run
/// (`agent_error` with its message cut to 4 KiB, escaped at most 6×) always fit.
pub const MIN_EVENT_BYTES: usize = 32 * 1024;

/// One event of a run, before the bridge gives it a `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The run the event belongs to.
    pub run_id: RunId,
    /// The run's thread.
    pub thread_id: ThreadId,
    /// The agent's name.
    pub agent: Arc<str>,
    /// Milliseconds since the Unix epoch when the event was made.
    pub ts: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl RunEvent {
    /// An event stamped with the current time.
    pub fn now(run_id: RunId, thread_id: ThreadId, agent: Arc<str>, kind: EventKind) -> Self {
        Self {
            run_id,
            thread_id,
            agent,
            ts: unix_millis(),
            kind,
        }
    }

    /// Serializes the event as the wire envelope with `seq` (docs/protocol.md): one JSON object with
    /// `type`, `seq`, `run_id`, `thread_id`, `agent`, `ts` and `data`.
    pub fn to_envelope_json(&self, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_envelope(seq, &mut out);
        out
    }

    /// Appends [`Self::to_envelope_json`]`(seq)` to `out`: a broker that keeps many frames
    /// writes them back to back into one `BytesMut` chunk and splits each off as shared bytes
    /// (see `agentwire_bridge`'s memory broker).
    pub fn write_envelope(&self, seq: u64, out: &mut impl bytes::BufMut) {
        crate::envelope::write_envelope(out, seq, self);
    }
}

impl RunEvent {
    /// The length in bytes of [`Self::to_envelope_json`]`(seq)`, counted without writing it.
    pub fn envelope_len(&self, seq: u64) -> usize {
        crate::envelope::envelope_len(seq, self)
    }

    /// Checks that the event's envelope is at most `max` bytes at any seq (the seq counted at its
    /// largest, 20 digits): the bound `limits.max_event_bytes` puts on every event.
    ///
    /// It counts the envelope without writing it, for a check before anything is stored (a
    /// broker measures the frame it writes, [`Self::size_at_any_seq`]).
    ///
    /// # Errors
    /// The envelope's size (at the largest seq) when it is over `max`.
    ///
    /// ```
    /// use agentwire_core::{AgentThinking, EventKind, RunEvent, RunId, ThreadId};
    /// let event = |thought: &str| RunEvent::now(RunId::generate(), ThreadId::generate(), "demo".into(),
    ///     EventKind::AgentThinking(AgentThinking { thought: thought.into(), step: None }));
    /// assert!(event("short").check_size(1024).is_ok());
    /// let big = event(&"x".repeat(2000));
    /// assert_eq!(big.check_size(1024), Err(big.envelope_len(u64::MAX)));
    /// ```
    pub fn check_size(&self, max: usize) -> Result<(), usize> {
        match self.envelope_len(u64::MAX) {
            len if len <= max => Ok(()),
            len => Err(len),
        }
    }
}

impl RunEvent {
    /// The size that `limits.max_event_bytes` bounds, of an envelope written as `frame_len`
    /// bytes at `seq`: its seq counted at its largest (20 digits), as [`Self::check_size`]
    /// counts it, so whether an event fits does not depend on the seq it gets. A broker measures
    /// the frame it writes with this, so the bound costs no pass of its own.
    ///
    /// ```
    /// use agentwire_core::RunEvent;
    /// assert_eq!(RunEvent::size_at_any_seq(100, 7), 119);
    /// assert_eq!(RunEvent::size_at_any_seq(119, u64::MAX), 119);
    /// ```
    pub fn size_at_any_seq(frame_len: usize, seq: u64) -> usize {
        const MAX_SEQ_DIGITS: usize = 20;
        let digits = seq.checked_ilog10().map_or(1, |log| log as usize + 1);
        frame_len.saturating_sub(digits) + MAX_SEQ_DIGITS
    }

    /// The envelope at seq 0 and the index of that one `0`: `json[..at] + seq + json[at + 1..]`
    /// is exactly [`Self::to_envelope_json`]`(seq)`. A broker that assigns the seq elsewhere
    /// (e.g. in a Redis script) joins the parts there, so the event is still serialized once.
    pub fn to_envelope_at_zero(&self) -> (Vec<u8>, usize) {
        let json = self.to_envelope_json(0);
        let at = self.kind.envelope_prefix().len();
        debug_assert_eq!(json[at], b'0');
        (json, at)
    }
}

/// The event type of a serialized envelope (which starts with `{"type":"<name>"`), as its index
/// in [`EVENT_TYPES`], without parsing the JSON; `None` when it does not start like an event
/// envelope.
pub(crate) fn envelope_type(json: &[u8]) -> Option<u8> {
    let rest = json.strip_prefix(br#"{"type":""#)?;
    EVENT_TYPES
        .iter()
        .position(|name| {
            rest.strip_prefix(name.as_bytes())
                .is_some_and(|r| r.first() == Some(&b'"'))
        })
        .map(|i| i as u8)
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The one table of event kinds: each variant, its data type and its wire `type` name. It
/// generates [`EventKind`] (with the serde names), [`EVENT_TYPES`], [`EventKind::type_name`],
/// [`EventKind::type_index`] and the envelope writer's `{"type":"<name>","seq":` prefixes, so
/// a new kind is one line here (plus its data type and its envelope writer arm).
macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident($data:ty) = $name:literal, )*) => {
        /// What happened in a run. Serialized adjacently tagged: `{"type": "...", "data": {...}}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        #[non_exhaustive]
        pub enum EventKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($data), )*
        }

        /// The position of each kind in the table.
        #[derive(Clone, Copy)]
        enum KindIndex {
            $( $variant, )*
        }

        /// How many event kinds there are.
        const KIND_COUNT: usize = [$( KindIndex::$variant ),*].len();

        /// Every event `type` name, as [`EventKind::type_name`] returns them, in
        /// [`EventKind::type_index`] order.
        pub const EVENT_TYPES: [&str; KIND_COUNT] = [$( $name ),*];

        /// The start of each kind's envelope, up to its `seq` value.
        pub(crate) const ENVELOPE_PREFIXES: [&str; KIND_COUNT] =
            [$( concat!("{\"type\":\"", $name, "\",\"seq\":") ),*];

        impl EventKind {
            /// The index of [`Self::type_name`] in [`EVENT_TYPES`]: for counting events by type
            /// without comparing strings.
            pub fn type_index(&self) -> usize {
                let index = match self {
                    $( EventKind::$variant(_) => KindIndex::$variant, )*
                };
                index as usize
            }
        }
    };
}

event_kinds! {
    /// The run began.
    AgentStarted(AgentStarted) = "agent_started",
    /// The agent reports a reasoning step.
    AgentThinking(AgentThinking) = "agent_thinking",
    /// A tool call began.
    ToolExecuting(ToolExecuting) = "tool_executing",
    /// A tool call ended (successfully or not).
    ToolCompleted(ToolCompleted) = "tool_completed",
    /// A piece of the streamed answer.
    AgentMessageDelta(AgentMessageDelta) = "agent_message_delta",
    /// The run ended successfully. Terminal.
    AgentCompleted(AgentCompleted) = "agent_completed",
    /// The run ended with an error. Terminal.
    AgentError(AgentErrorData) = "agent_error",
}

impl EventKind {
    /// The wire `type` of this event.
    pub fn type_name(&self) -> &'static str {
        EVENT_TYPES[self.type_index()]
    }

    /// The start of this event's envelope, up to its `seq` value: `{"type":"<name>","seq":`.
    pub(crate) fn envelope_prefix(&self) -> &'static str {
        ENVELOPE_PREFIXES[self.type_index()]
    }

    /// Whether this event ends its run.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventKind::AgentCompleted(_) | EventKind::AgentError(_)
        )
    }

    /// Builds a kind from a wire `type` and its `data` object (as `/v1/publish` receives them).
    ///
    /// # Errors
    /// The serde error when `type` is unknown or `data` lacks a field of that type.
    pub fn from_parts(type_name: &str, data: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "type": type_name, "data": data }))
    }
}

/// Data of `agent_started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentStarted {
    /// The user's input, if any.
    #[serde(default)]
    pub input: Option<String>,
}

/// Data of `agent_thinking`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentThinking {
    /// The thought, as the agent phrases it.
    pub thought: String,
    /// 1-based step number, when the agent counts steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
}

/// Data of `tool_executing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolExecuting {
    /// Unique within the run; pairs this event with its `tool_completed`.
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// The arguments the tool was called with.
    #[serde(default)]
    pub args: Value,
}

/// Data of `tool_completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCompleted {
    /// The `call_id` of the matching `tool_executing`.
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// Whether the tool succeeded.
    pub ok: bool,
    /// The tool's result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the call took.
    #[serde(default)]
    pub duration_ms: u64,
}

/// Data of `agent_message_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMessageDelta {
    /// Identifies the message the delta belongs to.
    pub message_id: String,
    /// The next piece of text.
    pub delta: String,
}

/// Data of `agent_completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCompleted {
    /// The run's result.
    pub result: Value,
    /// How long the run took.
    #[serde(default)]
    pub duration_ms: u64,
    /// Tokens the run's model calls used, for agents backed by a language model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// The model that answered, for agents backed by a language model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Tokens a run's model calls used (`agent_completed.usage`), summed over its model turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Tokens sent to the model (prompt, history, tool results).
    pub prompt_tokens: u64,
    /// Tokens the model generated.
    pub completion_tokens: u64,
}

/// Data of `agent_error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentErrorData {
    /// `agent_failed`, `cancelled`, `timeout`, `agent_dropped`, …
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// How long the run took.
    #[serde(default)]
    pub duration_ms: u64,
}

/// An event frame as a client reads it back: the envelope with its `seq`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StreamEvent {
    /// The event's position in the user's stream.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: RunEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunEvent {
        RunEvent {
            run_id: RunId::new("r_1").unwrap(),
            thread_id: ThreadId::new("t_1").unwrap(),
            agent: "demo".into(),
            ts: 1_763_900_000_123,
            kind: EventKind::ToolCompleted(ToolCompleted {
                call_id: "c_1".into(),
                tool: "calculator".into(),
                ok: true,
                result: Some(serde_json::json!(4)),
                error: None,
                duration_ms: 3,
            }),
        }
    }

    #[test]
    fn envelope_matches_the_spec_example() {
        let json = String::from_utf8(sample().to_envelope_json(42)).unwrap();
        assert_eq!(
            json,
            r#"{"type":"tool_completed","seq":42,"run_id":"r_1","thread_id":"t_1","agent":"demo","ts":1763900000123,"data":{"call_id":"c_1","tool":"calculator","ok":true,"result":4,"duration_ms":3}}"#
        );
    }

    #[test]
    fn envelope_parts_join_around_any_seq() {
        let (json, at) = sample().to_envelope_at_zero();
        for seq in [1u64, 42, 18_446_744_073_709_551_615] {
            let mut joined = json[..at].to_vec();
            joined.extend_from_slice(seq.to_string().as_bytes());
            joined.extend_from_slice(&json[at + 1..]);
            assert_eq!(joined, sample().to_envelope_json(seq));
        }
    }

    #[test]
    fn envelope_reads_back_as_stream_event() {
        let bytes = sample().to_envelope_json(7);
        let back: StreamEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.seq, 7);
        assert_eq!(back.event, sample());
    }

    #[test]
    fn kind_from_parts_rejects_unknown_types() {
        let ok = EventKind::from_parts("agent_thinking", serde_json::json!({"thought": "hm"}));
        assert!(matches!(ok, Ok(EventKind::AgentThinking(_))));
        assert!(EventKind::from_parts("agent_dancing", serde_json::json!({})).is_err());
        assert!(EventKind::from_parts("tool_executing", serde_json::json!({})).is_err());
    }
}
