//! Group commit: per user stream, one append batch is in flight at a time; events of that user
//! that arrive meanwhile queue, and all of them go to Redis together in the next script call.
//!
//! Under light load a batch holds one event and costs what a single append did (one task
//! spawn and one channel hand-off more, ~1 µs); under load, a user's events share one script
//! call of five commands whatever their number (see `scripts::APPEND`). Batches of different
//! users run concurrently and are pipelined on the multiplexed connection(s): nothing waits for
//! another user's round trip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentwire_bridge::{BridgeError, HistoryConfig};
use agentwire_core::{NowOrLater, RunEvent, RunId, UserId, unix_millis};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::scripts::{Lua, is_no_script, refresh_after};
use crate::store::Store;
use crate::{Names, epoch_candidate, unavailable};

/// Most events in one script call (bounds the script's argument list and one reply's latency).
const MAX_BATCH: usize = 256;

/// How far a stream's seq counter jumps when its primary changed on a cluster without the
/// replica wait: the seqs skipped may include events the old primary acknowledged but never
/// replicated, and clients see the range as one `replay_gap` instead of a silent hole.
pub const FAILOVER_SEQ_JUMP: u64 = 100_000;

/// How long a run's failure is remembered when its emitter never acknowledges it (it does as
/// soon as it sees the failure: at the run's next event or end); past it, the line may be swept.
const FAILED_RUN_MEMORY: Duration = Duration::from_secs(600);

/// One event waiting for its seq.
struct Pending {
    /// The event's envelope at seq 0 ([`RunEvent::to_envelope_at_zero`]); its seq goes at `at`.
    json: Vec<u8>,
    at: usize,
    /// The event's run, for the fail-stop rule.
    run: RunId,
    done: oneshot::Sender<Result<u64, BridgeError>>,
}

/// The queue of one user on this node.
#[derive(Default)]
struct Line {
    queue: Vec<Pending>,
    /// A drain task owns the line (one batch of this user in flight at a time).
    draining: bool,
    /// When this node last refreshed the stream's expiry and trimmed it by age.
    refreshed: Option<Instant>,
    /// Runs with an event that failed, not acknowledged yet: their later events fail too
    /// (`Broker`'s fail-stop rule), so none is stored after a lost one. Rarely more than empty.
    failed_runs: Vec<(RunId, Instant)>,
}

impl Pending {
    /// The envelope before its seq.
    fn prefix(&self) -> &[u8] {
        &self.json[..self.at]
    }

    /// The envelope after its seq.
    fn suffix(&self) -> &[u8] {
        &self.json[self.at + 1..]
    }
}

impl Line {
    fn has_failed(&self, run: &RunId) -> bool {
        self.failed_runs.iter().any(|(r, _)| r == run)
    }

    /// Marks the runs of `batch` failed and takes their queued events out, to fail with it.
    fn fail_runs_of(&mut self, batch: &[Pending]) -> Vec<Pending> {
        for pending in batch {
            if !self.has_failed(&pending.run) {
                self.failed_runs.push((pending.run.clone(), Instant::now()));
            }
        }
        let (failed, kept) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|p| self.has_failed(&p.run));
        self.queue = kept;
        failed
    }
}

/// Wait for replicas before an append counts as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaWait {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
}

/// The append path of one node.
pub(crate) struct Committer {
    pub(crate) store: Store,
    pub(crate) names: Names,
    script: Lua,
    ttl: Duration,
    /// The script's arguments that are the same for every batch, as strings made once.
    fixed: FixedArgs,
    wait: Option<ReplicaWait>,
    /// foldhash: looked up for every event; seeded per process.
    lines: Mutex<HashMap<UserId, Line, foldhash::quality::RandomState>>,
}

impl Committer {
    pub(crate) fn new(
        store: Store,
        names: Names,
        history: &HistoryConfig,
        wait: Option<ReplicaWait>,
    ) -> Self {
        // Seq jump on a primary change; 0 on one Redis, and with the replica wait (an
        // acknowledged event is on a replica, and an unacknowledged one is never published).
        let jump = if names.cluster && wait.is_none() {
            FAILOVER_SEQ_JUMP
        } else {
            0
        };
        Self {
            store,
            names,
            script: Lua::new(crate::scripts::APPEND),
            ttl: history.ttl,
            fixed: FixedArgs::new(history, jump),
            wait,
            lines: Mutex::new(HashMap::default()),
        }
    }

