//! `AgentWebSocketBridge`: this node's connections per user, fed from the [`Broker`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use agentwire_core::{
    CloseCode, Configurable, ConnectionId, CoreError, EventSink, Frame, NowOrLater, ReplayGap,
    Resumed, RunEvent, UserId, WebSocketSink,
};
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::metered::Metered;
use crate::replay::replay;
use crate::stream::{LocalUser, Routed, Slot, SlotState, finish_replay, route};
use crate::telemetry::{EVENTS_ACCEPTED, EventCounters};
use crate::{BridgeConfig, BridgeError, Broker, LiveSink, MemoryBroker, ResumeFrom};

/// The bridge before [`Configurable::configure`]: it has no methods that deliver anything, so it
/// cannot be used — or handed to startup's `Agents` phase — by mistake.
///
/// A broker other than the default [`MemoryBroker`] is built with this builder's
/// [`live_sink`](Self::live_sink) and then given to [`broker`](Self::broker):
///
/// ```
/// use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, HistoryConfig, MemoryBroker};
/// use agentwire_core::Configurable;
/// use std::sync::Arc;
///
/// let builder = AgentWebSocketBridge::builder();
/// let broker = MemoryBroker::new(HistoryConfig::default(), 1000, builder.live_sink());
/// let bridge = builder.broker(Arc::new(broker)).configure(BridgeConfig::default()).unwrap();
/// # drop(bridge);
/// ```
#[derive(Default)]
pub struct UnconfiguredBridge {
    broker: Option<Arc<dyn Broker>>,
    live: Arc<LiveRouter>,
}

impl std::fmt::Debug for UnconfiguredBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnconfiguredBridge")
            .field("broker", &self.broker.as_ref().map(|b| b.name()))
            .finish()
    }
}

impl UnconfiguredBridge {
    /// The sink the broker of this bridge delivers live events to: build the broker with it.
    /// It routes to the bridge this builder configures (and to nothing before that).
    pub fn live_sink(&self) -> Arc<dyn LiveSink> {
        self.live.clone()
    }

    /// Uses `broker` — built with [`Self::live_sink`] — for the streams instead of a
    /// [`MemoryBroker`].
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }
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
        let live = self.live;
        let broker = self.broker.unwrap_or_else(|| {
            Arc::new(MemoryBroker::new(
                config.history.clone(),
                config.max_users,
                live.clone(),
            ))
        });
        // Every broker gets the same operation, error and latency metrics.
        let broker: Arc<dyn Broker> = Arc::new(Metered::new(broker));
        let inner = Arc::new(Inner {
            config,
            broker,
            users: DashMap::default(),
            connections: AtomicUsize::new(0),
            published: AtomicU64::new(0),
            accepted: EventCounters::new(EVENTS_ACCEPTED),
            shutting_down: AtomicBool::new(false),
        });
        // `configure` consumes the builder that made `live`: this is its only binding.
        let _ = live.bridge.set(Arc::downgrade(&inner));
        Ok(AgentWebSocketBridge { inner })
    }
}

/// Delivers each user's run events to that user's live connections on this node, in `seq`
/// order, and replays history on resume.
///
/// - The [`Broker`] gives every accepted event the next `seq` of its user's stream and keeps
///   history; it serializes the event **once** and the same bytes go to all of the user's
///   connections.
/// - Publishing never waits for a client: each connection has a bounded queue (its
///   [`WebSocketSink`]); one that is full is closed with 4008 and its client resumes from history.
/// - Each connection has a cursor (the last seq queued on it): a frame at or below it is a
///   duplicate and is skipped; a frame past `cursor + 1` reveals a hole, which is filled from
///   history before live delivery goes on. A resume replays history page by page, paced by the
///   client, while live frames wait in a bounded buffer; the switch to live flushes the buffer
///   after the cursor — no hole, no duplicate.
///
/// Every successful [`attach`](Self::attach) must be paired with exactly one
/// [`detach`](Self::detach). Cheap to clone; clones share the same state.
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
/// let attached = bridge.attach(&alice, queue.clone(), None).await?;
///
/// let event = RunEvent::now(RunId::generate(), ThreadId::generate(), "demo".into(),
///     EventKind::AgentStarted(AgentStarted { input: None }));
/// assert_eq!(bridge.publish_event(&alice, event).await?, 1);
/// assert!(queue.queued_bytes() > 0);
/// bridge.detach(&alice, attached.connection_id).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AgentWebSocketBridge {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: BridgeConfig,
    pub(crate) broker: Arc<dyn Broker>,
    // foldhash instead of SipHash: these maps are looked up for every event (SipHash was 3% of
    // the server's instructions under fan-out); it is still seeded per process.
    pub(crate) users: DashMap<UserId, Arc<Mutex<LocalUser>>, foldhash::quality::RandomState>,
    pub(crate) connections: AtomicUsize,
    published: AtomicU64,
    accepted: EventCounters,
    shutting_down: AtomicBool,
}

