//! `RunExecutor`: runs agents (their first step inline, the rest on a tokio task) and frames
//! their runs.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use agentwire_bridge_factory::{BridgeFactory, Emitted, RunEmitter};
use agentwire_core::{
    AgentCompleted, AgentStarted, CoreError, EventKind, RunEvent, RunId, RunLauncher, ThreadId,
    TokenUsage, UserContext,
};
use serde_json::Value;
use tracing::Instrument;

use crate::run_metrics::RunMetrics;
use crate::{Agent, AgentError, AgentRegistry, RunContext};

/// What [`RunExecutor::start`] returns: the ids the client is acknowledged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHandle {
    /// The new run.
    pub run_id: RunId,
    /// Its thread.
    pub thread_id: ThreadId,
}

/// Starts runs: looks the agent up, asks its [`BridgeFactory`] for an emitter bound to the run's
/// user, and drives the agent — `agent_started` first, then the agent's events, then exactly one
/// of `agent_completed`, `agent_error {agent_failed | cancelled | timeout}`.
///
/// # Where an agent runs
/// The agent's **first step runs inline**, on the caller's task (for a WebSocket client, its
/// connection's reader), until the agent first waits; from then on the run is a task of its own.
/// An agent that never waits (`echo`) costs no task at all, and its whole run is queued before
/// the caller reads its next frame. For agent authors this means: do not block or compute for
/// long before your first `.await` that waits — that stalls the caller (the client's next frames)
/// meanwhile. Put CPU-heavy or blocking work behind `tokio::task::spawn_blocking`, or
/// `tokio::task::yield_now().await` first to move the rest of the run to its own task.
///
/// Each run's task is instrumented with a `run{user_id, run_id, agent}` span, and records
/// `agentwire_runs_started_total{agent}`, `agentwire_runs_finished_total{agent, outcome}` and
/// `agentwire_run_duration_seconds{agent, outcome}` through the `metrics` facade; tool calls
/// record `agentwire_tool_call_duration_seconds{tool, ok}`.
#[derive(Clone)]
pub struct RunExecutor {
    registry: Arc<dyn AgentRegistry>,
    factory: BridgeFactory,
    run_timeout: Duration,
    metrics: Arc<RunMetrics>,
}

impl std::fmt::Debug for RunExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunExecutor")
            .field("agents", &self.registry.agents())
            .field("run_timeout", &self.run_timeout)
            .finish()
    }
}