    /// How often a node refreshes a stream's expiry while appending to it. The keys expire
    /// `ttl + ttl/8` after a refresh, so an idle stream lives at least `ttl` after its last event.
    fn refresh_every(&self) -> Duration {
        self.ttl / 8
    }

    /// Accepts `event` into `user`'s stream: serializes it, refuses it over `max_event_bytes`
    /// or when an earlier event of its run failed (fail-stop), and otherwise queues it — now,
    /// so its place in the stream is fixed when this returns — starting the user's drain task
    /// when none runs. The `Later` result resolves to its seq once the batch holding it is
    /// stored; dropping it does not withdraw the event.
    pub(crate) fn append(
        self: &Arc<Self>,
        user: &UserId,
        event: &RunEvent,
        max_event_bytes: usize,
    ) -> NowOrLater<'static, Result<u64, BridgeError>> {
        let (json, at) = event.to_envelope_at_zero();
        let size = RunEvent::size_at_any_seq(json.len(), 0);
        if size > max_event_bytes {
            return NowOrLater::now(Err(BridgeError::EventTooLarge {
                size,
                max: max_event_bytes,
            }));
        }
        let (done, stored) = oneshot::channel();
        let start = {
            let mut lines = self.lines.lock();
            let line = lines.entry(user.clone()).or_default();
            if line.has_failed(&event.run_id) {
                return NowOrLater::now(Err(unavailable(format!(
                    "an earlier event of run {} was not stored, so its later events are not either",
                    event.run_id
                ))));
            }
            line.queue.push(Pending {
                json,
                at,
                run: event.run_id.clone(),
                done,
            });
            !std::mem::replace(&mut line.draining, true)
        };
        if start {
            tokio::spawn(self.clone().drain(user.clone()));
        }
        NowOrLater::later(async move {
            stored
                .await
                .unwrap_or_else(|_| Err(unavailable("the append was dropped before it was stored")))
        })
    }

    /// The run's emitter saw its failure: the run's events are taken again.
    pub(crate) fn acknowledge_failure(&self, user: &UserId, run: &RunId) {
        if let Some(line) = self.lines.lock().get_mut(user) {
            line.failed_runs.retain(|(r, _)| r != run);
        }
    }

    /// Stores the user's queued events batch by batch until the queue is empty.
    async fn drain(self: Arc<Self>, user: UserId) {
        loop {
            let (batch, refresh) = {
                let mut lines = self.lines.lock();
                let Some(line) = lines.get_mut(&user) else {
                    return;
                };
                if line.queue.is_empty() {
                    line.draining = false;
                    return;
                }
                let take = line.queue.len().min(MAX_BATCH);
                let batch: Vec<Pending> = line.queue.drain(..take).collect();
                let refresh = line
                    .refreshed
                    .is_none_or(|at| at.elapsed() >= self.refresh_every());
                (batch, refresh)
            };
            metrics::histogram!("agentwire_redis_batch_events").record(batch.len() as f64);
            let result = self.store_batch(&user, &batch, refresh).await;
            if result.is_ok()
                && refresh
                && let Some(line) = self.lines.lock().get_mut(&user)
            {
                line.refreshed = Some(Instant::now());
            }
            match result {
                Ok(first) => {
                    for (seq, pending) in (first..).zip(batch) {
                        let _ = pending.done.send(Ok(seq));
                    }
                }
                Err(e @ BridgeError::NotReplicated { .. }) => {
                    for pending in batch {
                        let _ = pending.done.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    // Marked before anyone hears of the failure: an event of these runs queued
                    // from now on is refused, and those queued already fail with the batch.
                    let queued = match self.lines.lock().get_mut(&user) {
                        Some(line) => line.fail_runs_of(&batch),
                        None => Vec::new(),
                    };
                    for pending in batch.into_iter().chain(queued) {
                        let _ = pending.done.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One script call for the batch (and, with the replica wait, `WAIT` in the same pipeline
    /// and the publication after it). Returns the first seq.
    async fn store_batch(
        &self,
        user: &UserId,
        batch: &[Pending],
        refresh: bool,
    ) -> Result<u64, BridgeError> {
        let keys = self.names.keys(user);
        let channel = self.names.channel(user);
        let (epoch, now) = (epoch_candidate(), unix_millis().to_string());
        let fixed = &self.fixed;
        let mut args: Vec<&[u8]> = Vec::with_capacity(10 + 2 * batch.len());
        args.extend([
            epoch.as_bytes(),
            fixed.max_events.as_bytes(),
            fixed.expiry_ms.as_bytes(),
            // With the replica wait, the node publishes after `WAIT` instead.
            if self.wait.is_none() {
                channel.as_bytes()
            } else {
                b""
            },
            now.as_bytes(),
            self.names.publish_command().as_bytes(),
            if refresh { b"1" } else { b"0" },
            fixed.ttl_ms.as_bytes(),
            fixed.jump.as_bytes(),
            fixed.max_bytes.as_bytes(),
        ]);
        for pending in batch {
            args.push(pending.prefix());
            args.push(pending.suffix());
        }
        let mut conn = self.store.clone();
        let Some(wait) = self.wait else {
            let (first, _epoch): (u64, String) = self
                .script
                .run(&mut conn, &keys, &args)
                .await
                .map_err(unavailable)?;
            return Ok(first);
        };
        let pipe = |by_source: bool| {
            let mut pipe = redis::pipe();
            pipe.add_command(self.script.cmd(by_source, &keys, &args))
                .cmd("WAIT")
                .arg(wait.replicas)
                .arg(wait.timeout.as_millis() as u64);
            pipe
        };
        let mut reply: redis::RedisResult<((u64, String), u32)> =
            pipe(false).query_async(&mut conn).await;
        if reply.as_ref().is_err_and(is_no_script) {
            // A primary that never ran the script (a new one after a failover).
            reply = pipe(true).query_async(&mut conn).await;
        }
        if let Err(e) = &reply {
            refresh_after(e, &mut conn, &keys[1]).await;
        }
        let ((first, epoch), acked) = reply.map_err(unavailable)?;
        // Published even on a shortfall: the batch is in the primary's history either way, and
        // live order must stay seq order.
        let payload = batch_payload(first, &epoch, batch);
        if let Err(e) = redis::cmd(self.names.publish_command())
            .arg(&channel)
            .arg(payload)
            .query_async::<()>(&mut conn)
            .await
        {
            // The events are stored; a node that misses them finds the hole by seq.
            tracing::warn!(error = %e, "live publication after WAIT failed");
        }
        if acked < wait.replicas {
            metrics::counter!("agentwire_redis_wait_shortfall_total").increment(1);
            // Stored and published: the stream holds the batch, so this is no fail-stop failure
            // (the run's later events may follow it), only an unconfirmed one.
            return Err(BridgeError::NotReplicated {
                broker: "redis",
                cause: format!(
                    "acknowledged by {acked} of {} replicas within {:?}",
                    wait.replicas, wait.timeout
                ),
            });
        }
        Ok(first)
    }

    /// Forgets the state of users whose last expiry refresh is old enough that the next append
    /// refreshes anyway. Returns how many were dropped.
    pub(crate) fn sweep(&self) -> usize {
        let every = self.refresh_every();
        let mut lines = self.lines.lock();
        let before = lines.len();
        lines.retain(|_, line| {
            line.failed_runs
                .retain(|(_, at)| at.elapsed() < FAILED_RUN_MEMORY);
            line.draining
                || !line.failed_runs.is_empty()
                || line.refreshed.is_some_and(|at| at.elapsed() < every)
        });
        before - lines.len()
    }
}

/// The `APPEND` script's arguments that do not change between batches (see `scripts::APPEND`).
struct FixedArgs {
    max_events: String,
    /// How long the keys live after a refresh: `ttl + ttl/8` (see `Committer::refresh_every`).
    expiry_ms: String,
    ttl_ms: String,
    jump: String,
    max_bytes: String,
}

impl FixedArgs {
    fn new(history: &HistoryConfig, jump: u64) -> Self {
        let expiry = (history.ttl + history.ttl / 8).as_millis().max(1);
        Self {
            max_events: history.max_events.to_string(),
            expiry_ms: expiry.to_string(),
            ttl_ms: history.ttl.as_millis().to_string(),
            jump: jump.to_string(),
            max_bytes: history.max_bytes.to_string(),
        }
    }
}

/// A live message: `"<first seq> <epoch> <frame>\n<frame>…"` (frames are compact JSON, which
/// never holds a raw newline). One event is exactly the single-event form `"<seq> <epoch> <frame>"`.
fn batch_payload(first: u64, epoch: &str, batch: &[Pending]) -> Vec<u8> {
    let mut out = format!("{first} {epoch} ").into_bytes();
    for (i, (seq, pending)) in (first..).zip(batch).enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(pending.prefix());
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(pending.suffix());
    }
    out
}
