//! `BridgeFactory`: makes run emitters, tracks runs in progress, cancels them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::time::Duration;

use agentwire_core::{CoreError, EventSink, RunEvent, RunId, UserContext, UserId};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{FactoryError, RunEmitter};

/// Per-user run limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Runs one user may have in progress at once (default 8).
    pub max_runs_per_user: usize,
}

pub use agentwire_core::DEFAULT_MAX_EVENT_BYTES;

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_runs_per_user: 8,
        }
    }
}

/// Makes a [`RunEmitter`] per run, bound to one [`UserContext`], and keeps the table of runs in
/// progress so they can be cancelled by their owner — and only by their owner.
///
/// Runs are keyed by `(user, run_id)`: two users may use the same run id (a client-chosen AG-UI
/// `runId`, say) and each still has their own run; one user cannot have two runs in progress
/// under one id.
///
/// This is the "websocket manager" an [`AgentRegistry`](../agentwire_agent_registry/trait.AgentRegistry.html)
/// receives at startup. Cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
/// use agentwire_bridge_factory::{BridgeFactory, RunLimits};
/// use agentwire_core::{Configurable, UserContext, UserId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default())?;
/// let factory = BridgeFactory::new(Arc::new(bridge.clone()), RunLimits::default());
///
/// let alice = UserId::new("alice")?;
/// let run = factory.begin_run(UserContext::new_run(alice.clone(), None, None), "demo")?;
/// run.started(Some("hi".into())).await?;
/// run.completed(serde_json::json!("hello")).await?;
/// assert_eq!(bridge.stream_head(&alice).await.unwrap().1, 2);
///
/// // Another user cannot cancel alice's run.
/// let mallory = UserId::new("mallory")?;
/// assert!(factory.cancel(&mallory, &run.context().run_id).is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BridgeFactory {
    inner: Arc<Inner>,
}

struct Inner {
    sink: Arc<dyn EventSink>,
    limits: RunLimits,
    // foldhash: looked up on every run start and end; seeded per process like SipHash.
    runs: DashMap<RunKey, CancellationToken, foldhash::quality::RandomState>,
    per_user: DashMap<UserId, usize, foldhash::quality::RandomState>,
    accepting: AtomicBool,
    idle: Notify,
    /// Callers in [`BridgeFactory::wait_idle`]: a run's end wakes them only when there are any,
    /// since `notify_waiters` takes a lock on every call and runs end at the event rate.
    waiting: AtomicUsize,
}

/// A run in progress: its owner and its id.
type RunKey = (UserId, RunId);

impl std::fmt::Debug for BridgeFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeFactory")
            .field("limits", &self.inner.limits)
            .field("active_runs", &self.active_runs())
            .finish()
    }
}

