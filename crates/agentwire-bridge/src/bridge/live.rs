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
