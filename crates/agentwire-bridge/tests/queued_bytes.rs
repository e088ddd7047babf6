//! The process-wide total of queued bytes (`agentwire_queued_bytes`). In a test binary of its
//! own: the total counts every queue of the process, so other tests running beside it would
//! move it.

use agentwire_bridge::{Batch, ConnectionQueue};
use agentwire_core::{CloseCode, Frame, WebSocketSink};

fn frame(seq: u64, len: usize) -> Frame {
    Frame::event(seq, vec![b'x'; len])
}

#[tokio::test]
async fn the_total_follows_sends_batches_slow_closes_and_drops() {
    assert_eq!(ConnectionQueue::total_queued_bytes(), 0);
    let a = ConnectionQueue::new(10_000);
    let b = ConnectionQueue::new(10_000);
    a.send(frame(1, 100)).unwrap();
    a.send(frame(2, 50)).unwrap();
    b.send_control(frame(0, 30)).unwrap();
    assert_eq!(ConnectionQueue::total_queued_bytes(), 180);

    // A batch handed to the writer is no longer queued.
    let mut out = Vec::new();
    assert_eq!(a.next_batch(&mut out, 1).await, Batch::Frames);
    assert_eq!(ConnectionQueue::total_queued_bytes(), 80);

    // A slow-consumer close drops the event backlog but keeps control frames.
    b.send(frame(1, 70)).unwrap();
    b.close(CloseCode::SLOW_CONSUMER, "slow");
    assert_eq!(ConnectionQueue::total_queued_bytes(), 80);

    // A writer that is gone drops what was queued; a dropped queue gives back the rest.
    a.mark_gone();
    assert_eq!(ConnectionQueue::total_queued_bytes(), 30);
    drop(b);
    assert_eq!(ConnectionQueue::total_queued_bytes(), 0);
}