impl RunExecutor {
    /// An executor running the agents of `registry`, publishing through `factory`. The registry
    /// is handed the same factory first ([`AgentRegistry::set_websocket_manager`]), so the
    /// executor and the registry cannot disagree and there is no executor without a factory.
    pub fn new<R: AgentRegistry>(
        mut registry: R,
        factory: BridgeFactory,
        run_timeout: Duration,
    ) -> Self {
        registry.set_websocket_manager(factory.clone());
        Self {
            registry: Arc::new(registry),
            factory,
            run_timeout,
            metrics: Arc::default(),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<dyn AgentRegistry> {
        &self.registry
    }

    /// The factory runs publish through (for cancel and shutdown).
    pub fn factory(&self) -> &BridgeFactory {
        &self.factory
    }

    /// Starts `agent` for `ctx`: [`Self::prepare`] then [`PreparedRun::spawn`] (the first step
    /// inline, see [where an agent runs](Self#where-an-agent-runs)).
    ///
    /// # Errors
    /// [`AgentError::UnknownAgent`], or [`AgentError::Run`] with `too_many_runs`,
    /// `payload_too_large` (`input` too large for one event) or shutting down. Nothing is
    /// published on error.
    pub fn start(
        &self,
        ctx: UserContext,
        agent_name: &str,
        input: String,
    ) -> Result<RunHandle, AgentError> {
        let prepared = self.prepare(ctx, agent_name, input)?;
        let handle = prepared.handle().clone();
        prepared.spawn();
        Ok(handle)
    }

    /// Checks that the run can start (the agent exists, the user is under its run limit, its
    /// `agent_started` carrying `input` is within `limits.max_event_bytes`) and registers it,
    /// without publishing anything yet. A transport acknowledges the request between `prepare`
    /// and [`PreparedRun::spawn`], so the ack precedes the run's events. The run's timeout and
    /// its duration count from here.
    ///
    /// # Errors
    /// As [`Self::start`], and [`AgentError::Run`] with `payload_too_large` when the input is too
    /// large for one event.
    pub fn prepare(
        &self,
        ctx: UserContext,
        agent_name: &str,
        input: String,
    ) -> Result<PreparedRun, AgentError> {
        let agent = self
            .registry
            .agent(agent_name)
            .ok_or_else(|| AgentError::UnknownAgent {
                name: agent_name.chars().take(64).collect(),
                available: self
                    .registry
                    .agents()
                    .into_iter()
                    .map(|a| a.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let handle = RunHandle {
            run_id: ctx.run_id.clone(),
            thread_id: ctx.thread_id.clone(),
        };
        // The input is checked before the run is registered or acknowledged.
        let name: Arc<str> = agent.name().into();
        let started = RunEvent::now(
            ctx.run_id.clone(),
            ctx.thread_id.clone(),
            name.clone(),
            EventKind::AgentStarted(AgentStarted { input: Some(input) }),
        );
        self.factory.check_size(&started)?;
        let started = started.kind;
        let emitter = Arc::new(self.factory.begin_run(ctx, name)?);
        Ok(PreparedRun {
            handle,
            emitter,
            started,
            agent,
            registry: self.registry.clone(),
            timeout: self.run_timeout,
            metrics: self.metrics.clone(),
        })
    }
}

/// A registered run that has not published anything yet; [`Self::spawn`] starts it. Dropping it
/// instead ends the run with `agent_dropped`.
pub struct PreparedRun {
    handle: RunHandle,
    emitter: Arc<RunEmitter>,
    /// The run's `agent_started`, carrying its input (checked in `prepare`).
    started: EventKind,
    agent: Arc<dyn Agent>,
    registry: Arc<dyn AgentRegistry>,
    timeout: Duration,
    metrics: Arc<RunMetrics>,
}

impl std::fmt::Debug for PreparedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRun")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl PreparedRun {
    /// The ids of the run.
    pub fn handle(&self) -> &RunHandle {
        &self.handle
    }

    /// Runs the agent: its first step here, on the caller's task, the rest (from its first wait)
    /// on a new tokio task (see [where an agent runs](RunExecutor#where-an-agent-runs)).
    pub fn spawn(self) {
        let PreparedRun {
            emitter,
            started,
            agent,
            registry,
            timeout,
            metrics,
            ..
        } = self;
        let ctx = emitter.context();
        let span = tracing::info_span!(
            "run",
            user_id = %ctx.user_id,
            run_id = %ctx.run_id,
            agent = %agent.name(),
        );
        let agent_metrics = metrics.agent(agent.name());
        let run = async move {
            // The run started when it was registered (`prepare`, where the emitter was made): the
            // timeout and the duration count from there (a clock read less per run).
            let began = emitter.started_at();
            let input = match &started {
                EventKind::AgentStarted(AgentStarted { input }) => input.clone(),
                _ => None,
            };
            if let Err(e) = emitter.emit(started).await {
                tracing::warn!(error = %e, "run could not start");
                return;
            }
            agent_metrics.started.increment(1);
            tracing::debug!("agent running");
            let rc = RunContext::new(
                emitter.clone(),
                registry,
                input.unwrap_or_default(),
                metrics,
            );
            let cancel = emitter.cancellation().clone();
            let outcome: Result<Value, (&str, String)> = tokio::select! {
                r = run_within(began, timeout, agent.run(&rc)) => match r {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err((e.run_error_code(), e.to_string())),
                    Err(_) => Err(("timeout", format!("the run took longer than {timeout:?}"))),
                },
                () = cancel.cancelled() => Err(("cancelled", "the run was cancelled".to_owned())),
            };
            let usage = rc.take_usage();
            drop(rc);
            let outcome = finish(&emitter, outcome, usage).await;
            let elapsed = began.elapsed();
            let (finished, duration) = agent_metrics.finished(outcome);
            finished.increment(1);
            duration.record(elapsed.as_secs_f64());
            tracing::debug!(
                outcome,
                duration_ms = elapsed.as_millis() as u64,
                "run finished"
            );
        };
        start_eagerly(run.instrument(span));
    }
}

/// `fut`, ended with `Elapsed` once `timeout` has passed since `began`. A timeout too long for
/// a deadline (`Duration::MAX`, "no limit") never ends it.
async fn run_within<F: Future>(
    began: tokio::time::Instant,
    timeout: Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    match began.checked_add(timeout) {
        Some(deadline) => tokio::time::timeout_at(deadline, fut).await,
        None => Ok(fut.await),
    }
}

/// Polls `run` once on the caller's thread and gives it a task of its own only if it has to
/// wait: a run that finishes without waiting costs no task, and its events are queued before the
/// caller's next frame is read.
///
/// The first poll uses a no-op waker: a future must re-register with the waker of its latest
/// poll, and the task polls it as soon as it is spawned, so no wakeup is lost. A panic is caught
/// and the run dropped, as tokio does for a panicking task.
fn start_eagerly(run: impl Future<Output = ()> + Send + 'static) {
    let mut run = Box::pin(run);
    let mut cx = Context::from_waker(Waker::noop());
    match std::panic::catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(&mut cx))) {
        Ok(Poll::Ready(())) => {}
        Ok(Poll::Pending) => {
            tokio::spawn(run);
        }
        Err(_) => tracing::error!("the agent panicked; its run is dropped"),
    }
}

/// Publishes the terminal event; returns the outcome label: `completed`, `failed`, `cancelled`
/// or `timeout`.
async fn finish(
    emitter: &RunEmitter,
    outcome: Result<Value, (&str, String)>,
    usage: Option<(String, TokenUsage)>,
) -> &'static str {
    let (label, result) = match outcome {
        Ok(v) => match complete(emitter, v, usage).await {
            Ok(_) => ("completed", Ok(Emitted::Stored(0))),
            // e.g. the agent returned while its own spawned tool call was open, or its result
            // is over limits.max_event_bytes
            Err(e) => {
                let message = e.to_string();
                let code = AgentError::Run(e).run_error_code();
                ("failed", Box::pin(emitter.failed(code, message)).await)
            }
        },
        Err((code, message)) => {
            let label = match code {
                "cancelled" => "cancelled",
                "timeout" => "timeout",
                _ => "failed",
            };
            // Boxed, like the branch above: rare paths kept out of every run's future.
            (label, Box::pin(emitter.failed(code, message)).await)
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "run end could not be published");
    }
    label
}

/// `agent_completed`, with the model and token usage the agent reported
/// ([`RunContext::report_usage`]) when it did.
async fn complete(
    emitter: &RunEmitter,
    result: Value,
    usage: Option<(String, TokenUsage)>,
) -> Result<Emitted, agentwire_bridge_factory::FactoryError> {
    match usage {
        None => emitter.completed(result).await,
        Some((model, usage)) => {
            let done = AgentCompleted {
                result,
                duration_ms: emitter.elapsed_ms(),
                usage: Some(usage),
                model: Some(model),
            };
            Box::pin(emitter.emit(EventKind::AgentCompleted(done))).await
        }
    }
}

impl RunLauncher for RunExecutor {
    fn launch(&self, ctx: UserContext, agent: &str, input: String) -> Result<(), CoreError> {
        self.start(ctx, agent, input)
            .map(|_| ())
            .map_err(CoreError::from)
    }
}
