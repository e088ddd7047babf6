//! `RunEmitter`: the only way to put events of one run into one user's stream.

use std::sync::Arc;

use agentwire_core::{
    AgentCompleted, AgentErrorData, AgentMessageDelta, AgentStarted, AgentThinking, EventKind,
    EventSink, RunEvent, RunGrammar, ToolCompleted, ToolExecuting, UserContext,
};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use crate::FactoryError;
use crate::factory::RunGuard;

/// Publishes the events of one run to the stream of the user in its [`UserContext`] — and to no
/// other: the user is fixed when the emitter is made by
/// [`BridgeFactory::begin_run`](crate::BridgeFactory::begin_run), and nothing can change it.
///
/// Every event goes through the run grammar (SPEC §3); one that does not fit is refused with
/// [`FactoryError::Publish`] and not forwarded. Methods take `&self`, so concurrent tool calls can
/// share the emitter; events are published in the order the grammar accepted them.
///
/// Dropping an emitter whose run has not ended completes its open tool calls with `ok:false` and
/// ends the run with `agent_error {code:"agent_dropped"}`, so a client never waits forever.
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
    _guard: RunGuard,
}

/// How far [`RunEmitter::emit`] got without waiting.
enum Emitted<'a> {
    /// All the way: the event was published, or refused.
    Done(Result<u64, FactoryError>),
    /// Another step of the run holds the grammar.
    Contended(EventKind),
    /// The event fits the grammar (still locked) and the sink must wait to take it.
    MustWait(MutexGuard<'a, RunGrammar>, RunEvent),
}

/// What [`RunEmitter::offer`] did with an event, the grammar held.
enum Offered {
    /// Published, or refused by the grammar or the sink.
    Done(Result<u64, FactoryError>),
    /// It fits the grammar, and the sink must wait to take it: `publish` it.
    MustWait(RunEvent),
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
            _guard: guard,
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
    /// not fit the run, or the bridge's error when it cannot accept events.
    pub async fn emit(&self, kind: EventKind) -> Result<u64, FactoryError> {
        let slow = match self.emit_now(kind) {
            Emitted::Done(published) => {
                // A step that never has to wait still spends the task's cooperative budget, as
                // the lock's `.await` did: an agent that emits in a loop without awaiting
                // anything else hands the thread back every so often, so its timeout, its
                // cancellation and the other tasks of the thread (its connection's writer) run.
                tokio::task::coop::consume_budget().await;
                return published;
            }
            slow => slow,
        };
        // The rest in a boxed future: this future is nested in every step of every agent, and
        // one that held the event and the sink's future across its `.await` made each step's
        // future ~600 bytes, copied and touched on every event (docs/benchmarks.md).
        Box::pin(self.emit_slow(slow)).await
    }

    /// [`Self::emit`] without waiting: the grammar is uncontended (one step of the agent at a
    /// time, the usual case) and the sink takes the event at once ([`EventSink::publish_now`]).
    /// Otherwise returns what is left to do.
    fn emit_now(&self, kind: EventKind) -> Emitted<'_> {
        let Ok(mut grammar) = self.grammar.try_lock() else {
            return Emitted::Contended(kind);
        };
        match self.offer(&mut grammar, kind) {
            Offered::Done(published) => Emitted::Done(published),
            Offered::MustWait(event) => Emitted::MustWait(grammar, event),
        }
    }

    /// The rest of an [`Self::emit`] that has to wait: for the grammar, or for the sink. The
    /// grammar stays locked until the sink has the event, so the grammar order is the seq order.
    async fn emit_slow(&self, slow: Emitted<'_>) -> Result<u64, FactoryError> {
        match slow {
            Emitted::Done(published) => published,
            Emitted::MustWait(_grammar, event) => {
                Ok(self.sink.publish(&self.ctx.user_id, event).await?)
            }
            Emitted::Contended(kind) => {
                let mut grammar = self.grammar.lock().await;
                self.check_and_publish(&mut grammar, kind).await
            }
        }
    }

    /// Checks `kind` against the run's grammar (held by the caller) and publishes it, waiting
    /// for the sink when it has to.
    async fn check_and_publish(
        &self,
        grammar: &mut RunGrammar,
        kind: EventKind,
    ) -> Result<u64, FactoryError> {
        match self.offer(grammar, kind) {
            Offered::Done(published) => published,
            Offered::MustWait(event) => Ok(self.sink.publish(&self.ctx.user_id, event).await?),
        }
    }

    /// Checks `kind` against the run's grammar (held by the caller) and offers the event to the
    /// sink's [`EventSink::publish_now`]; never waits.
    fn offer(&self, grammar: &mut RunGrammar, kind: EventKind) -> Offered {
        if let Err(e) = grammar.check(&kind) {
            return Offered::Done(Err(agentwire_core::CoreError::from(e).into()));
        }
        let event = self.event(kind);
        match self.sink.publish_now(&self.ctx.user_id, &event) {
            Some(published) => Offered::Done(published.map_err(FactoryError::from)),
            None => Offered::MustWait(event),
        }
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
        let events = closing_events(&mut grammar, code, message.into(), self.elapsed_ms());
        let mut last = 0;
        for kind in events {
            last = self.check_and_publish(&mut grammar, kind).await?;
        }
        Ok(last)
    }
}

/// The events that end a run now: `agent_started` when it never started, `ok:false` completions
/// for its open tool calls, then `agent_error`.
fn closing_events(
    grammar: &mut RunGrammar,
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
        message,
        duration_ms,
    }));
    events
}

impl Drop for RunEmitter {
    fn drop(&mut self) {
        if self.grammar.get_mut().is_finished() {
            return;
        }
        let elapsed = self.elapsed_ms();
        let grammar = self.grammar.get_mut();
        let events = closing_events(
            grammar,
            "agent_dropped",
            "the agent stopped without ending its run".to_owned(),
            elapsed,
        );
        let (sink, ctx, agent) = (self.sink.clone(), self.ctx.clone(), self.agent.clone());
        tracing::warn!(run_id = %ctx.run_id, user_id = %ctx.user_id, "run dropped without a terminal event");
        let publish = async move {
            for kind in events {
                let event = RunEvent::now(
                    ctx.run_id.clone(),
                    ctx.thread_id.clone(),
                    agent.clone(),
                    kind,
                );
                if let Err(e) = sink.publish(&ctx.user_id, event).await {
                    tracing::error!(run_id = %ctx.run_id, error = %e, "could not end a dropped run");
                    break;
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(publish);
            }
            Err(_) => {
                tracing::error!(run_id = %self.ctx.run_id, "run dropped outside a tokio runtime; its end was not published")
            }
        }
    }
}
