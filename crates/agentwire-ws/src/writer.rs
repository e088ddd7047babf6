//! The writer task of one connection: drains its queue, encodes many frames, writes once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentwire_bridge::{Batch, ConnectionQueue, EVENTS_DELIVERED, EventCounters};
use agentwire_core::{EVENT_TYPES, Frame};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as WsCloseCode, Data, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame as WsFrame, FrameHeader};

use crate::io::{ControlBytes, WriteSide};

/// The header of an unfragmented, unmasked server text frame.
const TEXT: FrameHeader = FrameHeader {
    is_final: true,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    opcode: OpCode::Data(Data::Text),
    mask: None,
};

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
    /// delivery latency of the batch). The metric calls per batch are bounded by the number of
    /// event types, whatever the batch's size.
    fn record(&self, tally: &Tally, flushed: Instant) {
        for (i, n) in tally.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            self.delivered.by_index(Some(i)).increment(*n);
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
    /// Frames per event type, by index in `EVENT_TYPES`.
    counts: [u64; EVENT_TYPES.len()],
    oldest: Option<Instant>,
}

impl Tally {
    fn add(&mut self, frame: &Frame) {
        let Some(kind) = frame.event_type_index() else {
            return; // control frame
        };
        if let Some(n) = self.counts.get_mut(kind) {
            *n += 1;
        }
        if let Some(accepted) = frame.accepted() {
            self.oldest = Some(self.oldest.map_or(accepted, |o| o.min(accepted)));
        }
    }
}

/// Returns `Pending` once, having woken its own task: the task goes to the back of the run
/// queue, behind the tasks that are runnable now. Unlike `tokio::task::yield_now`, which defers
/// the task until the worker has also polled the I/O driver: the wait is one trip through the run
/// queue, never a whole scheduler cycle.
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

/// Bytes of small frames gathered into one write. A larger frame's payload is written from its
/// shared bytes instead of copied: a connection's buffer stays within this size.
const WRITE_BUFFER: usize = 16 * 1024;

/// Server frames encoded into one buffer and written with one `write_all`: the frame header by
/// tungstenite, the payload copied from the shared bytes. Generic over the sink so its property
/// test (`writer_decodes.rs`) can decode its output with tungstenite's reader; the server
/// writes to a [`WriteSide`].
pub(crate) struct FrameWriter<W> {
    pub(crate) tx: W,
    pub(crate) out: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(crate) fn new(tx: W) -> Self {
        Self {
            tx,
            out: Vec::new(),
        }
    }

    /// Buffers a text frame, or writes it if it does not fit. Frames are serde_json output,
    /// UTF-8 by construction: no per-connection re-validation.
    pub(crate) async fn text(&mut self, text: &[u8]) -> std::io::Result<()> {
        let _ = TEXT.format(text.len() as u64, &mut self.out); // a Vec's writes cannot fail
        if self.out.len() + text.len() <= WRITE_BUFFER {
            self.out.extend_from_slice(text);
            return Ok(());
        }
        self.flush().await?;
        self.tx.write_all(text).await
    }

    /// Buffers a control frame (ping, close).
    pub(crate) fn control(&mut self, frame: WsFrame) {
        let _ = frame.format(&mut self.out);
    }

    /// Writes what is buffered.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        let written = self.tx.write_all(&self.out).await;
        self.out.clear();
        written
    }

    /// Writes a batch of frames, then what is left buffered.
    async fn frames(&mut self, batch: &mut Vec<Frame>, tally: &mut Tally) -> std::io::Result<()> {
        for frame in batch.drain(..) {
            tally.add(&frame);
            self.text(frame.bytes()).await?;
        }
        self.flush().await
    }
}

pub(crate) async fn write_loop(
    tx: WriteSide,
    control: Arc<ControlBytes>,
    queue: Arc<ConnectionQueue>,
    heartbeat: Duration,
    metrics: Arc<DeliveryMetrics>,
) {
    // Grows with the first batches instead of up front: an idle connection holds no batch
    // capacity.
    let mut batch = Vec::new();
    let mut w: FrameWriter<WriteSide> = FrameWriter::new(tx);
    let mut last_flush: Option<Instant> = None;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        let next = tokio::select! {
            next = queue.next_batch(&mut batch, BATCH) => next,
            // The pongs tungstenite answered the client's pings with.
            () = std::future::poll_fn(|cx| control.poll_take(cx, &mut w.out)) => {
                if w.flush().await.is_err() {
                    break;
                }
                continue;
            }
            _ = ping.tick() => {
                w.control(WsFrame::ping(Bytes::new()));
                if w.flush().await.is_err() {
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
                // once: a lone frame never waits for the run queue.
                if last_flush.is_some_and(|t| t.elapsed() < COALESCE_WINDOW) {
                    BackOfQueue::default().await;
                    queue.take_more(&mut batch, BATCH);
                }
                let mut tally = Tally::default();
                if w.frames(&mut batch, &mut tally).await.is_err() {
                    break;
                }
                let flushed = Instant::now();
                last_flush = Some(flushed);
                metrics.record(&tally, flushed);
            }
            Batch::Close(code, reason) => {
                w.control(WsFrame::close(Some(CloseFrame {
                    code: WsCloseCode::from(code.0),
                    reason: Utf8Bytes::from(reason),
                })));
                let _ = w.flush().await;
                let _ = w.tx.shutdown().await; // FIN after the close frame (RFC 6455 §7.1.1)
                break;
            }
        }
    }
    queue.mark_gone();
}
