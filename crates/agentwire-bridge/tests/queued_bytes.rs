//! The bytes queued on a bridge's connections (`agentwire_queued_bytes`): a total the bridge
//! owns, so two bridges (two embedded servers, two tests) never move each other's.

use agentwire_bridge::{AgentWebSocketBridge, Batch, BridgeConfig};
use agentwire_core::{CloseCode, Configurable, Frame, WebSocketSink};

fn frame(seq: u64, len: usize) -> Frame {
    Frame::event(seq, vec![b'x'; len])
}

fn bridge() -> AgentWebSocketBridge {
    AgentWebSocketBridge::builder()
        .configure(BridgeConfig::default())
        .unwrap()
}

#[tokio::test]
async fn the_total_follows_sends_batches_slow_closes_and_drops() {
    let (bridge, other) = (bridge(), bridge());
    let total = || bridge.stats().queued_bytes;
    assert_eq!(total(), 0);
    let a = bridge.connection_queue(10_000);
    let b = bridge.connection_queue(10_000);
    let elsewhere = other.connection_queue(10_000);
    a.send(frame(1, 100)).unwrap();
    a.send(frame(2, 50)).unwrap();
    b.send_control(frame(0, 30)).unwrap();
    elsewhere.send(frame(1, 1_000)).unwrap();
    assert_eq!(total(), 180);
    assert_eq!(other.stats().queued_bytes, 1_000);

    // A batch handed to the writer is no longer queued.
    let mut out = Vec::new();
    assert_eq!(a.next_batch(&mut out, 1).await, Batch::Frames);
    assert_eq!(total(), 80);

    // A slow-consumer close drops the event backlog but keeps control frames.
    b.send(frame(1, 70)).unwrap();
    b.close(CloseCode::SLOW_CONSUMER, "slow");
    assert_eq!(total(), 80);

    // A writer that is gone drops what was queued; a dropped queue gives back the rest.
    a.mark_gone();
    assert_eq!(total(), 30);
    drop(b);
    assert_eq!(total(), 0);
}
