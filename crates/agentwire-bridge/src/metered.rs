//! `Metered`: a [`Broker`] wrapper that counts every operation, its errors and its duration.
//!
//! The bridge wraps whatever broker it is given, so every broker — memory, Redis, your own —
//! gets the same `agentwire_broker_*` metrics without implementing them.

use std::sync::Arc;
use std::time::Instant;

use agentwire_core::{RunEvent, UserId, async_trait};

use crate::{BridgeError, Broker, LiveSink, StreamSlice};

/// Operations per broker and op.
pub(crate) const OPERATIONS: &str = "agentwire_broker_operations_total";
/// Failed operations per broker and op.
pub(crate) const ERRORS: &str = "agentwire_broker_errors_total";
/// Duration of broker operations per broker and op.
pub(crate) const DURATION: &str = "agentwire_broker_operation_duration_seconds";

pub(crate) struct Metered(pub(crate) Arc<dyn Broker>);

impl Metered {
    fn record<T>(&self, op: &'static str, started: Instant, result: &Result<T, BridgeError>) {
        let broker = self.0.name();
        metrics::counter!(OPERATIONS, "broker" => broker, "op" => op).increment(1);
        metrics::histogram!(DURATION, "broker" => broker, "op" => op)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            metrics::counter!(ERRORS, "broker" => broker, "op" => op).increment(1);
            tracing::debug!(broker, op, error = %e, "broker operation failed");
        }
    }
}

#[async_trait]
impl Broker for Metered {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn set_live_sink(&self, sink: Arc<dyn LiveSink>) {
        self.0.set_live_sink(sink);
    }

    async fn append(&self, user: &UserId, event: &RunEvent) -> Result<u64, BridgeError> {
        let started = Instant::now();
        let r = self.0.append(user, event).await;
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
        let r = self.0.read_after(user, after, epoch, limit).await;
        self.record("read_after", started, &r);
        r
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), BridgeError> {
        let started = Instant::now();
        let r = self.0.subscribe(user).await;
        if !matches!(r, Err(BridgeError::TooManyUsers { .. })) {
            self.record("subscribe", started, &r);
        }
        r
    }

    async fn unsubscribe(&self, user: &UserId) {
        let started = Instant::now();
        self.0.unsubscribe(user).await;
        self.record::<()>("unsubscribe", started, &Ok(()));
    }

    async fn remove(&self, user: &UserId) -> Result<(), BridgeError> {
        let started = Instant::now();
        let r = self.0.remove(user).await;
        self.record("remove", started, &r);
        r
    }

    async fn touch(&self, users: &[UserId]) {
        self.0.touch(users).await;
    }

    async fn ping(&self) -> Result<(), BridgeError> {
        let started = Instant::now();
        let r = self.0.ping().await;
        self.record("ping", started, &r);
        r
    }

    async fn sweep(&self) -> usize {
        self.0.sweep().await
    }

    fn stream_count(&self) -> Option<usize> {
        self.0.stream_count()
    }
}
