//! The contracts components implement and talk through.

use crate::{CloseCode, CoreError, Frame, NowOrLater, RunEvent, UserContext, UserId};

/// A component that must be configured before it can be used.
///
/// `configure` consumes the unconfigured value and returns a *different* type, so code that needs
/// a configured component cannot be handed an unconfigured one: that is a type error, not a
/// runtime surprise.
///
/// ```
/// use agentwire_core::Configurable;
///
/// struct Unconfigured;
/// struct Ready { greeting: String }
///
/// impl Configurable for Unconfigured {
///     type Config = String;
///     type Configured = Ready;
///     type Error = std::convert::Infallible;
///     fn configure(self, greeting: String) -> Result<Ready, Self::Error> {
///         Ok(Ready { greeting })
///     }
/// }
///
/// fn serve(ready: &Ready) -> &str { &ready.greeting }
/// let ready = Unconfigured.configure("hi".into()).unwrap();
/// assert_eq!(serve(&ready), "hi");
/// ```
///
/// ```compile_fail
/// # use agentwire_core::Configurable;
/// # struct Unconfigured;
/// # struct Ready { greeting: String }
/// fn serve(ready: &Ready) -> &str { &ready.greeting }
/// serve(&Unconfigured); // an unconfigured component is not a configured one
/// ```
pub trait Configurable: Sized {
    /// The settings `configure` takes.
    type Config;
    /// The usable component.
    type Configured;
    /// Why the settings were refused.
    type Error: std::error::Error;

    /// Validates `config` and returns the usable component.
    ///
    /// # Errors
    /// When `config` is invalid; the message should name the setting and a valid value.
    fn configure(self, config: Self::Config) -> Result<Self::Configured, Self::Error>;
}

/// One client connection's outgoing side, as the bridge sees it.
///
/// # What an implementor must guarantee
/// - `send` never blocks and never awaits: it queues the frame (or writes it to memory) and
///   returns. The bridge calls it while holding the user's stream lock, once per connection.
/// - Frames are delivered in the order `send` accepted them, each at most once.
/// - `send` returns [`CoreError::SinkFull`] when the queue is over its cap (the bridge then
///   calls `close` with 4008 and drops the sink) and [`CoreError::SinkClosed`] once the
///   connection is gone (the bridge drops the sink). It must not panic.
/// - `close` is idempotent: the first call sends a close frame with `code` after the frames
///   already queued (when the connection can take them); later calls do nothing.
///
/// ```
/// use std::sync::Mutex;
/// use agentwire_core::{CloseCode, CoreError, Frame, WebSocketSink};
///
/// #[derive(Default)]
/// struct Recording(Mutex<Vec<String>>);
///
/// impl WebSocketSink for Recording {
///     fn send(&self, frame: Frame) -> Result<(), CoreError> {
///         self.0.lock().unwrap().push(frame.as_str().to_owned());
///         Ok(())
///     }
///     fn close(&self, _code: CloseCode, _reason: &str) {}
/// }
///
/// let sink = Recording::default();
/// sink.send(Frame::control(&serde_json::json!({"type": "pong", "id": "p"}))).unwrap();
/// assert_eq!(sink.0.lock().unwrap().len(), 1);
/// ```
///
/// Using a type that is not a sink as one fails to compile with "`MyConnection` is not a
/// WebSocketSink" and a note naming `send` and `close`:
///
/// ```compile_fail
/// # use std::sync::Arc;
/// # use agentwire_core::WebSocketSink;
/// struct MyConnection;
/// let sink: Arc<dyn WebSocketSink> = Arc::new(MyConnection);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a WebSocketSink",
    note = "implement `send(&self, Frame) -> Result<(), CoreError>` (non-blocking) and `close(&self, CloseCode, &str)`"
)]
pub trait WebSocketSink: Send + Sync + 'static {
    /// Queues one serialized frame without blocking.
    ///
    /// # Errors
    /// [`CoreError::SinkFull`] over the queue cap, [`CoreError::SinkClosed`] when gone.
    fn send(&self, frame: Frame) -> Result<(), CoreError>;

    /// Closes the connection with `code` after the frames already queued.
    fn close(&self, code: CloseCode, reason: &str);
}

