//! Writing the wire envelope of an event (docs/protocol.md) straight into bytes.
//!
//! Every accepted event is serialized once, here. The keys are literals (the `type` prefix comes
//! from the event kinds' table in `event.rs`), ids are written as they are (they are validated
//! to `[A-Za-z0-9_.:@-]`), and other strings take the escaper only when they hold a byte that
//! needs it. Invariant: the bytes are exactly serde_json's — a property test compares both over
//! arbitrary events.
//!
//! The same writer also measures an envelope without writing it ([`Count`]): exactly, or as a
//! cheap upper bound that does not read the strings (each byte counted as its longest escape).
//! One writer for all three keeps the size that `limits.max_event_bytes` checks equal to the
//! bytes a broker stores.

use bytes::BufMut;
use serde_json::Value;

use crate::event::{EventKind, RunEvent};

/// Where the envelope writer puts its output.
trait Out {
    fn slice(&mut self, bytes: &[u8]);
    fn byte(&mut self, b: u8);
    /// A value as serde_json writes it.
    fn serde<T: serde::Serialize + ?Sized>(&mut self, v: &T);
    /// Counts a string as its longest possible escape instead of writing it, when this output
    /// is an upper bound; returns whether it did.
    fn bound_str(&mut self, _s: &str) -> bool {
        false
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

/// Counts bytes instead of writing them: exactly, or (with `bound`) an upper bound that counts
/// each byte of a string as six (`\u00XX`, the longest escape) without reading it.
struct Count {
    bytes: usize,
    bound: bool,
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

    fn bound_str(&mut self, s: &str) -> bool {
        if self.bound {
            self.bytes += 2 + 6 * s.len();
        }
        self.bound
    }
}

/// Appends the envelope of `event` at `seq` to `out`: a `Vec<u8>`, or the `BytesMut` chunk a
/// broker writes many frames into.
pub(crate) fn write_envelope<B: BufMut>(out: &mut B, seq: u64, event: &RunEvent) {
    write(&mut Write(out), seq, event);
}

/// The length of the envelope of `event` at `seq`: exactly, or with `bound` an upper bound that
/// costs no pass over the event's strings.
pub(crate) fn envelope_len(seq: u64, event: &RunEvent, bound: bool) -> usize {
    let mut count = Count { bytes: 0, bound };
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
    out.slice(itoa::Buffer::new().format(n).as_bytes());
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
    if out.bound_str(s) {
        return;
    }
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
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::event::*;
    use crate::{RunId, ThreadId};

    /// The envelope as serde writes it: the reference the fast writer must match byte for byte.
    fn through_serde(seq: u64, e: &RunEvent) -> Vec<u8> {
        let mut map = serde_json::Map::new();
        map.insert("type".into(), json!(e.kind.type_name()));
        map.insert("seq".into(), json!(seq));
        map.insert("run_id".into(), json!(e.run_id));
        map.insert("thread_id".into(), json!(e.thread_id));
        map.insert("agent".into(), json!(&*e.agent));
        map.insert("ts".into(), json!(e.ts));
        let tagged = serde_json::to_value(&e.kind).unwrap();
        map.insert("data".into(), tagged["data"].clone());
        // serde_json's Map keeps keys sorted unless preserve_order; write in wire order instead.
        let mut out = b"{".to_vec();
        for (i, key) in ["type", "seq", "run_id", "thread_id", "agent", "ts", "data"]
            .iter()
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, key).unwrap();
            out.push(b':');
            if *key == "data" {
                // The data struct's own field order, as its derive writes it.
                out.extend(data_through_serde(&e.kind));
            } else {
                serde_json::to_writer(&mut out, &map[*key]).unwrap();
            }
        }
        out.push(b'}');
        out
    }

    fn data_through_serde(kind: &EventKind) -> Vec<u8> {
        match kind {
            EventKind::AgentStarted(d) => serde_json::to_vec(d),
            EventKind::AgentThinking(d) => serde_json::to_vec(d),
            EventKind::ToolExecuting(d) => serde_json::to_vec(d),
            EventKind::ToolCompleted(d) => serde_json::to_vec(d),
            EventKind::AgentMessageDelta(d) => serde_json::to_vec(d),
            EventKind::AgentCompleted(d) => serde_json::to_vec(d),
            EventKind::AgentError(d) => serde_json::to_vec(d),
        }
        .unwrap()
    }

    fn kinds(text: &str) -> Vec<EventKind> {
        vec![
            EventKind::AgentStarted(AgentStarted {
                input: Some(text.into()),
            }),
            EventKind::AgentStarted(AgentStarted { input: None }),
            EventKind::AgentThinking(AgentThinking {
                thought: text.into(),
                step: Some(3),
            }),
            EventKind::AgentThinking(AgentThinking {
                thought: text.into(),
                step: None,
            }),
            EventKind::ToolExecuting(ToolExecuting {
                call_id: "c_1".into(),
                tool: text.into(),
                args: json!({"text": text, "n": [1, 2.5, null, true, -7, 1e300, [], {}],
                    "nested": {"b": false, text: [{"k": text}], "a": 0.1}}),
            }),
            EventKind::ToolCompleted(ToolCompleted {
                call_id: text.into(),
                tool: "calculator".into(),
                ok: true,
                result: Some(json!(text)),
                error: None,
                duration_ms: 3,
            }),
            EventKind::ToolCompleted(ToolCompleted {
                call_id: "c_2".into(),
                tool: "calculator".into(),
                ok: false,
                result: None,
                error: Some(text.into()),
                duration_ms: u64::MAX,
            }),
            EventKind::AgentMessageDelta(AgentMessageDelta {
                message_id: "m_1".into(),
                delta: text.into(),
            }),
            EventKind::AgentCompleted(AgentCompleted {
                result: json!({"answer": text}),
                duration_ms: 0,
                usage: Some(crate::TokenUsage {
                    prompt_tokens: 12,
                    completion_tokens: u64::MAX,
                }),
                model: Some(text.into()),
            }),
            EventKind::AgentCompleted(AgentCompleted {
                result: Value::Null,
                duration_ms: 7,
                usage: None,
                model: None,
            }),
            EventKind::AgentError(AgentErrorData {
                code: "agent_failed".into(),
                message: text.into(),
                duration_ms: 12,
            }),
        ]
    }

