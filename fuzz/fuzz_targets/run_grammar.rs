//! Any sequence of run events: the grammar checker never panics, and what it accepts is always
//! a valid run prefix (started first, completions match open calls, nothing after the end).
#![no_main]

use std::collections::HashSet;

use agentwire_core::{
    AgentCompleted, AgentErrorData, AgentStarted, AgentThinking, EventKind, RunGrammar,
    ToolCompleted, ToolExecuting,
};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn kind(op: u8, arg: u8) -> EventKind {
    let call = format!("c{}", arg % 6);
    let tool = if arg & 0x80 == 0 { "calc" } else { "clock" }.to_owned();
    match op % 7 {
        0 => EventKind::AgentStarted(AgentStarted { input: None }),
        1 => EventKind::AgentThinking(AgentThinking { thought: "t".into(), step: None }),
        2 => EventKind::ToolExecuting(ToolExecuting { call_id: call, tool, args: json!({}) }),
        3 => EventKind::ToolCompleted(ToolCompleted {
            call_id: call,
            tool,
            ok: arg & 1 == 0,
            result: None,
            error: None,
            duration_ms: 0,
        }),
        4 => EventKind::AgentCompleted(AgentCompleted { result: json!(null), duration_ms: 0, usage: None, model: None }),
        5 => EventKind::AgentError(AgentErrorData { code: "x".into(), message: "m".into(), duration_ms: 0 }),
        _ => EventKind::AgentThinking(AgentThinking { thought: String::new(), step: Some(1) }),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut grammar = RunGrammar::new();
    let mut accepted = Vec::new();
    for pair in data.chunks(2) {
        let k = kind(pair[0], *pair.get(1).unwrap_or(&0));
        if grammar.check(&k).is_ok() {
            accepted.push(k);
        }
    }
    let (mut open, mut used) = (HashSet::new(), HashSet::new());
    for (i, k) in accepted.iter().enumerate() {
        match k {
            EventKind::AgentStarted(_) => assert_eq!(i, 0),
            EventKind::ToolExecuting(t) => {
                assert!(used.insert(t.call_id.clone()));
                open.insert((t.call_id.clone(), t.tool.clone()));
            }
            EventKind::ToolCompleted(t) => assert!(open.remove(&(t.call_id.clone(), t.tool.clone()))),
            EventKind::AgentCompleted(_) | EventKind::AgentError(_) => {
                assert!(open.is_empty());
                assert_eq!(i, accepted.len() - 1);
            }
            _ => assert!(i > 0),
        }
    }
    assert_eq!(grammar.is_finished(), accepted.last().is_some_and(EventKind::is_terminal));
});
