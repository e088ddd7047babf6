//! `Metered`: a [`Broker`] wrapper that counts every operation, its errors and its duration.
//!
//! The bridge wraps whatever broker it is given, so every broker — memory, Redis, your own —
//! gets the same `agentwire_broker_*` metrics without implementing them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

use agentwire_core::{NowOrLater, RunEvent, RunId, UserId, async_trait};

use crate::{BridgeError, Broker, ReadLimit, StreamSlice};

/// Operations per broker and op.
pub(crate) const OPERATIONS: &str = "agentwire_broker_operations_total";
/// Failed operations per broker and op.
pub(crate) const ERRORS: &str = "agentwire_broker_errors_total";
/// Duration of broker operations per broker and op.
pub(crate) const DURATION: &str = "agentwire_broker_operation_duration_seconds";

/// One operation in this many has its duration recorded, so the clock is read and a histogram
/// sample taken for a bounded share of appends (the per-event path).
const DURATION_SAMPLE_EVERY: u64 = 16;

/// The operations [`Metered`] measures, in the order it holds their handles.
#[derive(Clone, Copy)]
enum Op {
    Append,
    ReadAfter,
    Subscribe,
    Unsubscribe,
    Remove,
    Ping,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::Append,
        Op::ReadAfter,
        Op::Subscribe,
        Op::Unsubscribe,
        Op::Remove,
        Op::Ping,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Op::Append => "append",
            Op::ReadAfter => "read_after",
            Op::Subscribe => "subscribe",
            Op::Unsubscribe => "unsubscribe",
            Op::Remove => "remove",
            Op::Ping => "ping",
        }
    }
}

/// One operation's handles, registered once (a label value that is not a literal makes
/// `metrics::counter!` build its labels on every call).
struct OpMetrics {
    count: metrics::Counter,
    errors: metrics::Counter,
    duration: metrics::Histogram,
}

pub(crate) struct Metered {
    inner: Arc<dyn Broker>,
    ops: AtomicU64,
    /// Shared with the outcome future of an append that has to wait.
    metrics: Arc<[OpMetrics; 6]>,
}

impl Metered {
    pub(crate) fn new(inner: Arc<dyn Broker>) -> Self {
        let broker = inner.name();
        let metrics = Op::ALL.map(|op| {
            let op = op.as_str();
            OpMetrics {
                count: metrics::counter!(OPERATIONS, "broker" => broker, "op" => op),
                errors: metrics::counter!(ERRORS, "broker" => broker, "op" => op),
                duration: metrics::histogram!(DURATION, "broker" => broker, "op" => op),
            }
        });
        Self {
            inner,
            ops: AtomicU64::new(0),
            metrics: Arc::new(metrics),
        }
    }

    /// Whether this operation's duration is sampled; the clock is only read for those.
    fn sampled(&self) -> Option<Instant> {
        (self.ops.fetch_add(1, Ordering::Relaxed) % DURATION_SAMPLE_EVERY == 0).then(Instant::now)
    }

    fn record<T>(&self, op: Op, started: Option<Instant>, result: &Result<T, BridgeError>) {
        record(&self.metrics, self.inner.name(), op, started, result);
    }
}

fn record_append(
    metrics: &[OpMetrics; 6],
    broker: &'static str,
    started: Option<Instant>,
    r: &Result<u64, BridgeError>,
) {
    // Too many users and too large an event are limits, not broker failures.
    if !matches!(
        r,
        Err(BridgeError::TooManyUsers { .. } | BridgeError::EventTooLarge { .. })
    ) {
        record(metrics, broker, Op::Append, started, r);
    }
}

fn record<T>(
    metrics: &[OpMetrics; 6],
    broker: &'static str,
    op: Op,
    started: Option<Instant>,
    result: &Result<T, BridgeError>,
) {
    let m = &metrics[op as usize];
    m.count.increment(1);
    if let Some(started) = started {
        m.duration.record(started.elapsed().as_secs_f64());
    }
    if let Err(e) = result {
        m.errors.increment(1);
        tracing::debug!(broker, op = op.as_str(), error = %e, "broker operation failed");
    }
}

#[async_trait]
impl Broker for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn append(
        &self,
        user: &UserId,
        event: &RunEvent,
        max_bytes: usize,
    ) -> NowOrLater<'static, Result<u64, BridgeError>> {
        let started = self.sampled();
        let broker = self.inner.name();
        match self.inner.append(user, event, max_bytes).into_now() {
            Ok(r) => {
                record_append(&self.metrics, broker, started, &r);
                NowOrLater::now(r)
            }
            Err(later) => {
                let metrics = self.metrics.clone();
                later.map(move |r| {
                    record_append(&metrics, broker, started, &r);
                    r
                })
            }
        }
    }

    fn acknowledge_failure(&self, user: &UserId, run: &RunId) {
        self.inner.acknowledge_failure(user, run);
    }

    async fn read_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: ReadLimit,
    ) -> Result<StreamSlice, BridgeError> {
        let started = self.sampled();
        let r = self.inner.read_after(user, after, epoch, limit).await;
        self.record(Op::ReadAfter, started, &r);
        r
    }

    async fn open(&self, user: &UserId) -> Result<(), BridgeError> {
        self.inner.open(user).await
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), BridgeError> {
        let started = self.sampled();
        let r = self.inner.subscribe(user).await;
        if !matches!(r, Err(BridgeError::TooManyUsers { .. })) {
            self.record(Op::Subscribe, started, &r);
        }
        r
    }

    async fn unsubscribe(&self, user: &UserId) {
        let started = self.sampled();
        self.inner.unsubscribe(user).await;
        self.record::<()>(Op::Unsubscribe, started, &Ok(()));
    }

    async fn remove(&self, user: &UserId) -> Result<(), BridgeError> {
        let started = self.sampled();
        let r = self.inner.remove(user).await;
        self.record(Op::Remove, started, &r);
        r
    }

    async fn touch(&self, users: &[UserId]) {
        self.inner.touch(users).await;
    }

    async fn ping(&self) -> Result<(), BridgeError> {
        let started = self.sampled();
        let r = self.inner.ping().await;
        self.record(Op::Ping, started, &r);
        r
    }

    async fn sweep(&self) -> usize {
        self.inner.sweep().await
    }

    fn stream_count(&self) -> Option<usize> {
        self.inner.stream_count()
    }
}
