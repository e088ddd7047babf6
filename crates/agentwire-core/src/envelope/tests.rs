//! The envelope writer against serde_json, and the size counting against the bytes written.

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
                    assert_eq!(envelope_len(seq, &e), fast.len());
                    // The broker's measure of the written frame is the pre-store count's.
                    assert_eq!(
                        RunEvent::size_at_any_seq(fast.len(), seq),
                        envelope_len(u64::MAX, &e)
                    );
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
        proptest::prop_assert_eq!(envelope_len(seq, &e), fast.len());
        proptest::prop_assert_eq!(
            RunEvent::size_at_any_seq(fast.len(), seq),
            envelope_len(u64::MAX, &e)
        );
        let back: StreamEvent = serde_json::from_slice(&fast).unwrap();
        proptest::prop_assert_eq!(back.event.kind.type_name(), e.kind.type_name());
    }
}
