//! `ExternalRuns`: the grammar bookkeeping for runs driven from outside the process
//! (`POST /v1/publish`), where each event arrives on its own request.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use agentwire_core::{
    CoreError, ErrorCode, EventKind, EventSink, GrammarError, RunEvent, RunId, ThreadId, UserId,
};
use dashmap::DashMap;
use tokio::sync::Mutex;

use crate::publish::{Published, RunPublisher};

/// Bounds of [`ExternalRuns`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalLimits {
    /// An open run with no event for this long is forgotten (its next event is then out of
    /// grammar, as for an unknown run). Default 10 min.
    pub idle_ttl: Duration,
    /// Open external runs held at once, over all users; more are refused. Default 10 000.
    pub max_open_runs: usize,
}

impl Default for ExternalLimits {
    fn default() -> Self {
        Self {
            idle_ttl: Duration::from_secs(600),
            max_open_runs: 10_000,
        }
    }
}

/// Why an external event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalError {
    /// The event does not fit its run (docs/protocol.md); nothing was published.
    #[error("event rejected: {0}")]
    Grammar(#[from] GrammarError),
    /// The run ended recently; its id cannot start another run.
    #[error("run {run_id} has already ended: start a new run with a new run_id")]
    Ended {
        /// The run.
        run_id: String,
    },
    /// The event names another thread or agent than the run's `agent_started` did.
    #[error("run {run_id} belongs to {field} {expected:?}, not {got:?}")]
    Mismatch {
        /// The run.
        run_id: String,
        /// `thread_id` or `agent`.
        field: &'static str,
        /// What the run started with.
        expected: String,
        /// What the event says.
        got: String,
    },
    /// Too many external runs are open.
    #[error(
        "{max} external runs are open, the most allowed; end runs with agent_completed or agent_error"
    )]
    TooManyRuns {
        /// The limit.
        max: usize,
    },
    /// The stream refused the event.
    #[error(transparent)]
    Publish(#[from] CoreError),
}

impl ExternalError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ExternalError::Grammar(_) | ExternalError::Ended { .. } => ErrorCode::OutOfGrammar,
            ExternalError::Mismatch { .. } => ErrorCode::InvalidField,
            ExternalError::TooManyRuns { .. } => ErrorCode::TooManyRuns,
            ExternalError::Publish(e) => e.code(),
        }
    }
}

type Key = (UserId, RunId);

struct OpenRun {
    publisher: RunPublisher,
    thread_id: ThreadId,
    agent: Arc<str>,
    last_activity: Instant,
    /// Set when the entry left the table (ended or expired) while a request waited for it.
    gone: bool,
}

/// Enforces the run grammar on events that external agents publish one request at a time, and
/// publishes the accepted ones through an [`EventSink`] (the bridge).
///
/// Per `(user, run_id)` it holds one run grammar. An entry is dropped at the run's terminal
/// event and after `idle_ttl` without events, so memory stays bounded by
/// [`ExternalLimits::max_open_runs`]; an ended run's id is remembered for `idle_ttl` so it cannot
/// be started again. Events of one run are published in the order the grammar accepted them.
///
/// ```
/// use std::sync::Arc;
/// use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
/// use agentwire_bridge_factory::{ExternalLimits, ExternalRuns};
/// use agentwire_core::{Configurable, EventKind, RunEvent, RunId, ThreadId, UserId};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default())?;
/// let runs = ExternalRuns::new(Arc::new(bridge), ExternalLimits::default());
/// let (user, run, thread) = (UserId::new("ada")?, RunId::new("r_ext")?, ThreadId::new("t_1")?);
/// let event = |t: &str, d| RunEvent::now(run.clone(), thread.clone(), "py".into(),
///     EventKind::from_parts(t, d).unwrap());
///
/// assert_eq!(runs.publish(&user, event("agent_started", json!({}))).await?, 1);
/// // Out of grammar: this call was never opened.
/// assert!(runs.publish(&user, event("tool_completed",
///     json!({"call_id": "c", "tool": "x", "ok": true}))).await.is_err());
/// assert_eq!(runs.publish(&user, event("agent_completed", json!({"result": 1}))).await?, 2);
/// assert_eq!(runs.open_runs(), 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ExternalRuns {
    inner: Arc<Inner>,
}

struct Inner {
    sink: Arc<dyn EventSink>,
    limits: ExternalLimits,
    open: DashMap<Key, Arc<Mutex<OpenRun>>>,
    ended: DashMap<Key, Instant>,
    last_sweep: parking_lot::Mutex<Instant>,
}

