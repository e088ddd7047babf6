//! The Vercel AI SDK's UI message stream (`UIMessageChunk`s of `ai` 6, what `useChat` and
//! `readUIMessageStream` consume) for one run: the same agentwire events the AG-UI mapper
//! reads, mapped to `start`, `text-*`, `reasoning-*`, `tool-*`, `finish-step`, `finish`.

use std::collections::{HashMap, HashSet};

use agentwire_core::{
    AgentCompleted, AgentErrorData, AgentMessageDelta, AgentThinking, EventKind, StreamEvent,
    ToolCompleted, ToolExecuting,
};
use serde_json::{Value, json};

/// Maps one run's agentwire events to AI SDK UI message stream chunks (JSON objects).
///
/// One assistant message per run (`start {messageId: <run_id>}`). Text and reasoning parts are
/// opened and closed as the AI SDK requires (`text-start` before `text-delta`, `text-end`
/// before a tool call, …). agentwire's tools run on the server and are not declared in the
/// front end, so tool calls are dynamic tools (`dynamic: true`), ids `<run_id>.<call_id>`. A
/// step ends when text or reasoning follows a tool result (the model is called again with the
/// results). After `finish` (or `error` / `abort`) nothing more is mapped.
///
/// Like the AG-UI mapper, the output depends only on the events mapped, so mapping a run's
/// events again from its first one gives the same chunks.
#[derive(Debug, Clone)]
pub struct AiSdkMapper {
    run_id: String,
    started: bool,
    /// (agentwire message id, part id) of the open text part.
    open_text: Option<(String, String)>,
    /// (the thought's step, part id) of the open reasoning part.
    open_reasoning: Option<(Option<u32>, String)>,
    segments: HashMap<String, u32>,
    reasoning_parts: u32,
    announced: HashSet<String>,
    after_tool_output: bool,
    any_text: bool,
    finished: bool,
}

