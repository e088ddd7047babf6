//! The connections of one user on this node, and how frames reach them.

use std::sync::Arc;

use agentwire_core::{CloseCode, ConnectionId, CoreError, Frame, WebSocketSink};

/// Where a client wants its replay to start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResumeFrom {
    /// The last seq the client received.
    pub last_seq: u64,
    /// The epoch that seq belongs to; another epoch than the stream's means the client's
    /// position is meaningless and it is treated as `last_seq = 0`.
    pub epoch: Option<String>,
}

/// Live frames a replaying connection holds at most; past that it re-reads history instead.
pub(crate) const REPLAY_BUFFER: usize = 4096;

pub(crate) enum SlotState {
    /// Frames go straight to the sink; `cursor` is the last seq queued.
    Live,
    /// History is being replayed by a task; live frames wait in `buffer`.
    Replaying {
        buffer: Vec<Frame>,
        overflowed: bool,
    },
}

pub(crate) struct Slot {
    pub(crate) id: ConnectionId,
    pub(crate) sink: Arc<dyn WebSocketSink>,
    pub(crate) epoch: Arc<str>,
    /// The last event seq queued on this connection.
    pub(crate) cursor: u64,
    pub(crate) delivered_any: bool,
    pub(crate) state: SlotState,
    /// Closed by the bridge (shutdown, debug); waiting for the transport to detach.
    pub(crate) closing: bool,
}

#[derive(Default)]
pub(crate) struct LocalUser {
    pub(crate) slots: Vec<Slot>,
    pub(crate) retired: bool,
}

pub(crate) enum Offer {
    Delivered,
    /// The slot must be removed (closed, or over its cap and now closed with 4008).
    Drop,
}

/// Sends `frame` to one slot; a full queue closes the connection as a slow consumer.
pub(crate) fn offer(slot: &mut Slot, frame: Frame) -> Offer {
    let seq = frame.seq();
    match slot.sink.send(frame) {
        Ok(()) => {
            if seq > 0 {
                slot.cursor = seq;
                slot.delivered_any = true;
            }
            Offer::Delivered
        }
        Err(CoreError::SinkFull { queued_bytes }) => {
            tracing::debug!(connection_id = %slot.id, queued_bytes, "slow consumer closed");
            close_slow(&*slot.sink);
            Offer::Drop
        }
        Err(_) => Offer::Drop,
    }
}

/// Connections closed by agentwire, by reason.
pub(crate) const CONNECTION_CLOSES: &str = "agentwire_connection_closes_total";

/// Closes a connection whose queue is full (4008) and counts it.
pub(crate) fn close_slow(sink: &dyn WebSocketSink) {
    metrics::counter!(CONNECTION_CLOSES, "reason" => "slow_consumer").increment(1);
    sink.close(
        CloseCode::SLOW_CONSUMER,
        "slow consumer: reconnect with your last seq to resume",
    );
}

/// What a live frame does to one slot.
pub(crate) enum Routed {
    Kept,
    /// Remove the slot.
    Drop,
    /// A hole: the slot switched to replay; start a replay task for it.
    NeedsReplay,
}

/// Whether `epoch` is the slot's: usually the very same `Arc` text, so the pointer decides
/// before the bytes are compared (this runs per frame per connection).
fn same_epoch(slot: &str, epoch: &str) -> bool {
    std::ptr::eq(slot, epoch) || slot == epoch
}

pub(crate) fn route(slot: &mut Slot, epoch: &str, frame: &Frame) -> Routed {
    if slot.closing {
        return Routed::Kept;
    }
    match &mut slot.state {
        SlotState::Replaying { buffer, overflowed } => {
            if buffer.len() < REPLAY_BUFFER {
                buffer.push(frame.clone());
            } else {
                *overflowed = true;
                buffer.clear();
            }
            Routed::Kept
        }
        // A replaying slot may not know its epoch yet (attach in progress); its replay task
        // checks the epoch when it reads history.
        SlotState::Live if !same_epoch(&slot.epoch, epoch) => {
            // The stream was reset under a live connection: its seqs start over.
            slot.sink.close(
                CloseCode::SERVICE_RESTART,
                "stream reset; reconnect with your last seq and epoch",
            );
            Routed::Drop
        }
        SlotState::Live => {
            let seq = frame.seq();
            if seq <= slot.cursor {
                Routed::Kept // already delivered on this connection
            } else if seq > slot.cursor + 1 {
                slot.state = SlotState::Replaying {
                    buffer: vec![frame.clone()],
                    overflowed: false,
                };
                Routed::NeedsReplay
            } else {
                match offer(slot, frame.clone()) {
                    Offer::Delivered => Routed::Kept,
                    Offer::Drop => Routed::Drop,
                }
            }
        }
    }
}

/// How [`finish_replay`] left a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayEnd {
    /// Live: frames now go straight to the sink.
    Live,
    /// Still replaying: history must be read again (the buffer overflowed, or it does not
    /// follow the cursor without a hole).
    ReadAgain,
    /// The sink refused a frame: remove the slot.
    Dropped,
}

/// Ends a replay once history is read up to the stream head: queues the buffered live frames
/// that follow the cursor without a hole and goes live.
pub(crate) fn finish_replay(slot: &mut Slot) -> ReplayEnd {
    let SlotState::Replaying { buffer, overflowed } = &mut slot.state else {
        return ReplayEnd::Live;
    };
    if *overflowed {
        *overflowed = false;
        buffer.clear();
        return ReplayEnd::ReadAgain;
    }
    let buffered = std::mem::take(buffer);
    for frame in buffered {
        if frame.seq() <= slot.cursor {
            continue;
        }
        if frame.seq() != slot.cursor + 1 {
            return ReplayEnd::ReadAgain;
        }
        if let Offer::Drop = offer(slot, frame) {
            return ReplayEnd::Dropped;
        }
    }
    slot.state = SlotState::Live;
    ReplayEnd::Live
}