impl Inner {
    /// After an event of `run`: its activity, and its end once its grammar finished.
    fn settle(&self, run: &mut OpenRun, key: Key) {
        run.last_activity = Instant::now();
        if run.publisher.grammar().is_finished() {
            run.gone = true;
            self.open.remove(&key);
            self.ended.insert(key, Instant::now());
        }
    }
}

fn publish_error(e: CoreError) -> ExternalError {
    match e {
        CoreError::Grammar(refused) => ExternalError::Grammar(refused),
        other => ExternalError::Publish(other),
    }
}

impl std::fmt::Debug for ExternalRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalRuns")
            .field("limits", &self.inner.limits)
            .field("open_runs", &self.open_runs())
            .finish()
    }
}

impl ExternalRuns {
    /// Bookkeeping that publishes accepted events to `sink`.
    pub fn new(sink: Arc<dyn EventSink>, limits: ExternalLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                sink,
                limits,
                open: DashMap::new(),
                ended: DashMap::new(),
                last_sweep: parking_lot::Mutex::new(Instant::now()),
            }),
        }
    }

    /// External runs open now.
    pub fn open_runs(&self) -> usize {
        self.inner.open.len()
    }

    /// Checks `event` against its run's grammar and, when it fits, publishes it to `user`'s
    /// stream; returns its seq.
    ///
    /// # Errors
    /// [`ExternalError`]; nothing was published then, and the run's state is unchanged.
    pub async fn publish(&self, user: &UserId, event: RunEvent) -> Result<u64, ExternalError> {
        let now = Instant::now();
        self.maybe_sweep(now);
        let key = (user.clone(), event.run_id.clone());
        let entry = match self.inner.open.get(&key).map(|e| e.clone()) {
            Some(entry) => entry,
            None => self.open(&key, &event, now)?,
        };
        let mut run = entry.lock_owned().await;
        if run.gone {
            return Err(ExternalError::Ended {
                run_id: key.1.to_string(),
            });
        }
        if run.thread_id != event.thread_id {
            return Err(mismatch(
                &key.1,
                "thread_id",
                &run.thread_id,
                &event.thread_id,
            ));
        }
        if run.agent != event.agent {
            return Err(mismatch(&key.1, "agent", &run.agent, &event.agent));
        }
        let sink = &*self.inner.sink;
        match run
            .publisher
            .publish(sink, user, &event)
            .map_err(publish_error)?
        {
            Published::Stored(seq) => {
                self.inner.settle(&mut run, key);
                Ok(seq)
            }
            // The sink has it queued; the wait for its outcome and the run's bookkeeping go on
            // even if the request goes away (a run that ended must be recorded as ended).
            Published::Queued => {
                let inner = self.inner.clone();
                let user = user.clone();
                let waited = tokio::spawn(async move {
                    let confirmed = run.publisher.confirm(&*inner.sink, &user, &key.1).await;
                    inner.settle(&mut run, key);
                    match confirmed.map_err(publish_error)? {
                        Some(seq) => Ok(seq),
                        None => Err(ExternalError::Publish(CoreError::Unavailable(
                            "the event was not stored".into(),
                        ))),
                    }
                });
                waited.await.unwrap_or_else(|_| {
                    Err(ExternalError::Publish(CoreError::Unavailable(
                        "the publish was dropped before it was stored".into(),
                    )))
                })
            }
        }
    }

    /// A new entry for the run `event` begins; only `agent_started` may begin one.
    fn open(
        &self,
        key: &Key,
        event: &RunEvent,
        now: Instant,
    ) -> Result<Arc<Mutex<OpenRun>>, ExternalError> {
        if self.inner.ended.contains_key(key) {
            return Err(ExternalError::Ended {
                run_id: key.1.to_string(),
            });
        }
        if !matches!(event.kind, EventKind::AgentStarted(_)) {
            return Err(GrammarError::NotStarted {
                got: event.kind.type_name(),
            }
            .into());
        }
        let max = self.inner.limits.max_open_runs;
        if self.inner.open.len() >= max {
            self.sweep(now);
            if self.inner.open.len() >= max {
                return Err(ExternalError::TooManyRuns { max });
            }
        }
        let entry = self
            .inner
            .open
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(OpenRun {
                    publisher: RunPublisher::default(),
                    thread_id: event.thread_id.clone(),
                    agent: event.agent.clone(),
                    last_activity: now,
                    gone: false,
                }))
            })
            .clone();
        Ok(entry)
    }

    fn maybe_sweep(&self, now: Instant) {
        let period = (self.inner.limits.idle_ttl / 4).max(Duration::from_millis(100));
        {
            let mut last = self.inner.last_sweep.lock();
            if now.saturating_duration_since(*last) < period {
                return;
            }
            *last = now;
        }
        self.sweep(now);
    }

    /// Forgets open runs idle for `idle_ttl` and ended runs older than `idle_ttl` at `now` (on
    /// tokio's clock); returns how many open runs were dropped.
    pub fn sweep(&self, now: Instant) -> usize {
        let ttl = self.inner.limits.idle_ttl;
        let before = self.inner.open.len();
        self.inner.open.retain(|_, entry| {
            // A run whose lock is held is busy, not idle.
            let Ok(mut run) = entry.try_lock() else {
                return true;
            };
            let idle = now.saturating_duration_since(run.last_activity) > ttl;
            if idle {
                run.gone = true;
            }
            !idle
        });
        self.inner
            .ended
            .retain(|_, at| now.saturating_duration_since(*at) <= ttl);
        before.saturating_sub(self.inner.open.len())
    }
}

