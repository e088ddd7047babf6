//! `RunEmitter`: the only way to put events of one run into one user's stream.

use std::sync::Arc;

use agentwire_core::{
    AgentCompleted, AgentErrorData, AgentMessageDelta, AgentStarted, AgentThinking, CoreError,
    EventKind, EventSink, NowOrLater, RunEvent, RunGrammar, ToolCompleted, ToolExecuting,
    UserContext,
};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::FactoryError;
use crate::factory::RunGuard;
use crate::publish::publish_in_grammar;

/// Publishes the events of one run to the stream of the user in its [`UserContext`] — and to no
/// other: the user is fixed when the emitter is made by
/// [`BridgeFactory::begin_run`](crate::BridgeFactory::begin_run), and nothing can change it.
///
/// Every event goes through the run grammar (docs/protocol.md); one that does not fit is refused with
/// [`FactoryError::Publish`] and not forwarded. Methods take `&self`, so concurrent tool calls can
/// share the emitter; events are published in the order the grammar accepted them.
///
/// An event the bridge refuses (its broker is unavailable) does not advance the run: the run can
/// still end once the bridge recovers. Dropping an emitter whose run has not ended completes its
/// open tool calls with `ok:false` and ends the run with `agent_error {code:"agent_dropped"}`
/// (retrying for a while when the bridge refuses), so a client never waits forever; the run
/// counts as in progress (for [`BridgeFactory::wait_idle`](crate::BridgeFactory::wait_idle))
/// until those events are published.
///
/// There is no public constructor; an emitter comes from the factory, for a `UserContext`:
///
/// ```
/// # use std::sync::Arc;
/// # use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
/// # use agentwire_bridge_factory::{BridgeFactory, RunLimits};
/// # use agentwire_core::{Configurable, UserContext, UserId};
/// # let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default()).unwrap();
/// let factory = BridgeFactory::new(Arc::new(bridge), RunLimits::default());
/// let ctx = UserContext::new_run(UserId::new("ada").unwrap(), None, None);
/// let emitter = factory.begin_run(ctx, "demo").unwrap();
/// # drop(emitter);
/// ```
///
/// and without one it does not compile:
///
/// ```compile_fail
/// # use std::sync::Arc;
/// # use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
/// # use agentwire_bridge_factory::{BridgeFactory, RunLimits};
/// # use agentwire_core::Configurable;
/// # let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default()).unwrap();
/// let factory = BridgeFactory::new(Arc::new(bridge), RunLimits::default());
/// let emitter = factory.begin_run("demo");
/// ```
pub struct RunEmitter {
    ctx: UserContext,
    agent: Arc<str>,
    sink: Arc<dyn EventSink>,
    grammar: Mutex<RunGrammar>,
    /// tokio's clock, so that a deadline made from it (the run's timeout) is on the same clock as
    /// the timer that enforces it, paused time included.
    started_at: tokio::time::Instant,
    cancel: CancellationToken,
    /// Taken by `Drop`, which keeps the run registered until its closing events are out.
    guard: Option<RunGuard>,
}

