//! The state machine: one run's agentwire events to AG-UI events (the table in
//! `docs/ag-ui.md`).

use std::collections::HashMap;

use agentwire_core::{
    AgentCompleted, AgentErrorData, AgentMessageDelta, AgentThinking, EventKind, StreamEvent,
    ToolCompleted, ToolExecuting,
};
use serde_json::{Value, json};

/// Maps one run's agentwire events to AG-UI events (camelCase JSON objects).
///
/// It keeps what AG-UI needs closed before the run ends: the open thinking step and the open
/// text message. A text message is closed before a tool call or a new step starts; text that
/// follows continues as a new message (`{message_id}.{n}`). After the terminal event
/// (`RUN_FINISHED` / `RUN_ERROR`) it maps nothing more.
///
/// The output depends only on the events mapped (timestamps come from the events), so a mapper
/// rebuilt by mapping a run's first events again continues exactly as the original would.
#[derive(Debug, Clone)]
pub struct AguiMapper {
    thread_id: String,
    run_id: String,
    open_step: Option<String>,
    /// (agentwire message id, AG-UI message id) of the open text message.
    open_text: Option<(String, String)>,
    /// Segments started per agentwire message id.
    segments: HashMap<String, u32>,
    finished: bool,
}

impl AguiMapper {
    /// A mapper for the AG-UI run `run_id` of thread `thread_id` (the client's ids, echoed in
    /// `RUN_STARTED` and `RUN_FINISHED`).
    pub fn new(thread_id: impl Into<String>, run_id: impl Into<String>) -> Self {
        Self {
            thread_id: thread_id.into(),
            run_id: run_id.into(),
            open_step: None,
            open_text: None,
            segments: HashMap::new(),
            finished: false,
        }
    }

    /// Whether the run's terminal AG-UI event has been produced.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The AG-UI events for `event` (none after the run ended).
    pub fn map(&mut self, event: &StreamEvent) -> Vec<Value> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let ts = event.event.ts;
        match &event.event.kind {
            EventKind::AgentStarted(_) => out.push(json!({
                "type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id,
                "timestamp": ts,
            })),
            EventKind::AgentThinking(t) => self.thinking(t, ts, &mut out),
            EventKind::ToolExecuting(t) => self.tool_executing(t, ts, &mut out),
            EventKind::ToolCompleted(t) => self.tool_completed(t, ts, &mut out),
            EventKind::AgentMessageDelta(d) => self.delta(d, ts, &mut out),
            EventKind::AgentCompleted(c) => self.completed(c, ts, &mut out),
            EventKind::AgentError(e) => self.error(e, ts, &mut out),
            _ => {}
        }
        out
    }

    /// Ends the AG-UI run with `RUN_ERROR {code: "stream_closed"}` when the event stream closed
    /// before the run did (nothing when it had ended).
    pub fn interrupted(&mut self, message: &str) -> Vec<Value> {
        if self.finished {
            return Vec::new();
        }
        let ts = agentwire_core::unix_millis();
        let mut out = Vec::new();
        self.close_all(&mut out, ts);
        out.push(json!({
            "type": "RUN_ERROR", "message": message, "code": "stream_closed", "timestamp": ts,
        }));
        self.finished = true;
        out
    }

    fn thinking(&mut self, t: &AgentThinking, ts: u64, out: &mut Vec<Value>) {
        self.close_text(out, ts);
        self.close_step(out, ts);
        let name = match t.step {
            Some(n) => format!("{n}. {}", t.thought),
            None => t.thought.clone(),
        };
        out.push(json!({"type": "STEP_STARTED", "stepName": name, "timestamp": ts}));
        self.open_step = Some(name);
    }

    fn tool_executing(&mut self, t: &ToolExecuting, ts: u64, out: &mut Vec<Value>) {
        self.close_text(out, ts);
        let id = self.tool_call_id(&t.call_id);
        out.push(json!({
            "type": "TOOL_CALL_START", "toolCallId": id, "toolCallName": t.tool,
            "timestamp": ts,
        }));
        out.push(json!({
            "type": "TOOL_CALL_ARGS", "toolCallId": id, "delta": t.args.to_string(),
            "timestamp": ts,
        }));
        out.push(json!({"type": "TOOL_CALL_END", "toolCallId": id, "timestamp": ts}));
    }

    fn tool_completed(&mut self, t: &ToolCompleted, ts: u64, out: &mut Vec<Value>) {
        self.close_text(out, ts);
        let id = self.tool_call_id(&t.call_id);
        let content = if t.ok {
            t.result.clone().unwrap_or(Value::Null).to_string()
        } else {
            json!({ "error": t.error }).to_string()
        };
        out.push(json!({
            "type": "TOOL_CALL_RESULT", "messageId": format!("{id}.result"),
            "toolCallId": id, "content": content, "role": "tool", "timestamp": ts,
        }));
    }

    fn delta(&mut self, d: &AgentMessageDelta, ts: u64, out: &mut Vec<Value>) {
        if d.delta.is_empty() {
            return;
        }
        let current = match &self.open_text {
            Some((source, id)) if *source == d.message_id => id.clone(),
            _ => self.start_text(&d.message_id, ts, out),
        };
        out.push(json!({
            "type": "TEXT_MESSAGE_CONTENT", "messageId": current, "delta": d.delta,
            "timestamp": ts,
        }));
    }

    /// Opens a text message for agentwire message `source`: its id, or `{source}.{n}` for the
    /// n-th segment of a message a tool call or step interrupted.
    fn start_text(&mut self, source: &str, ts: u64, out: &mut Vec<Value>) -> String {
        self.close_text(out, ts);
        let n = self.segments.entry(source.to_owned()).or_insert(0);
        *n += 1;
        let id = if *n == 1 {
            source.to_owned()
        } else {
            format!("{source}.{n}")
        };
        out.push(json!({
            "type": "TEXT_MESSAGE_START", "messageId": id, "role": "assistant",
            "timestamp": ts,
        }));
        self.open_text = Some((source.to_owned(), id.clone()));
        id
    }

    fn completed(&mut self, c: &AgentCompleted, ts: u64, out: &mut Vec<Value>) {
        self.close_all(out, ts);
        let mut finished = json!({
            "type": "RUN_FINISHED", "threadId": self.thread_id, "runId": self.run_id,
            "timestamp": ts,
        });
        if !c.result.is_null() {
            finished["result"] = c.result.clone();
        }
        out.push(finished);
        self.finished = true;
    }

    fn error(&mut self, e: &AgentErrorData, ts: u64, out: &mut Vec<Value>) {
        self.close_all(out, ts);
        out.push(json!({
            "type": "RUN_ERROR", "message": e.message, "code": e.code, "timestamp": ts,
        }));
        self.finished = true;
    }

    fn tool_call_id(&self, call_id: &str) -> String {
        format!("{}.{call_id}", self.run_id)
    }

    fn close_text(&mut self, out: &mut Vec<Value>, ts: u64) {
        if let Some((_, id)) = self.open_text.take() {
            out.push(json!({"type": "TEXT_MESSAGE_END", "messageId": id, "timestamp": ts}));
        }
    }

    fn close_step(&mut self, out: &mut Vec<Value>, ts: u64) {
        if let Some(name) = self.open_step.take() {
            out.push(json!({"type": "STEP_FINISHED", "stepName": name, "timestamp": ts}));
        }
    }

    fn close_all(&mut self, out: &mut Vec<Value>, ts: u64) {
        self.close_text(out, ts);
        self.close_step(out, ts);
    }
}
