//! How a run that did not end by itself is ended: its closing events, published by
//! [`RunEmitter::failed`] and, for a dropped emitter, by its drop guard — one path for both.

use std::sync::Arc;
use std::time::Duration;

use agentwire_core::{
    AgentErrorData, AgentStarted, CoreError, EventKind, EventSink, RunEvent, RunGrammar,
    ToolCompleted, UserContext,
};

use super::RunEmitter;
use crate::factory::RunGuard;
use crate::publish::RunPublisher;

/// `kind` as an event of the run `ctx` names, by `agent`, stamped now.
pub(super) fn run_event(ctx: &UserContext, agent: &Arc<str>, kind: EventKind) -> RunEvent {
    RunEvent::now(
        ctx.run_id.clone(),
        ctx.thread_id.clone(),
        agent.clone(),
        kind,
    )
}

/// The events that end a run now: `agent_started` when it never started, `ok:false` completions
/// for its open tool calls, then `agent_error`.
pub(super) fn closing_events(
    grammar: &RunGrammar,
    code: &str,
    message: String,
    duration_ms: u64,
) -> Vec<EventKind> {
    let mut events = Vec::new();
    if !grammar.is_started() {
        events.push(EventKind::AgentStarted(AgentStarted { input: None }));
    }
    for (call_id, tool) in grammar.open_calls() {
        events.push(EventKind::ToolCompleted(ToolCompleted {
            call_id,
            tool,
            ok: false,
            result: None,
            error: Some(format!("run ended before the tool finished ({code})")),
            duration_ms: 0,
        }));
    }
    events.push(EventKind::AgentError(AgentErrorData {
        code: code.to_owned(),
        message: cut(message, MAX_ERROR_MESSAGE),
        duration_ms,
    }));
    events
}

/// Publishes a run's closing events in order, waiting for each to be stored; an event the sink
/// refuses as unavailable is offered `tries` times in all, 100 ms apart and doubling. An event
/// stored but not confirmed durable (`NotReplicated`) is in the stream, so the rest follow it;
/// the first such error is returned once all are out. Returns the last seq.
pub(super) async fn publish_closing(
    publisher: &mut RunPublisher,
    sink: &dyn EventSink,
    ctx: &UserContext,
    agent: &Arc<str>,
    events: Vec<EventKind>,
    tries: u32,
) -> Result<u64, CoreError> {
    let (mut last, mut not_replicated) = (0, None);
    for kind in events {
        let mut pause = RETRY_PAUSE;
        let mut tried = 1;
        loop {
            let event = run_event(ctx, agent, kind.clone());
            match publisher.publish_stored(sink, &ctx.user_id, &event).await {
                Ok(seq) => last = seq,
                Err(e @ CoreError::NotReplicated(_)) => {
                    not_replicated.get_or_insert(e);
                }
                Err(CoreError::Unavailable(_)) if tried < tries => {
                    tried += 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    continue;
                }
                Err(e) => return Err(e),
            }
            break;
        }
    }
    not_replicated.map_or(Ok(last), Err)
}

/// The longest `agent_error.message` a run ends with, in bytes: the closing events stay far
/// below any allowed `limits.max_event_bytes` (at least 32 KiB), so a run can always end.
const MAX_ERROR_MESSAGE: usize = 4096;

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// How often a dropped run's closing events are offered to a bridge that refuses them, and the
/// first pause between tries (doubling).
const DROP_TRIES: u32 = 6;
const RETRY_PAUSE: Duration = Duration::from_millis(100);

impl Drop for RunEmitter {
    fn drop(&mut self) {
        let publisher = std::mem::take(self.publisher.get_mut());
        if publisher.grammar().is_finished() && publisher.unconfirmed() == 0 {
            return;
        }
        let closing = ClosingRun {
            publisher,
            sink: self.sink.clone(),
            ctx: self.ctx.clone(),
            agent: self.agent.clone(),
            duration_ms: self.elapsed_ms(),
            _guard: self.guard.take(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(closing.publish());
            }
            Err(_) => {
                tracing::error!(run_id = %self.ctx.run_id, "run dropped outside a tokio runtime; its end was not published")
            }
        }
    }
}

/// A dropped run ending itself on its own task; registered with the factory until done.
struct ClosingRun {
    publisher: RunPublisher,
    sink: Arc<dyn EventSink>,
    ctx: UserContext,
    agent: Arc<str>,
    duration_ms: u64,
    _guard: Option<RunGuard>,
}

impl ClosingRun {
    /// Waits for the run's queued events (a terminal one among them may have ended it), then
    /// publishes what closes the run from where the stream has it.
    async fn publish(mut self) {
        let (sink, user, run) = (&*self.sink, &self.ctx.user_id, &self.ctx.run_id);
        let _ = self.publisher.confirm(sink, user, run).await;
        if self.publisher.grammar().is_finished() {
            return;
        }
        tracing::warn!(run_id = %run, user_id = %user, "run dropped without a terminal event");
        let events = closing_events(
            self.publisher.grammar(),
            "agent_dropped",
            "the agent stopped without ending its run".to_owned(),
            self.duration_ms,
        );
        let closed = publish_closing(
            &mut self.publisher,
            sink,
            &self.ctx,
            &self.agent,
            events,
            DROP_TRIES,
        )
        .await;
        match closed {
            Ok(_) | Err(CoreError::NotReplicated(_)) => {}
            Err(e) => tracing::error!(run_id = %run, error = %e, "could not end a dropped run"),
        }
    }
}
