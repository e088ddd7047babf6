//! `AgentWebSocketBridge`: the registry of user streams and the fan-out to their connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentwire_core::{
    CloseCode, Configurable, ConnectionId, CoreError, EventSink, Frame, ReplayGap, Resumed,
    RunEvent, UserId, WebSocketSink, async_trait,
};
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::stream::{Offer, Slot, UserStream, offer};
use crate::{BridgeConfig, BridgeError, HistoryBuffer, ResumeFrom};

/// The bridge before [`Configurable::configure`]: it has no methods that deliver anything, so it
/// cannot be used — or handed to startup's `Agents` phase — by mistake.
#[derive(Debug, Default)]
pub struct UnconfiguredBridge {
    _private: (),
}

impl Configurable for UnconfiguredBridge {
    type Config = BridgeConfig;
    type Configured = AgentWebSocketBridge;
    type Error = BridgeError;

    fn configure(self, config: BridgeConfig) -> Result<AgentWebSocketBridge, BridgeError> {
        if config.history.max_events > 1_000_000 {
            return Err(BridgeError::InvalidConfig {
                key: "history.max_events",
                reason: format!(
                    "{} is over the maximum of 1000000",
                    config.history.max_events
                ),
            });
        }
        if config.history.ttl < Duration::from_secs(1) {
            return Err(BridgeError::InvalidConfig {
                key: "history.ttl",
                reason: "must be at least 1s".into(),
            });
        }
        if config.max_connections_per_user == 0 || config.max_users == 0 {
            return Err(BridgeError::InvalidConfig {
                key: "limits.max_connections_per_user / limits.max_users",
                reason: "must be at least 1".into(),
            });
        }
        Ok(AgentWebSocketBridge {
            inner: Arc::new(Inner {
                config,
                streams: DashMap::new(),
                connections: AtomicUsize::new(0),
                published: AtomicU64::new(0),
                shutting_down: AtomicBool::new(false),
            }),
        })
    }
}

/// Delivers each user's run events to that user's live connections, in `seq` order, and keeps
/// a bounded history for resume.
///
/// - Every accepted event gets the next `seq` of its user's stream and is serialized **once**;
///   the same bytes go to all of the user's connections.
/// - Publishing never waits for a client: each connection has a bounded queue (its
///   [`WebSocketSink`]); one that is full is closed with 4008 and its client resumes from history.
/// - Attaching with a [`ResumeFrom`] replays history and switches to live delivery under the
///   user's stream lock, so the switch has no hole and no duplicate.
///
/// Cheap to clone; clones share the same streams.
///
/// ```
/// use std::sync::Arc;
/// use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, ConnectionQueue};
/// use agentwire_core::{AgentStarted, Configurable, EventKind, RunEvent, RunId, ThreadId, UserId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default())?;
/// let alice = UserId::new("alice")?;
/// let queue = Arc::new(ConnectionQueue::new(1 << 20));
/// bridge.attach(&alice, queue.clone(), None).await?;
///
/// let event = RunEvent::now(RunId::generate(), ThreadId::generate(), "demo".into(),
///     EventKind::AgentStarted(AgentStarted { input: None }));
/// assert_eq!(bridge.publish_event(&alice, &event).await?, 1);
/// assert!(queue.queued_bytes() > 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AgentWebSocketBridge {
    inner: Arc<Inner>,
}

struct Inner {
    config: BridgeConfig,
    streams: DashMap<UserId, Arc<Mutex<UserStream>>>,
    connections: AtomicUsize,
    published: AtomicU64,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for AgentWebSocketBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWebSocketBridge")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Where a new connection starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The connection's id.
    pub connection_id: ConnectionId,
    /// The stream's epoch.
    pub epoch: String,
    /// The stream head when the connection was attached.
    pub last_seq: u64,
    /// The replay done on attach, when a resume point was given.
    pub resumed: Option<Resumed>,
}

