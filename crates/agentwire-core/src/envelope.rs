//! Writing the wire envelope of an event (docs/protocol.md) straight into bytes.
//!
//! Every accepted event is serialized once, here. The keys are literals (the `type` prefix comes
//! from the event kinds' table in `event.rs`), ids are written as they are (they are validated
//! to `[A-Za-z0-9_.:@-]`), and other strings take the escaper only when they hold a byte that
//! needs it. Invariant: the bytes are exactly serde_json's — a property test compares both over
//! arbitrary events.
//!
//! The same writer also measures an envelope without writing it ([`Count`]), for a check before
//! anything is stored (a run's `agent_started`, before the run is acknowledged): one writer for
//! both keeps that size equal to the bytes a broker stores and bounds.

use bytes::BufMut;
use serde_json::Value;

use crate::event::{EventKind, RunEvent};

/// Where the envelope writer puts its output.
trait Out {
    fn slice(&mut self, bytes: &[u8]);
    fn byte(&mut self, b: u8);
    /// A value as serde_json writes it.
    fn serde<T: serde::Serialize + ?Sized>(&mut self, v: &T);
    /// An unsigned integer in decimal.
    fn decimal(&mut self, n: u64) {
        self.slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

/// Writes into a buffer.
struct Write<'a, B>(&'a mut B);

impl<B: BufMut> Out for Write<'_, B> {
    #[inline]
    fn slice(&mut self, bytes: &[u8]) {
        self.0.put_slice(bytes);
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        self.0.put_u8(b);
    }

    fn serde<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        // Serializing strings and `Value`s into memory cannot fail.
        serde_json::to_writer((&mut *self.0).writer(), v)
            .expect("serializing into memory cannot fail");
    }
}

/// Counts the bytes the writer would write.
struct Count {
    bytes: usize,
}

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Out for Count {
    #[inline]
    fn slice(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len();
    }

    #[inline]
    fn byte(&mut self, _: u8) {
        self.bytes += 1;
    }

    fn serde<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        serde_json::to_writer(&mut *self, v).expect("counting cannot fail");
    }

    /// The number of digits, without formatting them.
    fn decimal(&mut self, n: u64) {
        self.bytes += n.checked_ilog10().map_or(1, |log| log as usize + 1);
    }
}

/// Appends the envelope of `event` at `seq` to `out`: a `Vec<u8>`, or the `BytesMut` chunk a
/// broker writes many frames into.
pub(crate) fn write_envelope<B: BufMut>(out: &mut B, seq: u64, event: &RunEvent) {
    write(&mut Write(out), seq, event);
}

/// The length of the envelope of `event` at `seq`.
pub(crate) fn envelope_len(seq: u64, event: &RunEvent) -> usize {
    let mut count = Count { bytes: 0 };
    write(&mut count, seq, event);
    count.bytes
}

fn write(out: &mut impl Out, seq: u64, event: &RunEvent) {
    out.slice(event.kind.envelope_prefix().as_bytes());
    write_u64(out, seq);
    out.slice(b",\"run_id\":");
    id_to(out, event.run_id.as_str());
    out.slice(b",\"thread_id\":");
    id_to(out, event.thread_id.as_str());
    out.slice(b",\"agent\":");
    str_to(out, &event.agent);
    out.slice(b",\"ts\":");
    write_u64(out, event.ts);
    out.slice(b",\"data\":");
    write_data(out, &event.kind);
    out.byte(b'}');
}

