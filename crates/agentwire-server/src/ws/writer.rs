//! The writer task of one connection: drains its queue, writes many frames, flushes once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentwire_bridge::{Batch, ConnectionQueue, EVENTS_DELIVERED, EventCounters};
use agentwire_core::Frame;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as WsCloseCode, Data, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame as WsFrame};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::handshake::Socket;

/// A connection that flushed less than this long ago is busy: its writer coalesces (see
/// `write_loop`).
const COALESCE_WINDOW: Duration = Duration::from_millis(2);

/// Frames taken from the queue per write; one flush each.
const BATCH: usize = 256;

/// The writers' metric handles, registered once per server (see [`EventCounters`]).
#[derive(Debug, Clone)]
pub(crate) struct DeliveryMetrics {
    delivered: EventCounters,
    latency: metrics::Histogram,
}

impl DeliveryMetrics {
    pub(crate) fn new() -> Self {
        Self {
            delivered: EventCounters::new(EVENTS_DELIVERED),
            latency: metrics::histogram!("agentwire_delivery_latency_seconds"),
        }
    }

    /// Adds a flushed batch to the metrics: one counter increment per event type, not per
    /// frame, and one latency sample, the age of the batch's oldest live frame (the worst
    /// delivery latency of the batch). Per-frame metric calls on every connection cost more than
    /// the write itself under fan-out (docs/benchmarks.md).
    fn record(&self, tally: &Tally, flushed: Instant) {
        for (kind, n) in tally.counts.iter().take_while(|(k, _)| !k.is_empty()) {
            self.delivered.get(kind).increment(*n);
        }
        if let Some(accepted) = tally.oldest {
            self.latency
                .record(flushed.saturating_duration_since(accepted).as_secs_f64());
        }
    }
}

/// What one batch delivered, gathered while its frames are written.
#[derive(Default)]
struct Tally {
    counts: [(&'static str, u64); 8],
    oldest: Option<Instant>,
}

impl Tally {
    fn add(&mut self, frame: &Frame) {
        let Some(kind) = frame.event_type() else {
            return; // control frame
        };
        if let Some(slot) = self
            .counts
            .iter_mut()
            .find(|(k, _)| *k == kind || k.is_empty())
        {
            slot.0 = kind;
            slot.1 += 1;
        }
        if let Some(accepted) = frame.accepted() {
            self.oldest = Some(self.oldest.map_or(accepted, |o| o.min(accepted)));
        }
    }
}

/// Returns `Pending` once, having woken its own task: the task goes to the back of the run
/// queue, behind the tasks that are runnable now. Unlike `tokio::task::yield_now`, which defers
/// the task until the worker has also polled the I/O driver — a whole scheduler cycle more, which
/// cost ~0.15 ms of median latency at moderate load (docs/benchmarks.md).
#[derive(Default)]
struct BackOfQueue {
    yielded: bool,
}

impl Future for BackOfQueue {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.yielded {
            return std::task::Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

pub(crate) async fn write_loop(
    mut tx: SplitSink<Socket, Message>,
    queue: Arc<ConnectionQueue>,
    heartbeat: Duration,
    metrics: Arc<DeliveryMetrics>,
) {
    // Grows with the first batches instead of up front: 256 frames × 40 bytes reserved per idle
    // connection was half of its memory (docs/benchmarks.md).
    let mut batch = Vec::new();
    let mut last_flush: Option<Instant> = None;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        let next = tokio::select! {
            next = queue.next_batch(&mut batch, BATCH) => next,
            _ = ping.tick() => {
                if tx.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
                continue;
            }
        };
        match next {
            Batch::Frames => {
                // Coalesce when busy: a connection that flushed within the last
                // COALESCE_WINDOW lets the tasks that are runnable now (the other runs of its
                // user) queue their frames too, and writes them all in one write(2) — a syscall
                // and a client wakeup saved per run under fan-out. An idle connection writes at
                // once: the extra trip through the run queue cost ~0.1 ms of median latency at
                // moderate load (docs/benchmarks.md).
                if last_flush.is_some_and(|t| t.elapsed() < COALESCE_WINDOW) {
                    BackOfQueue::default().await;
                    queue.take_more(&mut batch, BATCH);
                }
                let mut tally = Tally::default();
                for frame in batch.drain(..) {
                    tally.add(&frame);
                    // Frames are serde_json output, UTF-8 by construction: sent as raw text
                    // frames over the shared bytes, with no per-connection re-validation.
                    let text = WsFrame::message(frame.into_bytes(), OpCode::Data(Data::Text), true);
                    if tx.feed(Message::Frame(text)).await.is_err() {
                        queue.mark_gone();
                        return;
                    }
                }
                if tx.flush().await.is_err() {
                    queue.mark_gone();
                    return;
                }
                let flushed = Instant::now();
                last_flush = Some(flushed);
                metrics.record(&tally, flushed);
            }
            Batch::Close(code, reason) => {
                let _ = tx
                    .send(Message::Close(Some(CloseFrame {
                        code: WsCloseCode::from(code.0),
                        reason: Utf8Bytes::from(reason),
                    })))
                    .await;
                break;
            }
        }
    }
    queue.mark_gone();
}
