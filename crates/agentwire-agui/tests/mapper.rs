//! The AG-UI mapper without HTTP: the order of a run's AG-UI events, what is closed before the
//! run ends, the end on an error or a closed stream, filtering one run out of a user's stream,
//! and a rebuilt mapper continuing exactly as the original.

use agentwire_agui::{AguiMapper, AguiRun, RunAgentInput};
use agentwire_core::{EventKind, RunEvent, RunId, StreamEvent, ThreadId};
use serde_json::{Value, json};

fn ev_of(run: &str, seq: u64, t: &str, data: Value) -> StreamEvent {
    StreamEvent {
        seq,
        event: RunEvent::now(
            RunId::new(run).unwrap(),
            ThreadId::new("t_1").unwrap(),
            "demo".into(),
            EventKind::from_parts(t, data).unwrap(),
        ),
    }
}

fn ev(seq: u64, t: &str, data: Value) -> StreamEvent {
    ev_of("r_1", seq, t, data)
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// A run with a step, text interrupted by a tool call, and a late event after the end.
fn a_run() -> Vec<StreamEvent> {
    vec![
        ev(1, "agent_started", json!({"input": "hi"})),
        ev(2, "agent_thinking", json!({"thought": "hm", "step": 1})),
        ev(
            3,
            "agent_message_delta",
            json!({"message_id": "m", "delta": "a "}),
        ),
        ev(
            4,
            "tool_executing",
            json!({"call_id": "c1", "tool": "clock", "args": {}}),
        ),
        ev(
            5,
            "tool_completed",
            json!({"call_id": "c1", "tool": "clock", "ok": true, "result": 4}),
        ),
        ev(
            6,
            "agent_message_delta",
            json!({"message_id": "m", "delta": "b"}),
        ),
        ev(
            7,
            "agent_message_delta",
            json!({"message_id": "m", "delta": ""}),
        ),
        ev(8, "agent_completed", json!({"result": {"answer": "a b"}})),
        ev(9, "agent_thinking", json!({"thought": "late"})),
    ]
}

#[test]
fn maps_a_run_and_closes_what_is_open_before_it_ends() {
    let mut m = AguiMapper::new("thread", "run");
    let all: Vec<Value> = a_run().iter().flat_map(|e| m.map(e)).collect();
    assert_eq!(
        types(&all),
        [
            "RUN_STARTED",
            "STEP_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "STEP_FINISHED",
            "RUN_FINISHED",
        ]
    );
    assert_eq!(all[0]["threadId"], "thread");
    assert_eq!(all[1]["stepName"], "1. hm");
    assert_eq!(all[2]["messageId"], "m");
    assert_eq!(all[9]["messageId"], "m.2");
    assert_eq!(all[5]["toolCallId"], "run.c1");
    assert_eq!(all[8]["content"], "4");
    assert_eq!(all[13]["result"]["answer"], "a b");
    assert!(m.is_finished());
}

#[test]
fn an_error_or_a_closed_stream_ends_with_run_error() {
    let mut m = AguiMapper::new("t", "r");
    m.map(&ev(1, "agent_started", json!({})));
    let out = m.map(&ev(
        2,
        "agent_error",
        json!({"code": "cancelled", "message": "stop"}),
    ));
    assert_eq!(types(&out), ["RUN_ERROR"]);
    assert_eq!(out[0]["code"], "cancelled");
    assert!(m.interrupted("gone").is_empty());

    let mut m = AguiMapper::new("t", "r");
    m.map(&ev(1, "agent_started", json!({})));
    m.map(&ev(2, "agent_thinking", json!({"thought": "x"})));
    let out = m.interrupted("gone");
    assert_eq!(types(&out), ["STEP_FINISHED", "RUN_ERROR"]);
    assert_eq!(out[1]["code"], "stream_closed");
}

#[test]
fn a_rebuilt_mapper_continues_exactly_as_the_original() {
    let events = a_run();
    let mut original = AguiMapper::new("t", "r");
    let groups: Vec<Vec<Value>> = events.iter().map(|e| original.map(e)).collect();
    for k in 0..=events.len() {
        let mut rebuilt = AguiMapper::new("t", "r");
        for e in &events[..k] {
            rebuilt.map(e);
        }
        let rest: Vec<Vec<Value>> = events[k..].iter().map(|e| rebuilt.map(e)).collect();
        assert_eq!(rest, groups[k..], "rebuilt after {k} events");
    }
}

#[test]
fn a_run_view_keeps_only_its_own_run() {
    let mut run = AguiRun::new(RunId::new("r_1").unwrap(), AguiMapper::new("t", "r"));
    assert!(!run.has_started());
    let other = run.event(&ev_of("r_2", 1, "agent_started", json!({})));
    assert!(other.is_empty());
    assert!(!run.has_started());
    assert_eq!(
        types(&run.event(&ev(2, "agent_started", json!({})))),
        ["RUN_STARTED"]
    );
    assert!(run.has_started());
    assert!(
        run.event(&ev_of("r_2", 3, "agent_completed", json!({"result": 1})))
            .is_empty()
    );
    assert!(!run.is_finished());
    let end = run.event(&ev(4, "agent_completed", json!({"result": null})));
    assert_eq!(types(&end), ["RUN_FINISHED"]);
    assert!(end[0].get("result").is_none(), "a null result is left out");
    assert!(run.is_finished());
    assert!(run.interrupted("late").is_empty());
}

#[test]
fn takes_the_last_user_message() {
    let input = |messages: Value| -> RunAgentInput {
        serde_json::from_value(json!({"threadId": "t", "runId": "r", "messages": messages}))
            .unwrap()
    };
    let conversation = input(json!([
        {"id": "1", "role": "user", "content": "first"},
        {"id": "2", "role": "assistant", "content": "ok"},
        {"id": "3", "role": "user", "content": [
            {"type": "text", "text": "second"}, {"type": "image", "url": "x"},
            {"type": "text", "text": "third"}
        ]},
    ]));
    assert_eq!(conversation.user_text().as_deref(), Some("second\nthird"));
    assert_eq!(
        input(json!([{"role": "assistant", "content": "ok"}])).user_text(),
        None
    );
    assert_eq!(
        input(json!([{"role": "user", "content": "  "}])).user_text(),
        None
    );
    assert_eq!(input(json!([])).user_text(), None);
}
