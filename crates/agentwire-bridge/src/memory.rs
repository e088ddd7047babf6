//! `MemoryBroker`: streams in this process; the default for one node.

use std::sync::Arc;
use tokio::time::Instant;

use agentwire_core::{NowOrLater, RunEvent, UserId, async_trait};
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::arena::FrameArena;
use crate::{BridgeError, Broker, HistoryBuffer, HistoryConfig, LiveSink, ReadLimit, StreamSlice};

/// The epoch read for a user who has no stream. A stream made later has its own epoch, so a
/// client that passes this one back is treated as holding nothing of it (`after` = 0), which is
/// right: it saw no event.
pub const NO_STREAM_EPOCH: &str = "none";

struct MemStream {
    epoch: Arc<str>,
    head: u64,
    history: HistoryBuffer,
    /// Where this stream's frames are serialized (see `arena.rs`).
    arena: FrameArena,
    last_activity: Instant,
    subscribers: usize,
    retired: bool,
}

/// Streams held in memory: seqs from a per-user counter, history in a ring buffer, live events
/// handed to the bridge synchronously under the user's stream lock (so delivery order is seq
/// order). Idle streams — no subscriber and no event for `history.ttl` — are dropped by
/// [`MemoryBroker::sweep_idle`].
pub struct MemoryBroker {
    history: HistoryConfig,
    max_streams: usize,
    streams: DashMap<UserId, Arc<Mutex<MemStream>>, foldhash::quality::RandomState>,
    live: Arc<dyn LiveSink>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("history", &self.history)
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl MemoryBroker {
    /// A broker keeping `history` per user and at most `max_streams` streams, delivering live
    /// events to `live` (the bridge's [`live_sink`](crate::UnconfiguredBridge::live_sink)).
    pub fn new(history: HistoryConfig, max_streams: usize, live: Arc<dyn LiveSink>) -> Self {
        Self {
            history,
            max_streams,
            streams: DashMap::default(),
            live,
        }
    }

    fn new_stream(&self) -> MemStream {
        MemStream {
            epoch: agentwire_core::ThreadId::generate().as_str()[2..14].into(),
            head: 0,
            history: HistoryBuffer::new(
                self.history.max_events,
                self.history.max_bytes,
                self.history.ttl,
            ),
            arena: FrameArena::default(),
            last_activity: Instant::now(),
            subscribers: 0,
            retired: false,
        }
    }

    /// Runs `f` under `user`'s stream lock, creating the stream when `create` allows.
    fn with_stream<R>(
        &self,
        user: &UserId,
        create: bool,
        f: impl FnOnce(&mut MemStream) -> R,
    ) -> Result<Option<R>, BridgeError> {
        loop {
            let existing = self.streams.get(user).map(|s| s.clone());
            let handle = match existing {
                Some(h) => h,
                None if !create => return Ok(None),
                None => {
                    // agentwire's own synthetic users (`__…`) are short-lived and never count.
                    if self.streams.len() >= self.max_streams && !user.is_reserved() {
                        return Err(BridgeError::TooManyUsers {
                            max: self.max_streams,
                        });
                    }
                    self.streams
                        .entry(user.clone())
                        .or_insert_with(|| Arc::new(Mutex::new(self.new_stream())))
                        .clone()
                }
            };
            let mut stream = handle.lock();
            if stream.retired {
                continue;
            }
            return Ok(Some(f(&mut stream)));
        }
    }

    /// Appends under the stream lock and hands the frame to live delivery; never waits.
    fn append_sync(
        &self,
        user: &UserId,
        event: &RunEvent,
        max_bytes: usize,
    ) -> Result<u64, BridgeError> {
        let appended = self.with_stream(user, true, |s| {
            let seq = s.head + 1;
            let frame = s.arena.frame(seq, event, max_bytes)?;
            s.head = seq;
            let now = Instant::now();
            s.last_activity = now;
            s.history.push(now, frame.clone());
            if s.subscribers > 0 {
                // Still under the stream lock: delivery order is seq order.
                self.live
                    .deliver(user, &s.epoch, frame.accepted_at(now.into_std()));
            }
            Ok(seq)
        })?;
        appended
            .unwrap_or(Ok(0))
            .map_err(|size| BridgeError::EventTooLarge {
                size,
                max: max_bytes,
            })
    }

    /// Drops streams with no subscriber and no event for `history.ttl`, and expires old
    /// history everywhere. Returns how many streams were dropped.
    pub fn sweep_idle(&self) -> usize {
        let ttl = self.history.ttl;
        let now = Instant::now();
        let before = self.streams.len();
        self.streams.retain(|_, handle| {
            let mut s = handle.lock();
            s.history.expire(now);
            if s.history.is_empty() {
                s.arena.release();
            }
            let idle = s.subscribers == 0 && now.saturating_duration_since(s.last_activity) > ttl;
            if idle {
                s.retired = true;
            }
            !idle
        });
        before.saturating_sub(self.streams.len())
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn append(
        &self,
        user: &UserId,
        event: &RunEvent,
        max_bytes: usize,
    ) -> NowOrLater<'static, Result<u64, BridgeError>> {
        // Every failure is immediate: nothing to keep for the fail-stop rule.
        NowOrLater::now(self.append_sync(user, event, max_bytes))
    }

    async fn read_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: ReadLimit,
    ) -> Result<StreamSlice, BridgeError> {
        let slice = self.with_stream(user, false, |s| {
            let after = if epoch.is_none_or(|e| e == &*s.epoch) {
                after
            } else {
                0
            };
            s.history.expire(Instant::now());
            let r = s.history.after(after, s.head, limit);
            StreamSlice {
                epoch: s.epoch.clone(),
                head: s.head,
                gap: r.gap,
                frames: r.frames,
            }
        })?;
        // No stream: an empty answer, and no stream is made. A read holds no events and no
        // connection, so it must not take one of the `limits.max_users` streams.
        Ok(slice.unwrap_or_else(|| StreamSlice {
            epoch: NO_STREAM_EPOCH.into(),
            head: 0,
            gap: None,
            frames: Vec::new(),
        }))
    }

    async fn open(&self, user: &UserId) -> Result<(), BridgeError> {
        self.with_stream(user, true, |s| s.last_activity = Instant::now())?;
        Ok(())
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), BridgeError> {
        self.with_stream(user, true, |s| {
            s.subscribers += 1;
            s.last_activity = Instant::now();
        })?;
        Ok(())
    }

    async fn unsubscribe(&self, user: &UserId) {
        let _ = self.with_stream(user, false, |s| {
            s.subscribers = s.subscribers.saturating_sub(1);
            s.last_activity = Instant::now();
        });
    }

    async fn remove(&self, user: &UserId) -> Result<(), BridgeError> {
        if let Some((_, handle)) = self.streams.remove(user) {
            handle.lock().retired = true;
        }
        Ok(())
    }

    async fn touch(&self, users: &[UserId]) {
        for user in users {
            let _ = self.with_stream(user, false, |s| s.last_activity = Instant::now());
        }
    }

    async fn ping(&self) -> Result<(), BridgeError> {
        Ok(())
    }

    async fn sweep(&self) -> usize {
        self.sweep_idle()
    }

    fn stream_count(&self) -> Option<usize> {
        Some(self.streams.len())
    }
}