impl std::fmt::Debug for RunEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunEmitter")
            .field("ctx", &self.ctx)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl RunEmitter {
    pub(crate) fn new(
        ctx: UserContext,
        agent: Arc<str>,
        sink: Arc<dyn EventSink>,
        cancel: CancellationToken,
        guard: RunGuard,
    ) -> Self {
        Self {
            ctx,
            agent,
            sink,
            grammar: Mutex::new(RunGrammar::new()),
            started_at: tokio::time::Instant::now(),
            cancel,
            guard: Some(guard),
        }
    }

    /// The run's identity.
    pub fn context(&self) -> &UserContext {
        &self.ctx
    }

    /// The agent's name.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Fires when the run is cancelled (by its user, or at shutdown).
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Milliseconds since the emitter was made.
    pub fn elapsed_ms(&self) -> u64 {
        self.started_at.elapsed().as_millis() as u64
    }

    /// When the emitter was made (by `BridgeFactory::begin_run`): the run's start, on tokio's
    /// clock.
    pub fn started_at(&self) -> tokio::time::Instant {
        self.started_at
    }

    /// Publishes `kind` as the run's next event and returns its seq.
    ///
    /// # Errors
    /// [`FactoryError::Publish`] with [`agentwire_core::CoreError::Grammar`] when the event does
    /// not fit the run, or the bridge's error when it cannot accept events (the run is then
    /// unchanged).
    pub async fn emit(&self, kind: EventKind) -> Result<u64, FactoryError> {
        let Ok(mut grammar) = self.grammar.try_lock() else {
            // Another step of this run holds the grammar. Boxed, so that the future of every
            // `emit` (nested in every step of every agent) stays small.
            return Box::pin(self.emit_in_turn(kind)).await;
        };
        let published = match self.publish(&mut grammar, kind).into_now() {
            Ok(published) => published,
            // The grammar stays locked until the sink has the event.
            Err(later) => return Ok(later.await?),
        };
        drop(grammar);
        // A step that never waits still spends the task's cooperative budget, as the lock's
        // `.await` would: an agent that emits in a loop without awaiting anything else hands the
        // thread back every so often, so its timeout, its cancellation and the other tasks of
        // the thread (its connection's writer) run.
        tokio::task::coop::consume_budget().await;
        Ok(published?)
    }

    /// [`Self::emit`] once the grammar is free.
    async fn emit_in_turn(&self, kind: EventKind) -> Result<u64, FactoryError> {
        let mut grammar = self.grammar.lock().await;
        Ok(self.publish(&mut grammar, kind).await?)
    }

    /// `kind` as the run's next event, through [`publish_in_grammar`].
    fn publish<'a>(
        &'a self,
        grammar: &'a mut RunGrammar,
        kind: EventKind,
    ) -> NowOrLater<'a, Result<u64, CoreError>> {
        publish_in_grammar(grammar, &*self.sink, &self.ctx.user_id, &self.event(kind))
    }

    /// `kind` as this run's event, stamped now.
    fn event(&self, kind: EventKind) -> RunEvent {
        RunEvent::now(
            self.ctx.run_id.clone(),
            self.ctx.thread_id.clone(),
            self.agent.clone(),
            kind,
        )
    }

    /// `agent_started`.
    ///
    /// # Errors
    /// As [`Self::emit`].
    pub async fn started(&self, input: Option<String>) -> Result<u64, FactoryError> {
        self.emit(EventKind::AgentStarted(AgentStarted { input }))
            .await
    }

    /// `agent_thinking`.
    ///
    /// # Errors
    /// As [`Self::emit`].
    pub async fn thinking(
        &self,
        thought: impl Into<String>,
        step: Option<u32>,
    ) -> Result<u64, FactoryError> {
        self.emit(EventKind::AgentThinking(AgentThinking {
            thought: thought.into(),
            step,
        }))
        .await
    }

    /// `tool_executing`.
    ///
    /// # Errors
    /// As [`Self::emit`]; a reused `call_id` is out of grammar.
    pub async fn tool_executing(
        &self,
        call_id: &str,
        tool: &str,
        args: Value,
    ) -> Result<u64, FactoryError> {
        self.emit(EventKind::ToolExecuting(ToolExecuting {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            args,
        }))
        .await
    }

    /// `tool_completed`, with the tool's result or its error.
    ///
    /// # Errors
    /// As [`Self::emit`]; a `call_id` without an open call is out of grammar.
    pub async fn tool_completed(
        &self,
        call_id: &str,
        tool: &str,
        outcome: Result<Value, String>,
        duration_ms: u64,
    ) -> Result<u64, FactoryError> {
        let (ok, result, error) = match outcome {
            Ok(v) => (true, Some(v), None),
            Err(e) => (false, None, Some(e)),
        };
        self.emit(EventKind::ToolCompleted(ToolCompleted {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            ok,
            result,
            error,
            duration_ms,
        }))
        .await
    }

    /// `agent_message_delta`.
    ///
    /// # Errors
    /// As [`Self::emit`].
    pub async fn message_delta(
        &self,
        message_id: &str,
        delta: impl Into<String>,
    ) -> Result<u64, FactoryError> {
        self.emit(EventKind::AgentMessageDelta(AgentMessageDelta {
            message_id: message_id.to_owned(),
            delta: delta.into(),
        }))
        .await
    }

    /// `agent_completed` (terminal).
    ///
    /// # Errors
    /// As [`Self::emit`]; open tool calls make it out of grammar.
    pub async fn completed(&self, result: Value) -> Result<u64, FactoryError> {
        self.emit(EventKind::AgentCompleted(AgentCompleted {
            result,
            duration_ms: self.elapsed_ms(),
            usage: None,
            model: None,
        }))
        .await
    }

    /// Ends the run with `agent_error {code, message}` (terminal), first completing any open tool
    /// calls with `ok:false`.
    ///
    /// # Errors
    /// As [`Self::emit`]; after the terminal event, out of grammar.
    pub async fn failed(
        &self,
        code: &str,
        message: impl Into<String>,
    ) -> Result<u64, FactoryError> {
        let mut grammar = self.grammar.lock().await;
        let events = closing_events(&grammar, code, message.into(), self.elapsed_ms());
        let mut last = 0;
        for kind in events {
            last = self.publish(&mut grammar, kind).await?;
        }
        Ok(last)
    }
}

