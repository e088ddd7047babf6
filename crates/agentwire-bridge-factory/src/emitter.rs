//! `RunEmitter`: the only way to put events of one run into one user's stream.

use std::sync::Arc;

use agentwire_core::{
    AgentCompleted, AgentMessageDelta, AgentStarted, AgentThinking, EventKind, EventSink, RunEvent,
    ToolCompleted, ToolExecuting, UserContext,
};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::FactoryError;
use crate::factory::RunGuard;
use crate::publish::{MAX_UNCONFIRMED, Published, RunPublisher};

mod closing;

use closing::{closing_events, publish_closing, run_event};

/// Publishes the events of one run to the stream of the user in its [`UserContext`] — and to no
/// other: the user is fixed when the emitter is made by
/// [`BridgeFactory::begin_run`](crate::BridgeFactory::begin_run), and nothing can change it.
///
/// Every event goes through the run grammar (docs/protocol.md); one that does not fit is refused with
/// [`FactoryError::Publish`] and not forwarded. Methods take `&self`, so concurrent tool calls can
/// share the emitter; events are published in the order the grammar accepted them.
///
/// **When `emit` returns.** A sink that stores without waiting (the memory broker) has stored the
/// event: [`Emitted::Stored`] with its seq. A sink that has to wait (the Redis broker) has queued
/// it behind the run's earlier events — its place in the stream is fixed — and the run goes on
/// while it is written: [`Emitted::Queued`]. So a run's events share the store's round trips
/// instead of waiting for one each. No event reaches a client before it is stored, and the run's
/// terminal event (`completed`, `failed`) returns only once it and every earlier event are stored
/// ([`Self::confirm`] waits for that at any point).
///
/// An event the bridge refuses (its broker is unavailable) does not advance the run: the run can
/// still end once the bridge recovers. When a queued event turns out not stored, the sink drops
/// every later event of the run as well (its fail-stop rule), and the next `emit` (or `confirm`)
/// returns that error with the run rolled back to what the stream holds: the events a client
/// sees of a run never have a hole. Dropping an emitter whose run has not ended completes its
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
    publisher: Mutex<RunPublisher>,
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
            publisher: Mutex::new(RunPublisher::default()),
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

    /// Publishes `kind` as the run's next event: stored, with its seq, or queued behind the run's
    /// earlier events (see [when `emit` returns](Self#when-emit-returns)). A terminal event
    /// returns once it is stored.
    ///
    /// # Errors
    /// [`FactoryError::Publish`] with [`agentwire_core::CoreError::Grammar`] when the event does
    /// not fit the run, or the bridge's error when it cannot accept events — or when an event
    /// queued earlier turned out not stored (the run is then back where the stream has it).
    pub async fn emit(&self, kind: EventKind) -> Result<Emitted, FactoryError> {
        let Ok(mut publisher) = self.publisher.try_lock() else {
            // Another step of this run is publishing. Boxed, so that the future of every `emit`
            // (nested in every step of every agent) stays small.
            return Box::pin(self.emit_in_turn(kind)).await;
        };
        let emitted = match self.queue(&mut publisher, kind)? {
            Some(emitted) => emitted,
            // The publisher stays locked until the run's events are stored.
            None => return Box::pin(self.confirm_locked(&mut publisher)).await,
        };
        drop(publisher);
        // A step that never waits still spends the task's cooperative budget, as the lock's
        // `.await` would: an agent that emits in a loop without awaiting anything else hands the
        // thread back every so often, so its timeout, its cancellation and the other tasks of
        // the thread (its connection's writer) run.
        tokio::task::coop::consume_budget().await;
        Ok(emitted)
    }

    /// [`Self::emit`] once the publisher is free.
    async fn emit_in_turn(&self, kind: EventKind) -> Result<Emitted, FactoryError> {
        let mut publisher = self.publisher.lock().await;
        match self.queue(&mut publisher, kind)? {
            Some(emitted) => Ok(emitted),
            None => self.confirm_locked(&mut publisher).await,
        }
    }

    /// Hands `kind` to the sink as the run's next event; `None` when the caller must wait until
    /// the run's events are stored: a terminal event, or more than [`MAX_UNCONFIRMED`] pending.
    fn queue(
        &self,
        publisher: &mut RunPublisher,
        kind: EventKind,
    ) -> Result<Option<Emitted>, FactoryError> {
        let terminal = kind.is_terminal();
        let event = self.event(kind);
        match publisher.publish(&*self.sink, &self.ctx.user_id, &event)? {
            Published::Stored(seq) => Ok(Some(Emitted::Stored(seq))),
            Published::Queued if !terminal && publisher.unconfirmed() <= MAX_UNCONFIRMED => {
                Ok(Some(Emitted::Queued))
            }
            Published::Queued => Ok(None),
        }
    }

    /// Waits until every event emitted so far is stored; the seq of the last one (`None` when
    /// no event was pending).
    ///
    /// # Errors
    /// The error of the first event that was not stored; the run is rolled back to before it
    /// (the stream holds nothing of the run after it), and can end with [`Self::failed`].
    pub async fn confirm(&self) -> Result<Option<u64>, FactoryError> {
        let mut publisher = self.publisher.lock().await;
        let run = &self.ctx.run_id;
        Ok(publisher
            .confirm(&*self.sink, &self.ctx.user_id, run)
            .await?)
    }

    /// Waits, holding the publisher, until the run's events are stored; the newest is stored
    /// with the seq returned.
    async fn confirm_locked(&self, publisher: &mut RunPublisher) -> Result<Emitted, FactoryError> {
        let run = &self.ctx.run_id;
        match publisher
            .confirm(&*self.sink, &self.ctx.user_id, run)
            .await?
        {
            Some(seq) => Ok(Emitted::Stored(seq)),
            None => Ok(Emitted::Queued),
        }
    }

    /// `kind` as this run's event, stamped now.
    fn event(&self, kind: EventKind) -> RunEvent {
        run_event(&self.ctx, &self.agent, kind)
    }

    /// `agent_started`.
    ///
    /// # Errors
    /// As [`Self::emit`].
    pub async fn started(&self, input: Option<String>) -> Result<Emitted, FactoryError> {
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
    ) -> Result<Emitted, FactoryError> {
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
    ) -> Result<Emitted, FactoryError> {
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
    ) -> Result<Emitted, FactoryError> {
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
    ) -> Result<Emitted, FactoryError> {
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
    pub async fn completed(&self, result: Value) -> Result<Emitted, FactoryError> {
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
    ) -> Result<Emitted, FactoryError> {
        let mut publisher = self.publisher.lock().await;
        let (sink, user, run) = (&*self.sink, &self.ctx.user_id, &self.ctx.run_id);
        // The closing events follow what the stream holds: a queued event that turns out not
        // stored rolls the run back first (its error is what this ends).
        let _ = publisher.confirm(sink, user, run).await;
        let events = closing_events(publisher.grammar(), code, message.into(), self.elapsed_ms());
        let seq = publish_closing(
            &mut publisher,
            &*self.sink,
            &self.ctx,
            &self.agent,
            events,
            1,
        )
        .await?;
        Ok(Emitted::Stored(seq))
    }
}

/// Where an event is when [`RunEmitter::emit`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitted {
    /// Stored, with this seq (and so is every earlier event of the run).
    Stored(u64),
    /// Queued behind the run's earlier events; stored by the time the run's terminal event
    /// returns, or the run's next `emit` (or [`RunEmitter::confirm`]) reports the failure.
    Queued,
}

impl Emitted {
    /// The seq, when the event is known to be stored.
    pub fn seq(self) -> Option<u64> {
        match self {
            Emitted::Stored(seq) => Some(seq),
            Emitted::Queued => None,
        }
    }
}