impl BridgeFactory {
    /// A factory whose emitters publish to `sink` (the bridge).
    pub fn new(sink: Arc<dyn EventSink>, limits: RunLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                sink,
                limits,
                runs: DashMap::default(),
                per_user: DashMap::default(),
                accepting: AtomicBool::new(true),
                idle: Notify::new(),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> RunLimits {
        self.inner.limits
    }

    /// Checks that `event` is within the sink's largest event
    /// ([`EventSink::max_event_bytes`]), without publishing it: a transport checks a run's
    /// `agent_started` (the user's content) before it registers and acknowledges the run.
    /// Published events are bounded by the sink itself, on the frame it writes.
    ///
    /// # Errors
    /// [`FactoryError::Publish`] with [`CoreError::EventTooLarge`](agentwire_core::CoreError::EventTooLarge)
    /// (`payload_too_large`).
    pub fn check_size(&self, event: &RunEvent) -> Result<(), FactoryError> {
        let max = self.inner.sink.max_event_bytes();
        event
            .check_size(max)
            .map_err(|size| FactoryError::Publish(CoreError::EventTooLarge { size, max }))
    }

    /// Registers a run of the agent named `agent` and returns its emitter, bound to `ctx`.
    ///
    /// # Errors
    /// [`FactoryError::TooManyRuns`] over the per-user limit, [`FactoryError::RunIdInUse`] when
    /// the user already has a run in progress with `ctx.run_id`, [`FactoryError::ShuttingDown`].
    pub fn begin_run(
        &self,
        ctx: UserContext,
        agent: impl Into<Arc<str>>,
    ) -> Result<RunEmitter, FactoryError> {
        if !self.inner.accepting.load(Ordering::Relaxed) {
            return Err(FactoryError::ShuttingDown);
        }
        let max = self.inner.limits.max_runs_per_user;
        // The user's count stays locked while the run is registered, so the limit and the id
        // check hold together.
        let mut count = match self.inner.per_user.entry(ctx.user_id.clone()) {
            Entry::Occupied(e) if *e.get() >= max => return Err(FactoryError::TooManyRuns { max }),
            Entry::Vacant(_) if max == 0 => return Err(FactoryError::TooManyRuns { max }),
            Entry::Occupied(e) => e.into_ref(),
            Entry::Vacant(e) => e.insert(0),
        };
        let key = (ctx.user_id.clone(), ctx.run_id.clone());
        let cancel = CancellationToken::new();
        match self.inner.runs.entry(key.clone()) {
            Entry::Occupied(_) => {
                let in_use = FactoryError::RunIdInUse {
                    run_id: ctx.run_id.to_string(),
                };
                if *count == 0 {
                    drop(count);
                    self.inner.per_user.remove_if(&ctx.user_id, |_, n| *n == 0);
                }
                return Err(in_use);
            }
            Entry::Vacant(e) => {
                e.insert(cancel.clone());
            }
        }
        *count += 1;
        drop(count);
        let guard = RunGuard {
            factory: self.inner.clone(),
            key,
        };
        Ok(RunEmitter::new(
            ctx,
            agent.into(),
            self.inner.sink.clone(),
            cancel,
            guard,
        ))
    }

    /// Cancels `run_id` if it is in progress **and** belongs to `user`.
    ///
    /// # Errors
    /// [`FactoryError::RunNotFound`] otherwise — the same answer for another user's run as for
    /// no run, so ids of other users' runs cannot be probed.
    pub fn cancel(&self, user: &UserId, run_id: &RunId) -> Result<(), FactoryError> {
        match self.inner.runs.get(&(user.clone(), run_id.clone())) {
            Some(cancel) => {
                cancel.cancel();
                Ok(())
            }
            None => Err(FactoryError::RunNotFound {
                run_id: run_id.to_string(),
            }),
        }
    }

    /// Whether `run_id` is in progress for `user`.
    pub fn owns_run(&self, user: &UserId, run_id: &RunId) -> bool {
        self.inner
            .runs
            .contains_key(&(user.clone(), run_id.clone()))
    }

    /// Runs in progress.
    pub fn active_runs(&self) -> usize {
        self.inner.runs.len()
    }

    /// Refuses new runs from now on (shutdown).
    pub fn stop_accepting(&self) {
        self.inner.accepting.store(false, Ordering::Relaxed);
    }

    /// Cancels every run in progress.
    pub fn cancel_all(&self) {
        for entry in self.inner.runs.iter() {
            entry.value().cancel();
        }
    }

    /// Waits until no run is in progress or `timeout` passes; returns whether all ended. A
    /// dropped run is in progress until its closing events are published.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let _waiting = Waiting::register(&self.inner.waiting);
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.runs.is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.inner.runs.is_empty();
            }
        }
    }
}

/// One caller of [`BridgeFactory::wait_idle`], counted while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn register(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `RunGuard::drop`: either that drop sees this waiter, or this
        // waiter's check of `runs` sees the run removed.
        fence(Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Unregisters its run when the emitter (or, for a dropped run, its closing task) goes away.
pub(crate) struct RunGuard {
    factory: Arc<Inner>,
    key: RunKey,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.factory.runs.remove(&self.key);
        if let Entry::Occupied(mut e) = self.factory.per_user.entry(self.key.0.clone()) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
        fence(Ordering::SeqCst);
        if self.factory.waiting.load(Ordering::Relaxed) > 0 {
            self.factory.idle.notify_waiters();
        }
    }
}