/// Where run events go: the bridge implements it; emitters publish through it.
///
/// # What an implementor must guarantee
/// - `publish` gives the event the next `seq` of `user`'s stream (strictly increasing by 1,
///   starting at 1 for a new stream) and resolves to it, or resolves to an error and gives it
///   none.
/// - An accepted event is in the user's history when the result resolves and is offered to
///   every live connection of that user — and of no other user.
/// - `publish` does not wait for any client.
/// - A sink that can take the event without waiting for I/O or other tasks returns
///   [`NowOrLater::Now`] (a short critical section, such as a lock held for the append, is
///   fine): callers take a `Now` result without awaiting or allocating. One that must wait
///   returns [`NowOrLater::Later`] — and has already queued the event when `publish` returns:
///   the event's place in the stream is fixed by the call, and the `Later` future, which borrows
///   nothing, only reports the outcome. A caller may keep it, poll it later or drop it; the
///   event is stored (or fails) either way. This is what lets a `RunEmitter` queue a run's next
///   events while earlier ones are on their way to the store.
/// - Events of one run (one [`RunEvent::run_id`]) are *fail-stop*: once one of them fails, every
///   event of that run published after it fails too, until the caller calls
///   [`acknowledge_failure`](Self::acknowledge_failure) for the run. So a stream never holds a
///   run's later event without an earlier one the run published before it — a client never sees
///   a hole inside a run, such as a `tool_completed` without its `tool_executing`.
/// - A sink that stores events bounds their size: one whose envelope is over its largest event
///   size ([`RunEvent::size_at_any_seq`]; the bridge's is `limits.max_event_bytes`) is refused
///   with [`CoreError::EventTooLarge`] and takes no seq. `RunEmitter`s and `/v1/publish` rely on
///   the sink for this bound.
/// - `publish` does not check the run grammar itself: `RunEmitter`s (and `/v1/publish`) do that
///   before calling it. It may be called concurrently for different users; for one user, the
///   `seq` order is the order in which `publish` calls were accepted.
///
/// Most users never implement it: `AgentWebSocketBridge` is the `EventSink` agentwire uses. A
/// complete (if minimal) implementation — per-user streams in memory, no connections — looks
/// like this, and can stand in for the bridge behind a `BridgeFactory` in a test:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use agentwire_core::{
///     AgentStarted, CoreError, EventKind, EventSink, NowOrLater, RunEvent, RunId, ThreadId, UserId,
/// };
///
/// #[derive(Default)]
/// struct InMemoryStreams(Mutex<HashMap<UserId, Vec<RunEvent>>>);
///
/// impl EventSink for InMemoryStreams {
///     fn publish(&self, user: &UserId, event: &RunEvent) -> NowOrLater<'static, Result<u64, CoreError>> {
///         let mut streams = self.0.lock().unwrap();
///         let stream = streams.entry(user.clone()).or_default();
///         stream.push(event.clone());
///         NowOrLater::now(Ok(stream.len() as u64)) // seq: 1, 2, 3, … per user
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sink = InMemoryStreams::default();
/// let started = || RunEvent::now(RunId::generate(), ThreadId::generate(), "demo".into(),
///     EventKind::AgentStarted(AgentStarted { input: None }));
/// let (ada, bob) = (UserId::new("ada")?, UserId::new("bob")?);
/// assert_eq!(sink.publish(&ada, &started()).await?, 1);
/// assert_eq!(sink.publish(&ada, &started()).await?, 2);
/// assert_eq!(sink.publish(&bob, &started()).await?, 1); // each user has their own stream
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot publish run events (it is not an EventSink)",
    note = "an unconfigured bridge cannot be used: `AgentWebSocketBridge::builder().configure(config)?` returns the bridge that implements EventSink"
)]
pub trait EventSink: Send + Sync + 'static {
    /// Accepts `event` into `user`'s stream and resolves to its `seq`: [`NowOrLater::Now`] when
    /// that took no waiting.
    ///
    /// The sink takes what it needs from `event` before it returns (a copy, or its serialized
    /// frame): the result does not borrow it, so the caller keeps or drops the event at once.
    ///
    /// # Errors
    /// [`CoreError::Unavailable`] when the stream backend cannot take it now,
    /// [`CoreError::ShuttingDown`] during shutdown, [`CoreError::EventTooLarge`] over the sink's
    /// largest event size.
    fn publish(
        &self,
        user: &UserId,
        event: &RunEvent,
    ) -> NowOrLater<'static, Result<u64, CoreError>>;

    /// The caller has seen that an event of `run` failed (and accounts for every event of the run
    /// published after it, which failed too): `user`'s stream takes events of `run` again. A
    /// sink whose appends never fail after they were accepted — every failure is a `Now` result
    /// — has nothing to do (the default).
    fn acknowledge_failure(&self, user: &UserId, run: &crate::RunId) {
        let _ = (user, run);
    }

    /// The largest event `publish` takes, in bytes of its envelope
    /// ([`RunEvent::size_at_any_seq`]): what a transport checks a run's `agent_started` against
    /// before it acknowledges the run. Default [`DEFAULT_MAX_EVENT_BYTES`](crate::DEFAULT_MAX_EVENT_BYTES).
    fn max_event_bytes(&self) -> usize {
        crate::DEFAULT_MAX_EVENT_BYTES
    }
}

