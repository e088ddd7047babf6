//! `POST /agui/{agent}`: the AG-UI protocol. Takes a `RunAgentInput`, runs the agent for the
//! authenticated user and answers `text/event-stream` with the run mapped to AG-UI events
//! (see `docs/ag-ui.md`).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

use agentwire_bridge::{Batch, ResumeFrom};
use agentwire_core::{
    ErrorCode, EventKind, Frame, RunId, StreamEvent, ThreadId, UserContext, UserId,
};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::stream::{Attached, KEEPALIVE, attach, resume_point};
use super::{JsonBody, error, refuse_if_draining};
use crate::{ApiError, AppState, AuthenticatedUser};

/// The parts of AG-UI's `RunAgentInput` agentwire uses; other fields (`tools`, `state`,
/// `context`, `forwardedProps`) are accepted and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunAgentInput {
    thread_id: String,
    run_id: String,
    #[serde(default)]
    messages: Vec<Value>,
}

/// The text of the last `user` message: its string content, or its text parts joined.
fn last_user_text(messages: &[Value]) -> Option<String> {
    let message = messages.iter().rev().find(|m| m["role"] == "user")?;
    match &message["content"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter(|p| p["type"] == "text")
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
    .filter(|s| !s.trim().is_empty())
}

/// Starts `agent` for the user with the last user message and streams the run as AG-UI events.
pub(crate) async fn run(
    State(state): State<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    headers: HeaderMap,
    Path(agent): Path<String>,
    body: Result<JsonBody<RunAgentInput>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(input) = body?;
    refuse_if_draining(&state)?;
    let content = last_user_text(&input.messages).ok_or_else(|| {
        error(
            ErrorCode::InvalidField,
            "messages must hold a user message with text content",
        )
    })?;
    if content.len() > agentwire_core::MAX_CONTENT_LEN {
        return Err(error(
            ErrorCode::InvalidField,
            "the user message is too long",
        ));
    }
    let resume = resume_point(&headers, None, None)?;
    if let Some(from) = resume {
        return resume_run(&state, &user, input, from.last_seq).await;
    }
    // The AG-UI ids are kept for the AG-UI events; agentwire uses them too when they are valid
    // agentwire ids, so `/ws` and `/v1/events` show the same run (and a resume can find it).
    let thread_id =
        ThreadId::new(input.thread_id.as_str()).unwrap_or_else(|_| ThreadId::generate());
    let factory = state.ready().executor().factory();
    let run_id = RunId::new(input.run_id.as_str())
        .ok()
        .filter(|r| !factory.owns_run(&user, r))
        .unwrap_or_else(RunId::generate);
    let ctx = UserContext {
        user_id: user.clone(),
        thread_id,
        run_id: run_id.clone(),
        request_id: None,
    };
    let prepared = state
        .ready()
        .executor()
        .prepare(ctx, &agent)
        .map_err(|e| error(e.code(), e.to_string()))?;
    // Attach before the run publishes anything, so no event of it is missed.
    let (guard, _, _) = attach(&state, &user, None).await?;
    prepared.spawn(content);
    let mapper = AguiMapper::new(input.thread_id, input.run_id);
    Ok(sse(agui_events(guard, run_id, mapper)))
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive"))
        .into_response()
}

/// A reconnect (`Last-Event-ID: <seq>` with the same `RunAgentInput`): no new run starts; the
/// AG-UI events of the run after that seq follow, then live ones. The mapper's state is rebuilt
/// from the run's events up to the seq, so open steps and messages continue correctly.
async fn resume_run(
    state: &AppState,
    user: &UserId,
    input: RunAgentInput,
    last_seq: u64,
) -> Result<Response, ApiError> {
    let not_found = || {
        error(
            ErrorCode::RunNotFound,
            format!(
                "no run {} of yours is in the stream's history to resume",
                input.run_id
            ),
        )
    };
    let run_id = RunId::new(input.run_id.as_str()).map_err(|_| not_found())?;
    let limit = usize::try_from(last_seq).unwrap_or(usize::MAX);
    let page = state
        .ready()
        .bridge()
        .history_after(user, 0, None, limit)
        .await
        .map_err(super::bridge_error)?;
    let mut mapper = AguiMapper::new(input.thread_id.clone(), input.run_id.clone());
    let mut started = false;
    for frame in page.frames.iter().filter(|f| f.seq() <= last_seq) {
        let Ok(event) = serde_json::from_slice::<StreamEvent>(frame.bytes()) else {
            continue;
        };
        if event.event.run_id == run_id {
            started |= matches!(event.event.kind, EventKind::AgentStarted(_));
            mapper.map(&event);
        }
    }
    if !started {
        return Err(not_found());
    }
    if mapper.finished {
        // The client saw the whole run: an empty stream that ends at once.
        return Ok(sse(futures_util::stream::empty()));
    }
    let from = ResumeFrom {
        last_seq,
        epoch: None,
    };
    let (guard, _, _) = attach(state, user, Some(from)).await?;
    Ok(sse(agui_events(guard, run_id, mapper)))
}

struct Pump {
    guard: Attached,
    run_id: RunId,
    mapper: AguiMapper,
    pending: VecDeque<Event>,
    batch: Vec<Frame>,
    done: bool,
}

fn agui_events(
    guard: Attached,
    run_id: RunId,
    mapper: AguiMapper,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let pump = Pump {
        guard,
        run_id,
        mapper,
        pending: VecDeque::new(),
        batch: Vec::with_capacity(64),
        done: false,
    };
    futures_util::stream::unfold(pump, |mut p| async move {
        loop {
            if let Some(event) = p.pending.pop_front() {
                return Some((Ok(event), p));
            }
            if p.done {
                return None;
            }
            match p.guard.queue.next_batch(&mut p.batch, 64).await {
                Batch::Frames => {
                    for frame in std::mem::take(&mut p.batch) {
                        if p.done || frame.seq() == 0 {
                            continue;
                        }
                        let Ok(event) = serde_json::from_slice::<StreamEvent>(frame.bytes()) else {
                            continue;
                        };
                        if event.event.run_id != p.run_id {
                            continue;
                        }
                        p.done = event.event.kind.is_terminal();
                        let mapped = p.mapper.map(&event);
                        push_group(&mut p.pending, mapped, event.seq);
                    }
                }
                Batch::Close(_, reason) => {
                    let mapped = p.mapper.interrupted(&format!(
                        "the event stream was closed before the run ended: {reason}"
                    ));
                    push_group(&mut p.pending, mapped, 0);
                    p.done = true;
                }
            }
        }
    })
}

/// Queues the AG-UI events made from one agentwire event; the last carries `id:` = its seq, so a
/// client that reconnects with `Last-Event-ID` never skips part of a group.
fn push_group(pending: &mut VecDeque<Event>, mapped: Vec<Value>, seq: u64) {
    let n = mapped.len();
    for (i, value) in mapped.into_iter().enumerate() {
        let event = Event::default().data(value.to_string());
        pending.push_back(if i + 1 == n && seq > 0 {
            event.id(seq.to_string())
        } else {
            event
        });
    }
}

/// Maps one run's agentwire events to AG-UI events (the table in `docs/ag-ui.md`).
///
/// It keeps what AG-UI needs closed before the run ends: the open thinking step and the open
/// text message. A text message is closed before a tool call or a new step starts; text that
/// follows continues as a new message (`{message_id}.{n}`).
#[derive(Debug)]
pub(crate) struct AguiMapper {
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
    pub(crate) fn new(thread_id: String, run_id: String) -> Self {
        Self {
            thread_id,
            run_id,
            open_step: None,
            open_text: None,
            segments: HashMap::new(),
            finished: false,
        }
    }

    /// The AG-UI events for `event` (none after the run ended).
    pub(crate) fn map(&mut self, event: &StreamEvent) -> Vec<Value> {
        if self.finished {
            return Vec::new();
        }
        let ts = event.event.ts;
        let mut out = Vec::new();
        match &event.event.kind {
            EventKind::AgentStarted(_) => out.push(json!({
                "type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id,
                "timestamp": ts,
            })),
            EventKind::AgentThinking(t) => {
                self.close_text(&mut out, ts);
                self.close_step(&mut out, ts);
                let name = match t.step {
                    Some(n) => format!("{n}. {}", t.thought),
                    None => t.thought.clone(),
                };
                out.push(json!({"type": "STEP_STARTED", "stepName": name, "timestamp": ts}));
                self.open_step = Some(name);
            }
            EventKind::ToolExecuting(t) => {
                self.close_text(&mut out, ts);
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
            EventKind::ToolCompleted(t) => {
                self.close_text(&mut out, ts);
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
            EventKind::AgentMessageDelta(d) => {
                if d.delta.is_empty() {
                    return out;
                }
                let current = match &self.open_text {
                    Some((source, id)) if *source == d.message_id => id.clone(),
                    _ => {
                        self.close_text(&mut out, ts);
                        let n = self.segments.entry(d.message_id.clone()).or_insert(0);
                        *n += 1;
                        let id = if *n == 1 {
                            d.message_id.clone()
                        } else {
                            format!("{}.{n}", d.message_id)
                        };
                        out.push(json!({
                            "type": "TEXT_MESSAGE_START", "messageId": id, "role": "assistant",
                            "timestamp": ts,
                        }));
                        self.open_text = Some((d.message_id.clone(), id.clone()));
                        id
                    }
                };
                out.push(json!({
                    "type": "TEXT_MESSAGE_CONTENT", "messageId": current, "delta": d.delta,
                    "timestamp": ts,
                }));
            }
            EventKind::AgentCompleted(c) => {
                self.close_all(&mut out, ts);
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
            EventKind::AgentError(e) => {
                self.close_all(&mut out, ts);
                out.push(json!({
                    "type": "RUN_ERROR", "message": e.message, "code": e.code, "timestamp": ts,
                }));
                self.finished = true;
            }
            _ => {}
        }
        out
    }

    /// Ends the AG-UI run with `RUN_ERROR` when the stream closed before the run did.
    pub(crate) fn interrupted(&mut self, message: &str) -> Vec<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use agentwire_core::{RunEvent, ThreadId};

    fn ev(seq: u64, t: &str, data: Value) -> StreamEvent {
        StreamEvent {
            seq,
            event: RunEvent::now(
                RunId::new("r_1").unwrap(),
                ThreadId::new("t_1").unwrap(),
                "demo".into(),
                EventKind::from_parts(t, data).unwrap(),
            ),
        }
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn maps_a_run_and_closes_what_is_open_before_it_ends() {
        let mut m = AguiMapper::new("thread".into(), "run".into());
        let mut all = Vec::new();
        for e in [
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
            ev(7, "agent_completed", json!({"result": {"answer": "a b"}})),
            ev(8, "agent_thinking", json!({"thought": "late"})),
        ] {
            all.extend(m.map(&e));
        }
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
    }

    #[test]
    fn an_error_or_a_closed_stream_ends_with_run_error() {
        let mut m = AguiMapper::new("t".into(), "r".into());
        m.map(&ev(1, "agent_started", json!({})));
        let out = m.map(&ev(
            2,
            "agent_error",
            json!({"code": "cancelled", "message": "stop"}),
        ));
        assert_eq!(types(&out), ["RUN_ERROR"]);
        assert_eq!(out[0]["code"], "cancelled");
        assert!(m.interrupted("gone").is_empty());

        let mut m = AguiMapper::new("t".into(), "r".into());
        m.map(&ev(1, "agent_started", json!({})));
        m.map(&ev(2, "agent_thinking", json!({"thought": "x"})));
        assert_eq!(
            types(&m.interrupted("gone")),
            ["STEP_FINISHED", "RUN_ERROR"]
        );
    }

    #[test]
    fn takes_the_last_user_message() {
        let messages = vec![
            json!({"id": "1", "role": "user", "content": "first"}),
            json!({"id": "2", "role": "assistant", "content": "ok"}),
            json!({"id": "3", "role": "user", "content": [{"type": "text", "text": "second"}]}),
        ];
        assert_eq!(last_user_text(&messages).as_deref(), Some("second"));
        assert_eq!(last_user_text(&messages[1..2]), None);
    }
}
