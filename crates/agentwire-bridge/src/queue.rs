//! `ConnectionQueue`: the bounded outgoing queue of one connection, and the [`WebSocketSink`]
//! a transport hands to the bridge.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use agentwire_core::{CloseCode, CoreError, Frame, WebSocketSink};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// A connection's outgoing frames, capped in bytes.
///
/// The bridge pushes with [`WebSocketSink::send`] (never blocking); the connection's writer task
/// takes everything queued at once with [`ConnectionQueue::next_batch`], writes it and flushes
/// once. Over the cap, `send` refuses and the bridge closes the connection with 4008: a slow
/// client can never make the server hold more than `cap_bytes` for it, nor slow a publisher.
///
/// Every queue adds the bytes it holds to a [`QueuedBytes`] total: the bridge's, for a queue
/// made by [`AgentWebSocketBridge::connection_queue`](crate::AgentWebSocketBridge::connection_queue)
/// (agentwire's `/metrics` reports it as the gauge `agentwire_queued_bytes`).
#[derive(Debug)]
pub struct ConnectionQueue {
    state: Mutex<QueueState>,
    wake: Notify,
    closed: Notify,
    cap_bytes: usize,
    total: QueuedBytes,
}

/// The bytes queued on a group of [`ConnectionQueue`]s (a bridge's connections): an integer
/// read when metrics are scraped, not a `metrics` gauge, so the per-frame path adds to one
/// atomic and nothing else. Cheap to clone; clones share the total.
#[derive(Debug, Clone, Default)]
pub struct QueuedBytes(Arc<AtomicI64>);