/// Starts runs. The agent registry's executor implements it; the health monitor uses it for its
/// synthetic critical-path run, and transports use it for `user_message`.
///
/// # What an implementor must guarantee
/// - On `Ok`, the run publishes a complete run (docs/protocol.md) to `ctx.user_id`'s stream, and to no
///   other.
/// - On `Err`, nothing was published for `ctx.run_id`.
/// - `launch` does not await. It may run the agent's first step inline — up to the agent's first
///   wait — before it returns (agentwire's `RunExecutor` does, so a run that never waits costs no
///   task); the rest of the run goes on its own task. Callers must expect `launch` to take as
///   long as that first step, and agents should not block before their first `.await`.
///
/// agentwire's `RunExecutor` is the launcher you normally use. A complete implementation that
/// publishes a minimal run (`agent_started` then `agent_completed`) through an [`EventSink`]:
///
/// ```
/// use std::sync::Arc;
/// use agentwire_core::{
///     AgentCompleted, AgentStarted, CoreError, ErrorCode, EventKind, EventSink, RunEvent,
///     RunLauncher, UserContext,
/// };
///
/// struct InstantLauncher { sink: Arc<dyn EventSink> }
///
/// impl RunLauncher for InstantLauncher {
///     fn launch(&self, ctx: UserContext, agent: &str, input: String) -> Result<(), CoreError> {
///         if agent != "instant" {
///             // Refused before anything was published.
///             return Err(CoreError::Refused { code: ErrorCode::UnknownAgent, message: format!("no agent {agent:?}") });
///         }
///         let sink = self.sink.clone();
///         tokio::spawn(async move {
///             let event = |kind| RunEvent::now(ctx.run_id.clone(), ctx.thread_id.clone(), "instant".into(), kind);
///             let started = EventKind::AgentStarted(AgentStarted { input: Some(input.clone()) });
///             let done = EventKind::AgentCompleted(AgentCompleted { result: input.into(), duration_ms: 0, usage: None, model: None });
///             for kind in [started, done] {
///                 if sink.publish(&ctx.user_id, &event(kind)).await.is_err() { break; }
///             }
///         });
///         Ok(())
///     }
/// }
/// # fn check(sink: Arc<dyn EventSink>) { let _: &dyn RunLauncher = &InstantLauncher { sink }; }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot launch agentwire runs (it is not a RunLauncher)",
    note = "implement `fn launch(&self, ctx: UserContext, agent: &str, input: String) -> Result<(), CoreError>`; agentwire_agent_registry::RunExecutor is the usual one"
)]
pub trait RunLauncher: Send + Sync + 'static {
    /// Starts `agent` for `ctx` with `input`.
    ///
    /// # Errors
    /// [`CoreError::Refused`] with `unknown_agent` or `too_many_runs`, or
    /// [`CoreError::ShuttingDown`].
    fn launch(&self, ctx: UserContext, agent: &str, input: String) -> Result<(), CoreError>;
}

/// Helpers every [`WebSocketSink`] gets.
pub trait WebSocketSinkExt: WebSocketSink {
    /// Sends a frame and, when the queue is full, closes the sink as a slow consumer.
    ///
    /// # Errors
    /// The error of `send`.
    fn send_or_close(&self, frame: Frame) -> Result<(), CoreError> {
        let result = self.send(frame);
        if let Err(CoreError::SinkFull { .. }) = &result {
            self.close(
                CloseCode::SLOW_CONSUMER,
                "slow consumer: resume with your last seq",
            );
        }
        result
    }
}

impl<S: WebSocketSink + ?Sized> WebSocketSinkExt for S {}