impl AiSdkMapper {
    /// A mapper for the run `run_id` (the assistant message's id).
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            started: false,
            open_text: None,
            open_reasoning: None,
            segments: HashMap::new(),
            reasoning_parts: 0,
            announced: HashSet::new(),
            after_tool_output: false,
            any_text: false,
            finished: false,
        }
    }

    /// Whether the run's last chunk has been produced.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The chunks for `event` (none after the run ended).
    pub fn map(&mut self, event: &StreamEvent) -> Vec<Value> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if !self.started {
            // The run's first event held (normally `agent_started`) opens the message.
            out.push(json!({"type": "start", "messageId": self.run_id}));
            out.push(json!({"type": "start-step"}));
            self.started = true;
        }
        match &event.event.kind {
            EventKind::AgentThinking(t) => self.thinking(t, &mut out),
            EventKind::ToolExecuting(t) => self.tool_executing(t, &mut out),
            EventKind::ToolCompleted(t) => self.tool_completed(t, &mut out),
            EventKind::AgentMessageDelta(d) => self.delta(d, &mut out),
            EventKind::AgentCompleted(c) => self.completed(c, &mut out),
            EventKind::AgentError(e) => self.error(e, &mut out),
            _ => {}
        }
        out
    }

    /// Starts a new step when the model answers again after tool results.
    fn next_step(&mut self, out: &mut Vec<Value>) {
        if std::mem::take(&mut self.after_tool_output) {
            self.close_all(out);
            out.push(json!({"type": "finish-step"}));
            out.push(json!({"type": "start-step"}));
        }
    }

    fn thinking(&mut self, t: &AgentThinking, out: &mut Vec<Value>) {
        self.next_step(out);
        let id = match &self.open_reasoning {
            Some((step, id)) if step.is_some() && *step == t.step => id.clone(),
            _ => {
                self.close_all(out);
                self.reasoning_parts += 1;
                let id = format!("r{}", self.reasoning_parts);
                out.push(json!({"type": "reasoning-start", "id": id}));
                self.open_reasoning = Some((t.step, id.clone()));
                id
            }
        };
        out.push(json!({"type": "reasoning-delta", "id": id, "delta": t.thought}));
    }

    fn tool_executing(&mut self, t: &ToolExecuting, out: &mut Vec<Value>) {
        self.close_all(out);
        let id = self.tool_call_id(&t.call_id);
        self.announced.insert(id.clone());
        out.push(json!({
            "type": "tool-input-available", "toolCallId": id, "toolName": t.tool,
            "input": t.args, "dynamic": true,
        }));
    }

    fn tool_completed(&mut self, t: &ToolCompleted, out: &mut Vec<Value>) {
        self.close_all(out);
        let id = self.tool_call_id(&t.call_id);
        if self.announced.insert(id.clone()) {
            // Its `tool_executing` is not held (older than the history): the AI SDK needs the
            // call before its output.
            out.push(json!({
                "type": "tool-input-available", "toolCallId": id, "toolName": t.tool,
                "input": Value::Null, "dynamic": true,
            }));
        }
        if t.ok {
            out.push(json!({
                "type": "tool-output-available", "toolCallId": id,
                "output": t.result.clone().unwrap_or(Value::Null), "dynamic": true,
            }));
        } else {
            out.push(json!({
                "type": "tool-output-error", "toolCallId": id,
                "errorText": t.error.clone().unwrap_or_else(|| "the tool failed".into()),
                "dynamic": true,
            }));
        }
        self.after_tool_output = true;
    }

    fn delta(&mut self, d: &AgentMessageDelta, out: &mut Vec<Value>) {
        if d.delta.is_empty() {
            return;
        }
        self.next_step(out);
        let id = match &self.open_text {
            Some((source, id)) if *source == d.message_id => id.clone(),
            _ => self.start_text(&d.message_id, out),
        };
        out.push(json!({"type": "text-delta", "id": id, "delta": d.delta}));
        self.any_text = true;
    }

    /// Opens a text part for agentwire message `source`: its id, or `{source}.{n}` for the n-th
    /// part of a message a tool call or reasoning interrupted.
    fn start_text(&mut self, source: &str, out: &mut Vec<Value>) -> String {
        self.close_all(out);
        let n = self.segments.entry(source.to_owned()).or_insert(0);
        *n += 1;
        let id = if *n == 1 {
            source.to_owned()
        } else {
            format!("{source}.{n}")
        };
        out.push(json!({"type": "text-start", "id": id}));
        self.open_text = Some((source.to_owned(), id.clone()));
        id
    }

    fn completed(&mut self, c: &AgentCompleted, out: &mut Vec<Value>) {
        self.close_all(out);
        // An agent that streamed no text (echo, a publisher's run): its result is the answer.
        if let Value::String(text) = &c.result
            && !self.any_text
            && !text.is_empty()
        {
            let id = format!("{}.result", self.run_id);
            out.push(json!({"type": "text-start", "id": id}));
            out.push(json!({"type": "text-delta", "id": id, "delta": text}));
            out.push(json!({"type": "text-end", "id": id}));
        }
        out.push(json!({"type": "finish-step"}));
        out.push(json!({"type": "finish", "finishReason": "stop"}));
        self.finished = true;
    }

    fn error(&mut self, e: &AgentErrorData, out: &mut Vec<Value>) {
        self.close_all(out);
        out.push(json!({"type": "finish-step"}));
        if e.code == "cancelled" {
            out.push(json!({"type": "abort", "reason": e.message}));
        } else {
            out.push(json!({"type": "error", "errorText": format!("{}: {}", e.code, e.message)}));
        }
        self.finished = true;
    }

    fn tool_call_id(&self, call_id: &str) -> String {
        format!("{}.{call_id}", self.run_id)
    }

    fn close_all(&mut self, out: &mut Vec<Value>) {
        if let Some((_, id)) = self.open_text.take() {
            out.push(json!({"type": "text-end", "id": id}));
        }
        if let Some((_, id)) = self.open_reasoning.take() {
            out.push(json!({"type": "reasoning-end", "id": id}));
        }
    }
}

#[cfg(test)]
mod tests {
    use agentwire_core::{RunEvent, RunId, ThreadId};

