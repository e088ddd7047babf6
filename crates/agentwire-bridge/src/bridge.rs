//! `AgentWebSocketBridge`: this node's connections per user, fed from the [`Broker`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use agentwire_core::{
    CloseCode, Configurable, ConnectionId, CoreError, EventSink, Frame, NowOrLater, ReplayGap,
    Resumed, RunEvent, RunId, UserId,
};
use dashmap::DashMap;
use parking_lot::Mutex;

use crate::metered::Metered;
use crate::stream::LocalUser;
use crate::telemetry::{EVENTS_ACCEPTED, EventCounters};
use crate::{
    BridgeConfig, BridgeError, Broker, ConnectionQueue, LiveSink, MemoryBroker, QueuedBytes,
    ReadLimit,
};

use live::LiveRouter;

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
        if config.max_event_bytes < agentwire_core::MIN_EVENT_BYTES {
            return Err(BridgeError::InvalidConfig {
                key: "limits.max_event_bytes",
                reason: format!(
                    "must be at least {}, so that a run can always end (its agent_error)",
                    agentwire_core::MIN_EVENT_BYTES
                ),
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
            queued: QueuedBytes::default(),
            published: AtomicU64::new(0),
            accepted: EventCounters::new(EVENTS_ACCEPTED),
            shutting_down: AtomicBool::new(false),
        });
        // `configure` consumes the builder that made `live`: this is its only binding.
        live.bind(&inner);
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
///   [`WebSocketSink`](agentwire_core::WebSocketSink)); one that is full is closed with 4008 and its client resumes from history.
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
/// assert_eq!(bridge.publish_event(&alice, &event).await?, 1);
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
    // foldhash: looked up for every event; seeded per process.
    pub(crate) users: DashMap<UserId, Arc<Mutex<LocalUser>>, foldhash::quality::RandomState>,
    pub(crate) connections: AtomicUsize,
    /// Bytes queued on the queues made by `connection_queue`.
    queued: QueuedBytes,
    published: AtomicU64,
    accepted: EventCounters,
    shutting_down: AtomicBool,
}

impl Inner {
    fn count_accepted(&self, type_index: usize) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.accepted.by_index(Some(type_index)).increment(1);
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
    /// Bytes queued on the connection queues made by
    /// [`AgentWebSocketBridge::connection_queue`].
    pub queued_bytes: u64,
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

    /// A queue for one connection of this bridge, holding at most `cap_bytes`; its bytes count
    /// in [`BridgeStats::queued_bytes`].
    pub fn connection_queue(&self, cap_bytes: usize) -> ConnectionQueue {
        ConnectionQueue::counted_in(cap_bytes, self.inner.queued.clone())
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
    /// [`BridgeError::BrokerUnavailable`], [`BridgeError::TooManyUsers`],
    /// [`BridgeError::EventTooLarge`] over [`BridgeConfig::max_event_bytes`] (the event is then
    /// not stored and takes no seq).
    pub fn publish_event(
        &self,
        user: &UserId,
        event: &RunEvent,
    ) -> NowOrLater<'static, Result<u64, BridgeError>> {
        self.publish_as(user, event, std::convert::identity)
    }

    /// [`Self::publish_event`] with the error converted by `convert`: the bridge's `EventSink`
    /// maps it to a `CoreError` in the same step, so a `Later` append is wrapped once, not twice.
    fn publish_as<E: 'static>(
        &self,
        user: &UserId,
        event: &RunEvent,
        convert: impl FnOnce(BridgeError) -> E + Send + 'static,
    ) -> NowOrLater<'static, Result<u64, E>> {
        let type_index = event.kind.type_index();
        let max_bytes = self.inner.config.max_event_bytes;
        match self.inner.broker.append(user, event, max_bytes).into_now() {
            Ok(r) => {
                if r.is_ok() {
                    self.inner.count_accepted(type_index);
                }
                NowOrLater::now(r.map_err(convert))
            }
            Err(later) => {
                let inner = self.inner.clone();
                later.map(move |r| {
                    if r.is_ok() {
                        inner.count_accepted(type_index);
                    }
                    r.map_err(convert)
                })
            }
        }
    }

    /// The events of `user` after `after` within `limit` (a count, or a [`ReadLimit`] with
    /// bytes), for HTTP history and SSE.
    /// `epoch` other than the stream's is treated as `after = 0`.
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`].
    pub async fn history_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: impl Into<ReadLimit>,
    ) -> Result<HistoryPage, BridgeError> {
        let s = self
            .inner
            .broker
            .read_after(user, after, epoch, limit.into())
            .await?;
        Ok(HistoryPage {
            epoch: s.epoch.to_string(),
            head: s.head,
            gap: s.gap,
            frames: s.frames,
        })
    }

    /// Makes sure `user`'s stream exists, so a run's events that follow are not refused for
    /// `limits.max_users`; call it before acknowledging a run started without a connection.
    ///
    /// # Errors
    /// [`BridgeError::TooManyUsers`], [`BridgeError::BrokerUnavailable`].
    pub async fn open_stream(&self, user: &UserId) -> Result<(), BridgeError> {
        self.inner.broker.open(user).await
    }

    /// The epoch and head of `user`'s stream.
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`].
    pub async fn stream_head(&self, user: &UserId) -> Result<(String, u64), BridgeError> {
        let s = self
            .inner
            .broker
            .read_after(user, 0, None, ReadLimit::events(0))
            .await?;
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
            queued_bytes: self.inner.queued.get(),
        }
    }
}

impl EventSink for AgentWebSocketBridge {
    fn publish(
        &self,
        user: &UserId,
        event: &RunEvent,
    ) -> NowOrLater<'static, Result<u64, CoreError>> {
        self.publish_as(user, event, CoreError::from)
    }

    fn acknowledge_failure(&self, user: &UserId, run: &RunId) {
        self.inner.broker.acknowledge_failure(user, run);
    }

    fn max_event_bytes(&self) -> usize {
        self.inner.config.max_event_bytes
    }
}

mod attach;
mod live;

#[cfg(test)]
mod tests;
