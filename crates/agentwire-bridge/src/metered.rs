//! `Metered`: a [`Broker`] wrapper that counts every operation, its errors and its duration.
//!
//! The bridge wraps whatever broker it is given, so every broker — memory, Redis, your own —
//! gets the same `agentwire_broker_*` metrics without implementing them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use agentwire_core::{RunEvent, UserId, async_trait};

use crate::{BridgeError, Broker, LiveSink, StreamSlice};

/// Operations per broker and op.
pub(crate) const OPERATIONS: &str = "agentwire_broker_operations_total";
/// Failed operations per broker and op.
pub(crate) const ERRORS: &str = "agentwire_broker_errors_total";
/// Duration of broker operations per broker and op.
pub(crate) const DURATION: &str = "agentwire_broker_operation_duration_seconds";

/// One operation in this many has its duration recorded: a histogram sample per event on the
/// publish path cost more than the in-memory append itself (docs/benchmarks.md).
const DURATION_SAMPLE_EVERY: u64 = 16;

pub(crate) struct Metered {
    inner: Arc<dyn Broker>,
    ops: AtomicU64,
}

impl Metered {
    pub(crate) fn new(inner: Arc<dyn Broker>) -> Self {
        Self {
            inner,
            ops: AtomicU64::new(0),
        }
    }

    fn record<T>(&self, op: &'static str, started: Instant, result: &Result<T, BridgeError>) {
        let broker = self.inner.name();
        metrics::counter!(OPERATIONS, "broker" => broker, "op" => op).increment(1);
        if self.ops.fetch_add(1, Ordering::Relaxed) % DURATION_SAMPLE_EVERY == 0 || result.is_err()
        {
            metrics::histogram!(DURATION, "broker" => broker, "op" => op)
                .record(started.elapsed().as_secs_f64());
        }
        if let Err(e) = result {
            metrics::counter!(ERRORS, "broker" => broker, "op" => op).increment(1);
            tracing::debug!(broker, op, error = %e, "broker operation failed");
        }
    }
}

#[async_trait]
impl Broker for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn set_live_sink(&self, sink: Arc<dyn LiveSink>) {
        self.inner.set_live_sink(sink);
    }

    async fn append(&self, user: &UserId, event: &RunEvent) -> Result<u64, BridgeError> {
        let started = Instant::now();
        let r = self.inner.append(user, event).await;
        // Too many users is a limit, not a broker failure.
        if !matches!(r, Err(BridgeError::TooManyUsers { .. })) {
            self.record("append", started, &r);
        }
        r
    }

    async fn read_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: usize,
    ) -> Result<StreamSlice, BridgeError> {
        let started = Instant::now();
        let r = self.inner.read_after(user, after, epoch, limit).await;
        self.record("read_after", started, &r);
        r
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), BridgeError> {
        let started = Instant::now();
        let r = self.inner.subscribe(user).await;
        if !matches!(r, Err(BridgeError::TooManyUsers { .. })) {
            self.record("subscribe", started, &r);
        }
        r
    }

    async fn unsubscribe(&self, user: &UserId) {
        let started = Instant::now();
        self.inner.unsubscribe(user).await;
        self.record::<()>("unsubscribe", started, &Ok(()));
    }

    async fn remove(&self, user: &UserId) -> Result<(), BridgeError> {
        let started = Instant::now();
        let r = self.inner.remove(user).await;
        self.record("remove", started, &r);
        r
    }

    async fn touch(&self, users: &[UserId]) {
        self.inner.touch(users).await;
    }

    async fn ping(&self) -> Result<(), BridgeError> {
        let started = Instant::now();
        let r = self.inner.ping().await;
        self.record("ping", started, &r);
        r
    }

    async fn sweep(&self) -> usize {
        self.inner.sweep().await
    }

    fn stream_count(&self) -> Option<usize> {
        self.inner.stream_count()
    }
}