impl QueuedBytes {
    /// Bytes queued now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed).max(0) as u64
    }

    fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes as i64, Ordering::Relaxed);
    }

    fn sub(&self, bytes: usize) {
        self.0.fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct QueueState {
    frames: VecDeque<Frame>,
    bytes: usize,
    close: Option<(CloseCode, String)>,
    /// The writer is gone; nothing more can be delivered.
    gone: bool,
}

/// What the writer should do next.
#[derive(Debug, PartialEq)]
pub enum Batch {
    /// Write these frames (at least one), then flush.
    Frames,
    /// Everything queued before the close has been handed out: send this close frame and stop.
    Close(CloseCode, String),
}

impl ConnectionQueue {
    /// A queue holding at most `cap_bytes` of frames, counted in no shared total.
    pub fn new(cap_bytes: usize) -> Self {
        Self::counted_in(cap_bytes, QueuedBytes::default())
    }

    /// A queue holding at most `cap_bytes` of frames, whose bytes count in `total`.
    pub fn counted_in(cap_bytes: usize, total: QueuedBytes) -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            wake: Notify::new(),
            closed: Notify::new(),
            cap_bytes,
            total,
        }
    }

    /// Waits until frames or a close are queued; moves up to `max` frames into `out`.
    ///
    /// Returns [`Batch::Frames`] when `out` received frames, [`Batch::Close`] once the queue is
    /// closed and drained.
    pub async fn next_batch(&self, out: &mut Vec<Frame>, max: usize) -> Batch {
        loop {
            // Register interest before checking, so a send between the check and the await
            // still wakes us (Notify keeps one permit).
            let notified = self.wake.notified();
            {
                let mut st = self.state.lock();
                if !st.frames.is_empty() {
                    self.move_into(&mut st, out, max.max(1));
                    return Batch::Frames;
                }
                if let Some((code, reason)) = &st.close {
                    return Batch::Close(*code, reason.clone());
                }
            }
            notified.await;
        }
    }

    /// Moves frames queued since the last [`Self::next_batch`] into `out`, up to `max` in
    /// `out` in all, without waiting. A writer calls it after yielding once, so the frames
    /// published meanwhile go out in the same write.
    pub fn take_more(&self, out: &mut Vec<Frame>, max: usize) {
        if out.len() < max {
            self.move_into(&mut self.state.lock(), out, max - out.len());
        }
    }

    /// Moves up to `n` of the oldest frames into `out`, releasing their bytes.
    fn move_into(&self, st: &mut QueueState, out: &mut Vec<Frame>, n: usize) {
        let n = st.frames.len().min(n);
        let mut taken = 0;
        for f in st.frames.drain(..n) {
            taken += f.len();
            out.push(f);
        }
        st.bytes -= taken;
        self.total.sub(taken);
    }

    /// Waits until a close is requested (by the bridge, a limit, or shutdown).
    pub async fn closed(&self) {
        loop {
            let notified = self.closed.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Puts a control frame in front of everything queued. Only for the greeting
    /// (`connection_established`), before the writer has started.
    pub fn prepend(&self, frame: Frame) {
        let mut st = self.state.lock();
        st.bytes += frame.len();
        self.total.add(frame.len());
        st.frames.push_front(frame);
        drop(st);
        self.wake.notify_one();
    }

    /// Marks the connection as gone (its writer ended): later sends fail with `SinkClosed` and
    /// queued frames are dropped.
    pub fn mark_gone(&self) {
        let mut st = self.state.lock();
        st.gone = true;
        st.frames.clear();
        self.total.sub(st.bytes);
        st.bytes = 0;
        if st.close.is_none() {
            st.close = Some((CloseCode::NORMAL, String::new()));
        }
        drop(st);
        self.wake.notify_one();
        self.closed.notify_waiters();
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Whether a close was requested or the writer is gone.
    pub fn is_closed(&self) -> bool {
        let st = self.state.lock();
        st.gone || st.close.is_some()
    }

    /// The close requested so far, if any.
    pub fn close_reason(&self) -> Option<(CloseCode, String)> {
        self.state.lock().close.clone()
    }

    /// Queues a control frame for this connection only, ignoring the byte cap.
    ///
    /// Control frames answer the client's own requests (ack, pong, error); they are small and
    /// bounded by the client's request rate, so refusing them would only confuse the client.
    pub fn send_control(&self, frame: Frame) -> Result<(), CoreError> {
        let st = self.state.lock();
        if st.gone || st.close.is_some() {
            return Err(CoreError::SinkClosed);
        }
        self.push(st, frame);
        Ok(())
    }

    /// Queues `frame` and wakes the writer if the queue was empty. A frame joining others wakes
    /// no one: the push that made the queue non-empty woke the writer, and the writer looks at
    /// the queue before it waits again (so per-frame wakeups under fan-out are one per batch).
    fn push(&self, mut st: parking_lot::MutexGuard<'_, QueueState>, frame: Frame) {
        let was_empty = st.frames.is_empty();
        st.bytes += frame.len();
        self.total.add(frame.len());
        st.frames.push_back(frame);
        drop(st);
        if was_empty {
            self.wake.notify_one();
        }
    }
}

impl Drop for ConnectionQueue {
    fn drop(&mut self) {
        self.total.sub(self.state.get_mut().bytes);
    }
}

impl WebSocketSink for ConnectionQueue {
    fn send(&self, frame: Frame) -> Result<(), CoreError> {
        let st = self.state.lock();
        if st.gone || st.close.is_some() {
            return Err(CoreError::SinkClosed);
        }
        if st.bytes + frame.len() > self.cap_bytes {
            return Err(CoreError::SinkFull {
                queued_bytes: st.bytes,
            });
        }
        self.push(st, frame);
        Ok(())
    }

    fn close(&self, code: CloseCode, reason: &str) {
        let mut st = self.state.lock();
        if st.close.is_some() {
            return;
        }
        if code == CloseCode::SLOW_CONSUMER || code == CloseCode::TOKEN_EXPIRED {
            // The client is not reading, or no longer authorized: writing the event backlog
            // would only delay the close (and hand events to expired credentials); the events
            // stay in history for its resume. Control frames (the greeting, acks, errors) are
            // few and small, and the client needs them to resume correctly.
            st.frames.retain(|f| f.seq() == 0);
            let kept: usize = st.frames.iter().map(Frame::len).sum();
            self.total.sub(st.bytes - kept);
            st.bytes = kept;
        }
        st.close = Some((code, reason.to_owned()));
        drop(st);
        self.wake.notify_one();
        self.closed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(seq: u64, len: usize) -> Frame {
        Frame::event(seq, vec![b'x'; len])
    }

    #[tokio::test]
    async fn batches_everything_queued_then_closes() {
        let q = ConnectionQueue::new(1000);
        q.send(f(1, 10)).unwrap();
        q.send(f(2, 10)).unwrap();
        q.close(CloseCode::GOING_AWAY, "bye");
        assert!(q.send(f(3, 10)).is_err());
        let mut out = Vec::new();
        assert_eq!(q.next_batch(&mut out, 64).await, Batch::Frames);
        assert_eq!(out.iter().map(Frame::seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(
            q.next_batch(&mut out, 64).await,
            Batch::Close(CloseCode::GOING_AWAY, "bye".into())
        );
    }

    #[test]
    fn refuses_over_the_byte_cap_and_drops_backlog_on_slow_close() {
        let q = ConnectionQueue::new(25);
        q.send(f(1, 10)).unwrap();
        q.send(f(2, 10)).unwrap();
        assert_eq!(
            q.send(f(3, 10)),
            Err(CoreError::SinkFull { queued_bytes: 20 })
        );
        q.close(CloseCode::SLOW_CONSUMER, "slow");
        assert_eq!(q.queued_bytes(), 0);
        let q = ConnectionQueue::new(1000);
        q.prepend(Frame::control(
            &serde_json::json!({"type": "connection_established"}),
        ));
        q.send(f(1, 10)).unwrap();
        q.close(CloseCode::SLOW_CONSUMER, "slow");
        assert!(
            q.queued_bytes() > 0,
            "the greeting survives a slow-consumer close"
        );
    }

    #[tokio::test]
    async fn a_waiting_writer_gets_every_frame_though_only_the_first_push_wakes_it() {
        let q = std::sync::Arc::new(ConnectionQueue::new(1000));
        let writer = tokio::spawn({
            let q = q.clone();
            async move {
                let mut out = Vec::new();
                // A partial take leaves frames that the next call finds without a wakeup.
                q.next_batch(&mut out, 1).await;
                q.next_batch(&mut out, 8).await;
                let first = out.len();
                // Then the queue is empty: this call waits for the next push.
                q.next_batch(&mut out, 8).await;
                (first, out.iter().map(Frame::seq).collect::<Vec<_>>())
            }
        });
        tokio::task::yield_now().await; // the writer is waiting now
        for seq in 1..=3 {
            q.send(f(seq, 5)).unwrap(); // only the first finds the queue empty
        }
        tokio::task::yield_now().await;
        q.send(f(4, 5)).unwrap();
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        let (first, seqs) = done.expect("the writer was woken").unwrap();
        assert_eq!(first, 3);
        assert_eq!(seqs, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn wakes_a_waiting_writer() {
        let q = std::sync::Arc::new(ConnectionQueue::new(1000));
        let q2 = q.clone();
        let writer = tokio::spawn(async move {
            let mut out = Vec::new();
            q2.next_batch(&mut out, 8).await;
            out.len()
        });
        tokio::task::yield_now().await;
        q.send(f(1, 5)).unwrap();
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        assert_eq!(woken.expect("the writer was woken").unwrap(), 1);
    }
}