/// A page of a user's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The stream's epoch.
    pub epoch: String,
    /// The stream head.
    pub head: u64,
    /// Events asked for but no longer held.
    pub gap: Option<ReplayGap>,
    /// Held events after the requested seq, in order.
    pub frames: Vec<Frame>,
}

/// Counters of the bridge, for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeStats {
    /// Streams held (users with history or connections).
    pub users: usize,
    /// Live connections.
    pub connections: usize,
    /// Events accepted since start.
    pub events_published: u64,
}

impl AgentWebSocketBridge {
    /// Starts building a bridge; call [`Configurable::configure`] on the result.
    pub fn builder() -> UnconfiguredBridge {
        UnconfiguredBridge::default()
    }

    /// The settings in force.
    pub fn config(&self) -> &BridgeConfig {
        &self.inner.config
    }

    fn new_stream(&self) -> UserStream {
        let epoch: Arc<str> = agentwire_core::ThreadId::generate().as_str()[2..14].into();
        UserStream::new(
            epoch,
            HistoryBuffer::new(
                self.inner.config.history.max_events,
                self.inner.config.history.ttl,
            ),
        )
    }

    /// Runs `f` on `user`'s stream under its lock, creating the stream when `create` allows.
    fn with_stream<R>(
        &self,
        user: &UserId,
        create: bool,
        f: impl FnOnce(&mut UserStream) -> R,
    ) -> Result<Option<R>, BridgeError> {
        loop {
            let existing = self.inner.streams.get(user).map(|s| s.clone());
            let handle = match existing {
                Some(h) => h,
                None if !create => return Ok(None),
                None => {
                    if self.inner.streams.len() >= self.inner.config.max_users {
                        return Err(BridgeError::TooManyUsers {
                            max: self.inner.config.max_users,
                        });
                    }
                    self.inner
                        .streams
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

    /// Accepts `event` into `user`'s stream: assigns the next seq, serializes once, stores it in
    /// history and queues it on every live connection of `user`. Never waits for a client.
    ///
    /// Publishing goes on during shutdown, so runs that finish in the grace period reach their
    /// users.
    ///
    /// # Errors
    /// [`BridgeError::TooManyUsers`] when a new stream would pass `max_users`.
    pub async fn publish_event(&self, user: &UserId, event: &RunEvent) -> Result<u64, BridgeError> {
        let seq = self
            .with_stream(user, true, |s| {
                let seq = s.head + 1;
                s.head = seq;
                let frame = Frame::event(seq, event.to_envelope_json(seq));
                let now = Instant::now();
                s.last_activity = now;
                s.history.push(now, frame.clone());
                let before = s.conns.len();
                s.conns
                    .retain_mut(|slot| matches!(offer(slot, frame.clone()), Offer::Delivered));
                (seq, before - s.conns.len())
            })?
            .map(|(seq, dropped)| {
                if dropped > 0 {
                    self.inner.connections.fetch_sub(dropped, Ordering::Relaxed);
                }
                seq
            })
            .unwrap_or_default();
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// Attaches a connection of `user`. With `resume`, the events after it are queued on `sink`
    /// first (a `replay_gap` frame before them when history lost some); then live events follow
    /// with no hole and no duplicate.
    ///
    /// # Errors
    /// [`BridgeError::TooManyConnections`], [`BridgeError::TooManyUsers`],
    /// [`BridgeError::ResumeAhead`] (nothing is attached then), [`BridgeError::ShuttingDown`].
    pub async fn attach(
        &self,
        user: &UserId,
        sink: Arc<dyn WebSocketSink>,
        resume: Option<ResumeFrom>,
    ) -> Result<Attachment, BridgeError> {
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(BridgeError::ShuttingDown);
        }
        let max = self.inner.config.max_connections_per_user;
        let attached = self.with_stream(user, true, |s| {
            if s.conns.len() >= max {
                return Err(BridgeError::TooManyConnections { max });
            }
            let mut slot = Slot {
                id: ConnectionId::next(),
                sink,
                cursor: s.head,
                delivered_any: false,
            };
            let mut resumed = None;
            let mut alive = true;
            if let Some(from) = &resume {
                let (r, ok) = s.replay_into(&mut slot, from)?;
                resumed = Some(r);
                alive = ok;
            }
            let attachment = Attachment {
                connection_id: slot.id,
                epoch: s.epoch.to_string(),
                last_seq: s.head,
                resumed,
            };
            s.last_activity = Instant::now();
            if alive {
                s.conns.push(slot);
            }
            Ok((attachment, alive))
        })?;
        let (attachment, alive) = attached.expect("with_stream creates the stream")?;
        if alive {
            self.inner.connections.fetch_add(1, Ordering::Relaxed);
        }
        Ok(attachment)
    }

    /// Handles a `resume` frame on an attached connection: replays what the connection has not
    /// delivered after `from`. Earlier events than the connection already delivered cannot be
    /// replayed in order on it; the client must reconnect with `?last_seq=` for those.
    ///
    /// # Errors
    /// [`BridgeError::NotAttached`], [`BridgeError::ResumeAhead`],
    /// [`BridgeError::ResumeAfterDelivery`].
    pub async fn resume(
        &self,
        user: &UserId,
        connection: ConnectionId,
        from: &ResumeFrom,
    ) -> Result<Resumed, BridgeError> {
        let result = self.with_stream(user, false, |s| {
            let idx = s
                .conns
                .iter()
                .position(|c| c.id == connection)
                .ok_or(BridgeError::NotAttached)?;
            let slot = &mut s.conns[idx];
            let same_epoch = from.epoch.as_deref().is_none_or(|e| e == &*s.epoch);
            if slot.delivered_any && same_epoch {
                if from.last_seq > s.head {
                    return Err(BridgeError::ResumeAhead {
                        last_seq: from.last_seq,
                        head: s.head,
                    });
                }
                if from.last_seq < slot.cursor {
                    return Err(BridgeError::ResumeAfterDelivery {
                        last_seq: from.last_seq,
                        delivered: slot.cursor,
                    });
                }
                return Ok((
                    Resumed {
                        from_seq: from.last_seq + 1,
                        replayed: 0,
                    },
                    true,
                ));
            }
            if slot.delivered_any {
                return Err(BridgeError::ResumeAfterDelivery {
                    last_seq: from.last_seq,
                    delivered: slot.cursor,
                });
            }
            // Take the slot out so the stream can be borrowed for the replay.
            let mut slot = s.conns.swap_remove(idx);
            let (resumed, alive) = match s.replay_into(&mut slot, from) {
                Ok(r) => r,
                Err(e) => {
                    s.conns.push(slot);
                    return Err(e);
                }
            };
            if alive {
                s.conns.push(slot);
            }
            Ok((resumed, alive))
        })?;
        let (resumed, alive) = result.ok_or(BridgeError::NotAttached)??;
        if !alive {
            self.inner.connections.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(resumed)
    }

    /// Detaches a connection (idempotent). The stream and its history stay for a later resume.
    pub fn detach(&self, user: &UserId, connection: ConnectionId) {
        let removed = self
            .with_stream(user, false, |s| {
                let before = s.conns.len();
                s.conns.retain(|c| c.id != connection);
                s.last_activity = Instant::now();
                before - s.conns.len()
            })
            .ok()
            .flatten()
            .unwrap_or(0);
        if removed > 0 {
            self.inner.connections.fetch_sub(removed, Ordering::Relaxed);
        }
    }

    /// The events of `user` after `after` (at most `limit`), for HTTP history and SSE.
    /// `epoch` other than the stream's is treated as `after = 0`.
    pub async fn history_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: usize,
    ) -> HistoryPage {
        self.with_stream(user, false, |s| {
            let after = if epoch.is_none_or(|e| e == &*s.epoch) {
                after
            } else {
                0
            };
            s.history.expire(Instant::now());
            let r = s.history.after(after, s.head, limit);
            HistoryPage {
                epoch: s.epoch.to_string(),
                head: s.head,
                gap: r.gap,
                frames: r.frames,
            }
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| HistoryPage {
            epoch: String::new(),
            head: 0,
            gap: None,
            frames: Vec::new(),
        })
    }

    /// The epoch and head of `user`'s stream, if it exists.
    pub async fn stream_head(&self, user: &UserId) -> Option<(String, u64)> {
        self.with_stream(user, false, |s| (s.epoch.to_string(), s.head))
            .ok()
            .flatten()
    }

    /// Drops `user`'s stream whole, closing its connections normally. Used for agentwire's own
    /// synthetic users (the health round trip) so they leave nothing behind.
    pub async fn remove_stream(&self, user: &UserId) {
        if let Some((_, handle)) = self.inner.streams.remove(user) {
            let mut s = handle.lock();
            s.retired = true;
            for slot in s.conns.drain(..) {
                slot.sink.close(CloseCode::NORMAL, "stream removed");
                self.inner.connections.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops streams that have had no connection and no event for `history.ttl`, and expires old
    /// history everywhere. Returns how many streams were dropped. Call it periodically
    /// ([`Self::run_maintenance`] does).
    pub fn sweep_idle(&self) -> usize {
        let ttl = self.inner.config.history.ttl;
        let now = Instant::now();
        let before = self.inner.streams.len();
        self.inner.streams.retain(|_, handle| {
            let mut s = handle.lock();
            s.history.expire(now);
            let idle = s.conns.is_empty() && now.saturating_duration_since(s.last_activity) > ttl;
            if idle {
                s.retired = true;
            }
            !idle
        });
        before.saturating_sub(self.inner.streams.len())
    }

    /// Sweeps idle streams every quarter of the history ttl (at least every second), forever.
    /// Spawn it once on the runtime.
    pub async fn run_maintenance(self) {
        let period = (self.inner.config.history.ttl / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let dropped = self.sweep_idle();
            if dropped > 0 {
                tracing::debug!(dropped, "idle streams expired");
            }
        }
    }

    /// Stops accepting new connections (publishing goes on); used at shutdown before
    /// [`Self::close_all`].
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Whether [`Self::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Relaxed)
    }

    /// Closes every live connection with `code` after its queued frames.
    pub fn close_all(&self, code: CloseCode, reason: &str) {
        for entry in self.inner.streams.iter() {
            let mut s = entry.value().lock();
            for slot in s.conns.drain(..) {
                slot.sink.close(code, reason);
                self.inner.connections.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Closes every live connection of `user` with `code` (after their queued frames) and
    /// detaches them; returns how many. The stream and its history stay for their resume.
    pub fn close_user(&self, user: &UserId, code: CloseCode, reason: &str) -> usize {
        let closed = self
            .with_stream(user, false, |s| {
                let n = s.conns.len();
                for slot in s.conns.drain(..) {
                    slot.sink.close(code, reason);
                }
                n
            })
            .ok()
            .flatten()
            .unwrap_or(0);
        self.inner.connections.fetch_sub(closed, Ordering::Relaxed);
        closed
    }

    /// Current counters.
    pub fn stats(&self) -> BridgeStats {
        BridgeStats {
            users: self.inner.streams.len(),
            connections: self.inner.connections.load(Ordering::Relaxed),
            events_published: self.inner.published.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl EventSink for AgentWebSocketBridge {
    async fn publish(&self, user: &UserId, event: RunEvent) -> Result<u64, CoreError> {
        self.publish_event(user, &event)
            .await
            .map_err(CoreError::from)
    }
}

#[cfg(test)]
mod tests;