    use super::*;

    fn event(seq: u64, kind: &str, data: Value) -> StreamEvent {
        StreamEvent {
            seq,
            event: RunEvent::now(
                RunId::new("r1").unwrap(),
                ThreadId::new("t1").unwrap(),
                "assistant".into(),
                EventKind::from_parts(kind, data).unwrap(),
            ),
        }
    }

    fn types(chunks: &[Value]) -> Vec<&str> {
        chunks.iter().map(|c| c["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn maps_a_run_with_a_tool_call_and_an_answer() {
        let mut m = AiSdkMapper::new("r1");
        let mut all = Vec::new();
        for (seq, kind, data) in [
            (1, "agent_started", json!({"input": "6*7?"})),
            (
                2,
                "agent_thinking",
                json!({"thought": "let me ", "step": 1}),
            ),
            (
                3,
                "agent_thinking",
                json!({"thought": "compute", "step": 1}),
            ),
            (
                4,
                "tool_executing",
                json!({"call_id": "c1", "tool": "calculator", "args": {"expression": "6*7"}}),
            ),
            (
                5,
                "tool_completed",
                json!({"call_id": "c1", "tool": "calculator", "ok": true, "result": 42}),
            ),
            (
                6,
                "agent_message_delta",
                json!({"message_id": "m_2", "delta": "It is "}),
            ),
            (
                7,
                "agent_message_delta",
                json!({"message_id": "m_2", "delta": ""}),
            ),
            (
                8,
                "agent_message_delta",
                json!({"message_id": "m_2", "delta": "42."}),
            ),
            (9, "agent_completed", json!({"result": "It is 42."})),
        ] {
            all.extend(m.map(&event(seq, kind, data)));
        }
        assert_eq!(
            types(&all),
            [
                "start",
                "start-step",
                "reasoning-start",
                "reasoning-delta",
                "reasoning-delta",
                "reasoning-end",
                "tool-input-available",
                "tool-output-available",
                "finish-step",
                "start-step",
                "text-start",
                "text-delta",
                "text-delta",
                "text-end",
                "finish-step",
                "finish",
            ]
        );
        assert_eq!(all[0]["messageId"], "r1");
        assert_eq!(all[6]["toolCallId"], "r1.c1");
        assert_eq!(all[6]["input"]["expression"], "6*7");
        assert_eq!(all[6]["dynamic"], true);
        assert_eq!(all[7]["output"], 42);
        assert_eq!(all[12]["delta"], "42.");
        assert!(m.is_finished());
        assert!(
            m.map(&event(10, "agent_completed", json!({"result": 1})))
                .is_empty()
        );
    }

    #[test]
    fn a_run_without_text_answers_with_its_result_and_errors_end_it() {
        let mut m = AiSdkMapper::new("r1");
        m.map(&event(1, "agent_started", json!({})));
        let done = m.map(&event(2, "agent_completed", json!({"result": "hello"})));
        assert_eq!(
            types(&done),
            [
                "text-start",
                "text-delta",
                "text-end",
                "finish-step",
                "finish"
            ]
        );
        assert_eq!(done[1]["delta"], "hello");

        let mut m = AiSdkMapper::new("r2");
        let failed = m.map(&event(
            1,
            "tool_completed",
            json!({"call_id": "c", "tool": "t", "ok": false, "error": "boom"}),
        ));
        assert_eq!(
            types(&failed),
            [
                "start",
                "start-step",
                "tool-input-available",
                "tool-output-error"
            ]
        );
        let error = m.map(&event(
            2,
            "agent_error",
            json!({"code": "timeout", "message": "too slow"}),
        ));
        assert_eq!(types(&error), ["finish-step", "error"]);
        assert_eq!(error[1]["errorText"], "timeout: too slow");
        let mut m = AiSdkMapper::new("r3");
        let cancelled = m.map(&event(
            1,
            "agent_error",
            json!({"code": "cancelled", "message": "stopped"}),
        ));
        assert_eq!(types(&cancelled)[2..], ["finish-step", "abort"]);
    }
}