/// The broker's [`LiveSink`]: routes live frames to this node's connections. Made with the
/// builder, bound to the bridge when the builder is configured; it holds the bridge weakly (the
/// bridge holds the broker, which holds this).
#[derive(Default)]
pub(crate) struct LiveRouter {
    bridge: OnceLock<Weak<Inner>>,
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

impl std::fmt::Debug for AgentWebSocketBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWebSocketBridge")
            .field("config", &self.inner.config)
            .field("broker", &self.inner.broker.name())
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
    /// The replay started on attach, when a resume point was given: `replayed` is how many
    /// held events follow `from_seq - 1` up to the head (the replay itself is paced by the
    /// client).
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
    /// Users with live connections on this node.
    pub users: usize,
    /// Live connections on this node.
    pub connections: usize,
    /// Streams the broker holds, when it can count them.
    pub streams: Option<usize>,
    /// Events accepted through this node since start.
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

    /// The broker holding the streams.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// Accepts `event` into `user`'s stream (through the broker) and resolves to its seq —
    /// [`NowOrLater::Now`] when the broker took it without waiting. Never waits for a client.
    /// Publishing goes on during shutdown, so runs that finish in the grace period reach their
    /// users. This is also the bridge's [`EventSink::publish`].
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`], [`BridgeError::TooManyUsers`].
    pub fn publish_event<'a>(
        &'a self,
        user: &'a UserId,
        event: RunEvent,
    ) -> NowOrLater<'a, Result<u64, BridgeError>> {
        let type_index = event.kind.type_index();
        self.inner.broker.append(user, event).map(move |r| {
            if r.is_ok() {
                self.count_accepted(type_index);
            }
            r
        })
    }

    fn count_accepted(&self, type_index: usize) {
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        self.inner.accepted.by_index(Some(type_index)).increment(1);
    }

    fn local_user(&self, user: &UserId) -> Result<Arc<Mutex<LocalUser>>, BridgeError> {
        if let Some(h) = self.inner.users.get(user) {
            return Ok(h.clone());
        }
        if self.inner.users.len() >= self.inner.config.max_users && !user.is_reserved() {
            return Err(BridgeError::TooManyUsers {
                max: self.inner.config.max_users,
            });
        }
        Ok(self.inner.users.entry(user.clone()).or_default().clone())
    }

    /// Attaches a connection of `user`. Without `resume` it starts live at the stream head.
    /// With `resume`, the events after it are replayed first (a `replay_gap` frame before them
    /// when history lost some), paced by the client, then live events follow with no hole and no
    /// duplicate.
    ///
    /// # Errors
    /// [`BridgeError::TooManyConnections`], [`BridgeError::TooManyUsers`],
    /// [`BridgeError::ResumeAhead`], [`BridgeError::ShuttingDown`],
    /// [`BridgeError::BrokerUnavailable`]. Nothing stays attached on error.
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
        let id = ConnectionId::next();
        // Register first (buffering live frames), then subscribe, then read the head: every
        // event is then either at or below the head (history) or in the buffer (live).
        loop {
            let handle = self.local_user(user)?;
            let mut local = handle.lock();
            if local.retired {
                continue;
            }
            if local.slots.iter().filter(|s| !s.closing).count() >= max {
                return Err(BridgeError::TooManyConnections { max });
            }
            local.slots.push(Slot {
                id,
                sink: sink.clone(),
                epoch: "".into(),
                cursor: 0,
                delivered_any: false,
                state: SlotState::Replaying {
                    buffer: Vec::new(),
                    overflowed: false,
                },
                closing: false,
            });
            break;
        }
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        let started = async {
            self.inner.broker.subscribe(user).await?;
            let requested_epoch = resume.as_ref().and_then(|r| r.epoch.clone());
            let after = resume.as_ref().map_or(0, |r| r.last_seq);
            let head = self
                .inner
                .broker
                .read_after(user, after, requested_epoch.as_deref(), 0)
                .await
                .inspect_err(|_| {
                    let broker = self.inner.broker.clone();
                    let user = user.clone();
                    tokio::spawn(async move { broker.unsubscribe(&user).await });
                })?;
            Ok::<_, BridgeError>(head)
        }
        .await;
        let slice = match started {
            Ok(s) => s,
            Err(e) => {
                self.remove_slot(user, id);
                return Err(e);
            }
        };
        let same_epoch = resume
            .as_ref()
            .and_then(|r| r.epoch.as_deref())
            .is_none_or(|e| e == &*slice.epoch);
        let resumed = match &resume {
            None => None,
            Some(r) => {
                let after = if same_epoch { r.last_seq } else { 0 };
                if after > slice.head {
                    self.detach(user, id).await;
                    return Err(BridgeError::ResumeAhead {
                        last_seq: after,
                        head: slice.head,
                    });
                }
                let first_held = slice.gap.map_or(after, |g| g.to_seq);
                Some((
                    after,
                    Resumed {
                        from_seq: after + 1,
                        replayed: slice.head - first_held.max(after),
                    },
                ))
            }
        };
        // `None`: the slot is gone (closed while attaching).
        let needs_replay = self
            .inner
            .users
            .get(user)
            .map(|h| h.clone())
            .and_then(|handle| {
                let mut local = handle.lock();
                let slot = local.slots.iter_mut().find(|s| s.id == id)?;
                slot.epoch = slice.epoch.clone();
                match resumed {
                    Some((after, _)) => {
                        slot.cursor = after;
                        Some(after < slice.head)
                    }
                    None => {
                        slot.cursor = slice.head;
                        finish_replay(slot).map(|live| !live)
                    }
                }
            });
        let Some(needs_replay) = needs_replay else {
            self.detach(user, id).await;
            return Err(BridgeError::NotAttached);
        };
        if needs_replay || resumed.is_some() {
            tokio::spawn(replay(self.inner.clone(), user.clone(), id));
        }
        Ok(Attachment {
            connection_id: id,
            epoch: slice.epoch.to_string(),
            last_seq: slice.head,
            resumed: resumed.map(|(_, r)| r),
        })
    }

    /// As [`Self::attach`], but a resume point ahead of the stream head (a client holding seqs
    /// of a stream this broker no longer has) starts the connection live instead of failing; the
    /// refusal is returned next to the attachment so the transport can tell the client.
    ///
    /// # Errors
    /// As [`Self::attach`], except [`BridgeError::ResumeAhead`].
    pub async fn attach_or_live(
        &self,
        user: &UserId,
        sink: Arc<dyn WebSocketSink>,
        resume: Option<ResumeFrom>,
    ) -> Result<(Attachment, Option<BridgeError>), BridgeError> {
        match self.attach(user, sink.clone(), resume).await {
            Err(ahead @ BridgeError::ResumeAhead { .. }) => {
                Ok((self.attach(user, sink, None).await?, Some(ahead)))
            }
            other => other.map(|a| (a, None)),
        }
    }

    /// Removes a slot without touching the broker subscription; returns whether it was there.
    fn remove_slot(&self, user: &UserId, id: ConnectionId) -> bool {
        let Some(handle) = self.inner.users.get(user).map(|h| h.clone()) else {
            return false;
        };
        let mut local = handle.lock();
        let before = local.slots.len();
        local.slots.retain(|s| s.id != id);
        let removed = before != local.slots.len();
        if removed {
            self.inner.connections.fetch_sub(1, Ordering::Relaxed);
        }
        if local.slots.is_empty() {
            local.retired = true;
            drop(local);
            self.inner
                .users
                .remove_if(user, |_, h| Arc::ptr_eq(h, &handle));
        }
        removed
    }

    /// Handles a `resume` frame on an attached connection: replays what the connection has not
    /// delivered after `from`. Earlier events than the connection already delivered cannot be
    /// replayed in order on it; the client must reconnect with `?last_seq=` for those.
    ///
    /// # Errors
    /// [`BridgeError::NotAttached`], [`BridgeError::ResumeAhead`],
    /// [`BridgeError::ResumeAfterDelivery`], [`BridgeError::BrokerUnavailable`].
    pub async fn resume(
        &self,
        user: &UserId,
        connection: ConnectionId,
        from: &ResumeFrom,
    ) -> Result<Resumed, BridgeError> {
        let slice = self
            .inner
            .broker
            .read_after(user, from.last_seq, from.epoch.as_deref(), 0)
            .await?;
        let same_epoch = from.epoch.as_deref().is_none_or(|e| e == &*slice.epoch);
        let after = if same_epoch { from.last_seq } else { 0 };
        if after > slice.head {
            return Err(BridgeError::ResumeAhead {
                last_seq: after,
                head: slice.head,
            });
        }
        let handle = self
            .inner
            .users
            .get(user)
            .map(|h| h.clone())
            .ok_or(BridgeError::NotAttached)?;
        {
            let mut local = handle.lock();
            let slot = local
                .slots
                .iter_mut()
                .find(|c| c.id == connection)
                .ok_or(BridgeError::NotAttached)?;
            if slot.delivered_any {
                if !same_epoch || after < slot.cursor {
                    return Err(BridgeError::ResumeAfterDelivery {
                        last_seq: from.last_seq,
                        delivered: slot.cursor,
                    });
                }
                return Ok(Resumed {
                    from_seq: after + 1,
                    replayed: 0,
                });
            }
            slot.cursor = after;
            slot.epoch = slice.epoch.clone();
            slot.state = SlotState::Replaying {
                buffer: Vec::new(),
                overflowed: false,
            };
        }
        tokio::spawn(replay(self.inner.clone(), user.clone(), connection));
        let first_held = slice.gap.map_or(after, |g| g.to_seq);
        Ok(Resumed {
            from_seq: after + 1,
            replayed: slice.head - first_held.max(after),
        })
    }

    /// Detaches a connection and ends its broker subscription. Call it exactly once per
    /// successful [`attach`](Self::attach), when the connection ends. The stream and its
    /// history stay for a later resume.
    pub async fn detach(&self, user: &UserId, connection: ConnectionId) {
        self.remove_slot(user, connection);
        self.inner.broker.unsubscribe(user).await;
    }

    /// The events of `user` after `after` (at most `limit`), for HTTP history and SSE.
    /// `epoch` other than the stream's is treated as `after = 0`.
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`].
    pub async fn history_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: usize,
    ) -> Result<HistoryPage, BridgeError> {
        let s = self
            .inner
            .broker
            .read_after(user, after, epoch, limit)
            .await?;
        Ok(HistoryPage {
            epoch: s.epoch.to_string(),
            head: s.head,
            gap: s.gap,
            frames: s.frames,
        })
    }

    /// The epoch and head of `user`'s stream.
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`].
    pub async fn stream_head(&self, user: &UserId) -> Result<(String, u64), BridgeError> {
        let s = self.inner.broker.read_after(user, 0, None, 0).await?;
        Ok((s.epoch.to_string(), s.head))
    }

    /// Drops `user`'s stream whole (history included), closing its connections here. Used for
    /// agentwire's own synthetic users (the health round trip) so they leave nothing behind.
    pub async fn remove_stream(&self, user: &UserId) {
        self.close_user(user, CloseCode::NORMAL, "stream removed");
        if let Err(e) = self.inner.broker.remove(user).await {
            tracing::warn!(user_id = %user, error = %e, "could not remove a stream");
        }
    }

    /// Expires idle streams in the broker and keeps the streams of connected users alive,
    /// every quarter of the history ttl (1 s to 60 s), forever. Spawn it once.
    pub async fn run_maintenance(self) {
        let period = (self.inner.config.history.ttl / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let dropped = self.inner.broker.sweep().await;
            if dropped > 0 {
                tracing::debug!(dropped, "idle streams expired");
            }
            let users: Vec<UserId> = self.inner.users.iter().map(|e| e.key().clone()).collect();
            self.inner.broker.touch(&users).await;
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

    /// Closes every live connection with `code` after its queued frames. The transports then
    /// detach them.
    pub fn close_all(&self, code: CloseCode, reason: &str) {
        for entry in self.inner.users.iter() {
            for slot in entry.value().lock().slots.iter_mut() {
                slot.closing = true;
                slot.sink.close(code, reason);
            }
        }
    }

    /// Closes every live connection of `user` with `code` (after their queued frames); returns
    /// how many. The stream and its history stay for their resume.
    pub fn close_user(&self, user: &UserId, code: CloseCode, reason: &str) -> usize {
        let Some(handle) = self.inner.users.get(user).map(|h| h.clone()) else {
            return 0;
        };
        let mut local = handle.lock();
        let mut n = 0;
        for slot in local.slots.iter_mut().filter(|s| !s.closing) {
            slot.closing = true;
            slot.sink.close(code, reason);
            n += 1;
        }
        n
    }

    /// Current counters.
    pub fn stats(&self) -> BridgeStats {
        BridgeStats {
            users: self.inner.users.len(),
            connections: self.inner.connections.load(Ordering::Relaxed),
            streams: self.inner.broker.stream_count(),
            events_published: self.inner.published.load(Ordering::Relaxed),
        }
    }
}

impl EventSink for AgentWebSocketBridge {
    fn publish<'a>(
        &'a self,
        user: &'a UserId,
        event: RunEvent,
    ) -> NowOrLater<'a, Result<u64, CoreError>> {
        self.publish_event(user, event)
            .map(|r| r.map_err(CoreError::from))
    }
}

#[cfg(test)]
mod tests;