fn mismatch(
    run_id: &RunId,
    field: &'static str,
    expected: &impl std::fmt::Display,
    got: &impl std::fmt::Display,
) -> ExternalError {
    ExternalError::Mismatch {
        run_id: run_id.to_string(),
        field,
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
    use agentwire_core::Configurable;
    use serde_json::json;

    fn runs(limits: ExternalLimits) -> ExternalRuns {
        let bridge = AgentWebSocketBridge::builder()
            .configure(BridgeConfig::default())
            .unwrap();
        ExternalRuns::new(Arc::new(bridge), limits)
    }

    fn ev(run: &str, t: &str, data: serde_json::Value) -> RunEvent {
        RunEvent::now(
            RunId::new(run).unwrap(),
            ThreadId::new("t_1").unwrap(),
            "ext".into(),
            EventKind::from_parts(t, data).unwrap(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_run_gets_consecutive_seqs_and_is_then_forgotten() {
        let r = runs(ExternalLimits::default());
        let u = UserId::new("u").unwrap();
        let seqs = [
            r.publish(&u, ev("r1", "agent_started", json!({}))).await,
            r.publish(
                &u,
                ev("r1", "tool_executing", json!({"call_id":"c","tool":"t"})),
            )
            .await,
            r.publish(
                &u,
                ev(
                    "r1",
                    "tool_completed",
                    json!({"call_id":"c","tool":"t","ok":true}),
                ),
            )
            .await,
            r.publish(&u, ev("r1", "agent_completed", json!({"result": 1})))
                .await,
        ];
        let seqs: Vec<u64> = seqs.into_iter().map(Result::unwrap).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(r.open_runs(), 0);
        // The ended id cannot start again, and later events are out of grammar.
        let again = r.publish(&u, ev("r1", "agent_started", json!({}))).await;
        assert!(matches!(again, Err(ExternalError::Ended { .. })));
        assert_eq!(again.unwrap_err().code(), ErrorCode::OutOfGrammar);
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_out_of_grammar_and_mismatched_events_without_publishing() {
        let r = runs(ExternalLimits::default());
        let u = UserId::new("u").unwrap();
        let e = r
            .publish(&u, ev("r2", "agent_thinking", json!({"thought":"x"})))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::OutOfGrammar);
        assert_eq!(r.open_runs(), 0);
        r.publish(&u, ev("r2", "agent_started", json!({})))
            .await
            .unwrap();
        let e = r
            .publish(&u, ev("r2", "agent_started", json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::OutOfGrammar);
        let mut other_thread = ev("r2", "agent_thinking", json!({"thought":"x"}));
        other_thread.thread_id = ThreadId::new("t_2").unwrap();
        let e = r.publish(&u, other_thread).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidField);
        // The same run id of another user is another run.
        let v = UserId::new("v").unwrap();
        assert_eq!(
            r.publish(&v, ev("r2", "agent_started", json!({})))
                .await
                .unwrap(),
            1
        );
        // The refused events took no seq.
        assert_eq!(
            r.publish(&u, ev("r2", "agent_thinking", json!({"thought":"y"})))
                .await
                .unwrap(),
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_runs_expire_and_the_open_run_count_is_capped() {
        let r = runs(ExternalLimits {
            idle_ttl: Duration::from_secs(1),
            max_open_runs: 2,
        });
        let u = UserId::new("u").unwrap();
        for run in ["a", "b"] {
            r.publish(&u, ev(run, "agent_started", json!({})))
                .await
                .unwrap();
        }
        let e = r
            .publish(&u, ev("c", "agent_started", json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::TooManyRuns);
        assert_eq!(r.sweep(Instant::now() + Duration::from_secs(5)), 2);
        assert_eq!(r.open_runs(), 0);
        r.publish(&u, ev("c", "agent_started", json!({})))
            .await
            .unwrap();
    }
}
