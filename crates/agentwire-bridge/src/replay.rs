//! The replay task: history into one connection, page by page, paced by its queue, then the
//! switch to live delivery.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use agentwire_core::{
    CloseCode, ConnectionId, ControlFrame, CoreError, Frame, UserId, WebSocketSink,
};

use crate::bridge::Inner;
use crate::stream::{ReplayEnd, close_slow, finish_replay};
use crate::{ReadLimit, StreamSlice};

/// Replays started (resume on connect, `resume` frame, or a hole found in live delivery).
const REPLAYS: &str = "agentwire_replays_total";
/// Events sent to a connection from history by a replay.
const REPLAYED_EVENTS: &str = "agentwire_replayed_events_total";
/// `replay_gap` frames sent.
const REPLAY_GAPS: &str = "agentwire_replay_gaps_total";

/// History read per page during a replay: at most 256 frames and 1 MiB (a page is held until
/// the connection's queue takes it).
const REPLAY_PAGE: ReadLimit = ReadLimit::events(256).bytes(1024 * 1024);
/// How long a replay waits for a client to drain its queue before closing it as slow (4008).
const REPLAY_STALL: Duration = Duration::from_secs(30);

/// Replays history into one connection page by page, paced by its queue, then switches it to
/// live delivery (see [`AgentWebSocketBridge`]).
pub(crate) async fn replay(inner: Arc<Inner>, user: UserId, id: ConnectionId) {
    metrics::counter!(REPLAYS).increment(1);
    loop {
        let Some(handle) = inner.users.get(&user).map(|h| h.clone()) else {
            return;
        };
        let snapshot = {
            let local = handle.lock();
            local
                .slots
                .iter()
                .find(|s| s.id == id && !s.closing)
                .map(|s| (s.cursor, s.epoch.clone(), s.sink.clone()))
        };
        let Some((cursor, epoch, sink)) = snapshot else {
            return;
        };
        let slice = match inner
            .broker
            .read_after(&user, cursor, Some(&epoch), REPLAY_PAGE)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(user_id = %user, error = %e, "replay failed: broker unavailable");
                sink.close(
                    CloseCode::INTERNAL,
                    "history unavailable; reconnect with your last seq",
                );
                return;
            }
        };
        if slice.epoch != epoch {
            sink.close(
                CloseCode::SERVICE_RESTART,
                "stream reset; reconnect with your last seq and epoch",
            );
            return;
        }
        let head = slice.head;
        let Some(last) = send_page(&user, &*sink, cursor, slice).await else {
            return;
        };
        let mut local = handle.lock();
        let Some(idx) = local.slots.iter().position(|s| s.id == id) else {
            return;
        };
        let slot = &mut local.slots[idx];
        if last > slot.cursor {
            slot.cursor = last;
            slot.delivered_any = true;
        }
        if last < head {
            continue; // more pages
        }
        match finish_replay(slot) {
            ReplayEnd::Live => return,
            ReplayEnd::ReadAgain => continue,
            ReplayEnd::Dropped => {
                local.slots.remove(idx);
                inner.connections.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Sends one page of history after `cursor` (its gap first); returns the last seq it covers, or
/// `None` when the connection cannot take frames.
async fn send_page(
    user: &UserId,
    sink: &dyn WebSocketSink,
    cursor: u64,
    slice: StreamSlice,
) -> Option<u64> {
    let mut last = cursor;
    if let Some(gap) = slice.gap {
        let frame = ControlFrame::ReplayGap { data: gap }.to_frame();
        if !send_paced(sink, frame).await {
            return None;
        }
        metrics::counter!(REPLAY_GAPS).increment(1);
        tracing::debug!(user_id = %user, from_seq = gap.from_seq, to_seq = gap.to_seq, "replay gap");
        last = last.max(gap.to_seq);
    }
    for frame in slice.frames {
        if frame.seq() <= last {
            continue;
        }
        let seq = frame.seq();
        if !send_paced(sink, frame).await {
            return None;
        }
        metrics::counter!(REPLAYED_EVENTS).increment(1);
        last = seq;
    }
    Some(last)
}

/// Queues a replay frame, waiting while the connection's queue is full. Returns false (after
/// closing the connection as a slow consumer when it never drains) when the frame cannot go.
async fn send_paced(sink: &dyn WebSocketSink, frame: Frame) -> bool {
    let started = Instant::now();
    loop {
        match sink.send(frame.clone()) {
            Ok(()) => return true,
            Err(CoreError::SinkFull { .. }) => {
                if started.elapsed() > REPLAY_STALL {
                    close_slow(sink);
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => return false,
        }
    }
}