/// The events that end a run now: `agent_started` when it never started, `ok:false` completions
/// for its open tool calls, then `agent_error`.
fn closing_events(
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

/// The longest `agent_error.message` a run ends with, in bytes: the closing events stay far
/// below any allowed `limits.max_event_bytes` (at least 32 KiB), so a run can always end.
pub(crate) const MAX_ERROR_MESSAGE: usize = 4096;

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
const DROP_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl Drop for RunEmitter {
    fn drop(&mut self) {
        let grammar = std::mem::take(self.grammar.get_mut());
        if grammar.is_finished() {
            return;
        }
        let events = closing_events(
            &grammar,
            "agent_dropped",
            "the agent stopped without ending its run".to_owned(),
            self.elapsed_ms(),
        );
        tracing::warn!(run_id = %self.ctx.run_id, user_id = %self.ctx.user_id, "run dropped without a terminal event");
        let closing = ClosingRun {
            grammar,
            sink: self.sink.clone(),
            ctx: self.ctx.clone(),
            agent: self.agent.clone(),
            _guard: self.guard.take(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(closing.publish(events));
            }
            Err(_) => {
                tracing::error!(run_id = %self.ctx.run_id, "run dropped outside a tokio runtime; its end was not published")
            }
        }
    }
}

/// A dropped run ending itself on its own task; registered with the factory until done.
struct ClosingRun {
    grammar: RunGrammar,
    sink: Arc<dyn EventSink>,
    ctx: UserContext,
    agent: Arc<str>,
    _guard: Option<RunGuard>,
}

impl ClosingRun {
    async fn publish(mut self, events: Vec<EventKind>) {
        let mut pause = DROP_RETRY_PAUSE;
        let mut tries = 0;
        let mut events = events.into_iter().peekable();
        while let Some(kind) = events.peek() {
            let event = RunEvent::now(
                self.ctx.run_id.clone(),
                self.ctx.thread_id.clone(),
                self.agent.clone(),
                kind.clone(),
            );
            let user = &self.ctx.user_id;
            match publish_in_grammar(&mut self.grammar, &*self.sink, user, &event).await {
                Ok(_) => {
                    events.next();
                }
                Err(CoreError::Unavailable(_)) if tries + 1 < DROP_TRIES => {
                    tries += 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::error!(run_id = %self.ctx.run_id, error = %e, "could not end a dropped run");
                    return;
                }
            }
        }
    }
}
