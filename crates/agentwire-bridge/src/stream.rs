//! `UserStream`: one user's seq counter, history and live connections.

use std::sync::Arc;
use std::time::Instant;

use agentwire_core::{
    CloseCode, ConnectionId, ControlFrame, CoreError, Frame, ReplayGap, Resumed, WebSocketSink,
};

use crate::{BridgeError, HistoryBuffer};

/// Where a client wants its replay to start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResumeFrom {
    /// The last seq the client received.
    pub last_seq: u64,
    /// The epoch that seq belongs to; another epoch than the stream's means the client's
    /// position is meaningless and it is treated as `last_seq = 0`.
    pub epoch: Option<String>,
}

pub(crate) struct Slot {
    pub(crate) id: ConnectionId,
    pub(crate) sink: Arc<dyn WebSocketSink>,
    /// The last event seq queued on this connection (its cursor).
    pub(crate) cursor: u64,
    /// Whether any event frame was queued on this connection yet.
    pub(crate) delivered_any: bool,
}

pub(crate) struct UserStream {
    pub(crate) epoch: Arc<str>,
    pub(crate) head: u64,
    pub(crate) history: HistoryBuffer,
    pub(crate) conns: Vec<Slot>,
    pub(crate) last_activity: Instant,
    /// Set when the sweeper removed the stream from the registry; holders of a stale handle must
    /// look the user up again.
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
            tracing::debug!(connection = %slot.id, queued_bytes, "slow consumer closed");
            slot.sink.close(
                CloseCode::SLOW_CONSUMER,
                "slow consumer: reconnect with your last seq to resume",
            );
            Offer::Drop
        }
        Err(_) => Offer::Drop,
    }
}

impl UserStream {
    pub(crate) fn new(epoch: Arc<str>, history: HistoryBuffer) -> Self {
        Self {
            epoch,
            head: 0,
            history,
            conns: Vec::new(),
            last_activity: Instant::now(),
            retired: false,
        }
    }

    /// Queues on `slot` the events after `from` (a gap frame first when history lost some),
    /// moving its cursor to the head. Runs under the stream lock, so no live event can slip in
    /// between the replay and the switch to live delivery.
    pub(crate) fn replay_into(
        &mut self,
        slot: &mut Slot,
        from: &ResumeFrom,
    ) -> Result<(Resumed, bool), BridgeError> {
        let same_epoch = from.epoch.as_deref().is_none_or(|e| e == &*self.epoch);
        let after = if same_epoch { from.last_seq } else { 0 };
        if after > self.head {
            return Err(BridgeError::ResumeAhead {
                last_seq: after,
                head: self.head,
            });
        }
        self.history.expire(Instant::now());
        let replay = self.history.after(after, self.head, usize::MAX);
        let mut replayed = 0u64;
        let mut alive = true;
        if let Some(gap) = replay.gap {
            alive = send_gap(slot, gap);
        }
        for frame in replay.frames {
            if !alive {
                break;
            }
            alive = matches!(offer(slot, frame), Offer::Delivered);
            replayed += u64::from(alive);
        }
        slot.cursor = self.head;
        Ok((
            Resumed {
                from_seq: after + 1,
                replayed,
            },
            alive,
        ))
    }
}

fn send_gap(slot: &mut Slot, gap: ReplayGap) -> bool {
    let frame = ControlFrame::ReplayGap { data: gap }.to_frame();
    matches!(offer(slot, frame), Offer::Delivered)
}
