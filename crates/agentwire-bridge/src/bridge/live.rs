//! The bridge's [`LiveSink`]: live frames from the broker to this node's connections.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};

use agentwire_core::{Frame, UserId};

use super::Inner;
use crate::LiveSink;
use crate::replay::replay;
use crate::stream::{Routed, route};

/// The broker's [`LiveSink`]: routes live frames to this node's connections. Made with the
/// builder, bound to the bridge when the builder is configured; it holds the bridge weakly (the
/// bridge holds the broker, which holds this).
#[derive(Default)]
pub(crate) struct LiveRouter {
    bridge: OnceLock<Weak<Inner>>,
}

impl LiveRouter {
    /// Binds the router to the bridge its builder configured (once: `configure` consumes the
    /// builder).
    pub(super) fn bind(&self, inner: &Arc<Inner>) {
        let _ = self.bridge.set(Arc::downgrade(inner));
    }
}

impl LiveSink for LiveRouter {
    fn deliver(&self, user: &UserId, epoch: &str, frame: Frame) {
        let Some(inner) = self.bridge.get().and_then(Weak::upgrade) else {
            return;
        };
        let Some(handle) = inner.users.get(user).map(|h| h.clone()) else {
            return;
        };
        let mut replays = Vec::new();
        let mut dropped = 0;
        {
            let mut local = handle.lock();
            local
                .slots
                .retain_mut(|slot| match route(slot, epoch, &frame) {
                    Routed::Kept => true,
                    Routed::Drop => {
                        dropped += 1;
                        false
                    }
                    Routed::NeedsReplay => {
                        replays.push(slot.id);
                        true
                    }
                });
        }
        inner.connections.fetch_sub(dropped, Ordering::Relaxed);
        for id in replays {
            tokio::spawn(replay(inner.clone(), user.clone(), id));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentwire_core::{Configurable, Frame, UserId};

    use crate::bridge::tests::{event, queue, recv, seqs, user};
    use crate::{AgentWebSocketBridge, BridgeConfig, HistoryConfig, LiveSink, MemoryBroker};

    /// A live feed that loses chosen seqs, as a pub/sub feed can when its connection breaks.
    struct LossySink {
        next: Arc<dyn LiveSink>,
        lose: Vec<u64>,
    }

    impl LiveSink for LossySink {
        fn deliver(&self, user: &UserId, epoch: &str, frame: Frame) {
            if !self.lose.contains(&frame.seq()) {
                self.next.deliver(user, epoch, frame);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hole_in_the_live_feed_is_filled_from_history() {
        let builder = AgentWebSocketBridge::builder();
        let lossy = Arc::new(LossySink {
            next: builder.live_sink(),
            lose: vec![3, 4, 8],
        });
        let broker = Arc::new(MemoryBroker::new(HistoryConfig::default(), 100, lossy));
        let b = builder
            .broker(broker)
            .configure(BridgeConfig::default())
            .unwrap();
        let q = queue();
        b.attach(&user("a"), q.clone(), None).await.unwrap();
        for i in 0..9 {
            b.publish_event(&user("a"), &event(i)).await.unwrap();
        }
        // 3 and 4 are recovered when 5 reveals the hole; 8 when 9 does.
        assert_eq!(seqs(&recv(&q, 9).await), (1..=9).collect::<Vec<u64>>());
    }
}