fn write_data(out: &mut impl Out, kind: &EventKind) {
    match kind {
        EventKind::AgentStarted(d) => {
            out.slice(b"{\"input\":");
            match &d.input {
                Some(input) => str_to(out, input),
                None => out.slice(b"null"),
            }
        }
        EventKind::AgentThinking(d) => {
            out.slice(b"{\"thought\":");
            str_to(out, &d.thought);
            if let Some(step) = d.step {
                out.slice(b",\"step\":");
                write_u64(out, u64::from(step));
            }
        }
        EventKind::ToolExecuting(d) => {
            write_call(out, &d.call_id, &d.tool);
            out.slice(b",\"args\":");
            write_value(out, &d.args);
        }
        EventKind::ToolCompleted(d) => {
            write_call(out, &d.call_id, &d.tool);
            out.slice(if d.ok {
                b",\"ok\":true"
            } else {
                b",\"ok\":false"
            });
            if let Some(result) = &d.result {
                out.slice(b",\"result\":");
                write_value(out, result);
            }
            if let Some(error) = &d.error {
                out.slice(b",\"error\":");
                str_to(out, error);
            }
            out.slice(b",\"duration_ms\":");
            write_u64(out, d.duration_ms);
        }
        EventKind::AgentMessageDelta(d) => {
            out.slice(b"{\"message_id\":");
            str_to(out, &d.message_id);
            out.slice(b",\"delta\":");
            str_to(out, &d.delta);
        }
        EventKind::AgentCompleted(d) => {
            out.slice(b"{\"result\":");
            write_value(out, &d.result);
            out.slice(b",\"duration_ms\":");
            write_u64(out, d.duration_ms);
            if let Some(usage) = &d.usage {
                out.slice(b",\"usage\":{\"prompt_tokens\":");
                write_u64(out, usage.prompt_tokens);
                out.slice(b",\"completion_tokens\":");
                write_u64(out, usage.completion_tokens);
                out.byte(b'}');
            }
            if let Some(model) = &d.model {
                out.slice(b",\"model\":");
                str_to(out, model);
            }
        }
        EventKind::AgentError(d) => {
            out.slice(b"{\"code\":");
            str_to(out, &d.code);
            out.slice(b",\"message\":");
            str_to(out, &d.message);
            out.slice(b",\"duration_ms\":");
            write_u64(out, d.duration_ms);
        }
    }
    out.byte(b'}');
}

/// `{"call_id":…,"tool":…`, the start of both tool events' data.
fn write_call(out: &mut impl Out, call_id: &str, tool: &str) {
    out.slice(b"{\"call_id\":");
    str_to(out, call_id);
    out.slice(b",\"tool\":");
    str_to(out, tool);
}

fn write_u64(out: &mut impl Out, n: u64) {
    out.decimal(n);
}

/// An id as a JSON string into a buffer (see [`id_to`]).
pub(crate) fn write_id<B: BufMut>(out: &mut B, id: &str) {
    id_to(&mut Write(out), id);
}

/// A string as JSON into a buffer (see [`str_to`]).
pub(crate) fn write_str<B: BufMut>(out: &mut B, s: &str) {
    str_to(&mut Write(out), s);
}

/// An id as a JSON string: ids are validated to `[A-Za-z0-9_.:@-]`, nothing to escape.
fn id_to(out: &mut impl Out, id: &str) {
    out.byte(b'"');
    out.slice(id.as_bytes());
    out.byte(b'"');
}

/// A JSON string: copied as it is when nothing in it needs escaping (serde_json escapes exactly
/// the control characters, `"` and `\`), through serde_json otherwise.
fn str_to(out: &mut impl Out, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.byte(b'"');
        out.slice(s.as_bytes());
        out.byte(b'"');
    } else {
        out.serde(s);
    }
}

/// A JSON value as serde_json writes it (compact; object keys in the map's order). Strings,
/// objects and arrays are written here — tool arguments are usually a small object of strings —
/// numbers go through serde_json, whose float formatting is the reference.
fn write_value(out: &mut impl Out, v: &Value) {
    match v {
        Value::String(s) => str_to(out, s),
        Value::Null => out.slice(b"null"),
        Value::Bool(b) => out.slice(if *b { b"true" } else { b"false" }),
        Value::Object(map) => {
            out.byte(b'{');
            for (i, (key, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.byte(b',');
                }
                str_to(out, key);
                out.byte(b':');
                write_value(out, value);
            }
            out.byte(b'}');
        }
        Value::Array(items) => {
            out.byte(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.byte(b',');
                }
                write_value(out, item);
            }
            out.byte(b']');
        }
        Value::Number(n) => out.serde(n),
    }
}

#[cfg(test)]
mod tests;