    #[test]
    fn writes_exactly_what_serde_writes_for_every_kind_and_awkward_strings() {
        let texts = [
            "plain",
            "",
            "quote \" and backslash \\",
            "control \u{1} \n \t \u{1f}",
            "unicode é ✓ 😀 and DEL \u{7f}",
            "</script>",
        ];
        for text in texts {
            for agent in ["demo", "an \"odd\" agent"] {
                for kind in kinds(text) {
                    let e = RunEvent {
                        run_id: RunId::new("r_1").unwrap(),
                        thread_id: ThreadId::new("t_x.y:z@w-1").unwrap(),
                        agent: Arc::from(agent),
                        ts: 1_763_900_000_123,
                        kind,
                    };
                    for seq in [0, 1, 42, u64::MAX] {
                        let mut fast = Vec::new();
                        write_envelope(&mut fast, seq, &e);
                        assert_eq!(envelope_len(seq, &e, false), fast.len());
                        assert!(envelope_len(seq, &e, true) >= fast.len());
                        assert_eq!(
                            String::from_utf8(fast).unwrap(),
                            String::from_utf8(through_serde(seq, &e)).unwrap()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_kind_knows_its_index_in_event_types() {
        let mut seen = [false; crate::EVENT_TYPES.len()];
        for kind in kinds("x") {
            let i = kind.type_index();
            assert_eq!(crate::EVENT_TYPES[i], kind.type_name());
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s), "kinds() covers every event type");
    }

    /// Any JSON value, nested a few levels (floats finite, as JSON requires).
    fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((any::<String>(), inner), 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// Any event kind, with arbitrary strings, options and values.
    fn arb_kind() -> impl proptest::strategy::Strategy<Value = EventKind> {
        use proptest::prelude::*;
        let text = any::<String>;
        prop_oneof![
            proptest::option::of(text())
                .prop_map(|input| EventKind::AgentStarted(AgentStarted { input })),
            (text(), proptest::option::of(any::<u32>())).prop_map(|(thought, step)| {
                EventKind::AgentThinking(AgentThinking { thought, step })
            }),
            (text(), text(), arb_value()).prop_map(|(call_id, tool, args)| {
                EventKind::ToolExecuting(ToolExecuting {
                    call_id,
                    tool,
                    args,
                })
            }),
            (
                text(),
                text(),
                any::<bool>(),
                proptest::option::of(arb_value()),
                proptest::option::of(text()),
                any::<u64>()
            )
                .prop_map(|(call_id, tool, ok, result, error, duration_ms)| {
                    EventKind::ToolCompleted(ToolCompleted {
                        call_id,
                        tool,
                        ok,
                        result,
                        error,
                        duration_ms,
                    })
                }),
            (text(), text()).prop_map(|(message_id, delta)| {
                EventKind::AgentMessageDelta(AgentMessageDelta { message_id, delta })
            }),
            (
                arb_value(),
                any::<u64>(),
                proptest::option::of((any::<u64>(), any::<u64>())),
                proptest::option::of(text())
            )
                .prop_map(|(result, duration_ms, usage, model)| {
                    EventKind::AgentCompleted(AgentCompleted {
                        result,
                        duration_ms,
                        usage: usage.map(|(prompt_tokens, completion_tokens)| crate::TokenUsage {
                            prompt_tokens,
                            completion_tokens,
                        }),
                        model,
                    })
                }),
            (text(), text(), any::<u64>()).prop_map(|(code, message, duration_ms)| {
                EventKind::AgentError(AgentErrorData {
                    code,
                    message,
                    duration_ms,
                })
            }),
        ]
    }

    proptest::proptest! {
        /// The hand-written writer and serde agree byte for byte on any event, and the envelope
        /// starts with the kind's name from the table.
        #[test]
        fn the_writer_matches_serde_on_arbitrary_events(
            kind in arb_kind(),
            agent in proptest::prelude::any::<String>(),
            seq in proptest::prelude::any::<u64>(),
            ts in proptest::prelude::any::<u64>(),
        ) {
            let e = RunEvent {
                run_id: RunId::new("r_1").unwrap(),
                thread_id: ThreadId::new("t_x.y:z@w-1").unwrap(),
                agent: Arc::from(agent),
                ts,
                kind,
            };
            let mut fast = Vec::new();
            write_envelope(&mut fast, seq, &e);
            proptest::prop_assert_eq!(&fast, &through_serde(seq, &e));
            proptest::prop_assert_eq!(envelope_len(seq, &e, false), fast.len());
            proptest::prop_assert!(envelope_len(seq, &e, true) >= fast.len());
            let back: StreamEvent = serde_json::from_slice(&fast).unwrap();
            proptest::prop_assert_eq!(back.event.kind.type_name(), e.kind.type_name());
        }
    }
}
