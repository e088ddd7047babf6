//! The `Broker` contract: where a user's stream — its seq counter, history and live feed — lives.

use std::sync::Arc;

use agentwire_core::{Frame, NowOrLater, ReplayGap, RunEvent, RunId, UserId};
use async_trait::async_trait;

use crate::BridgeError;

/// A slice of one user's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSlice {
    /// The stream's epoch (changes only when the stream's history is reset).
    pub epoch: Arc<str>,
    /// The stream's last seq (0 for an empty stream).
    pub head: u64,
    /// Events asked for that history no longer holds.
    pub gap: Option<ReplayGap>,
    /// Held events after the requested seq, in order, within the requested [`ReadLimit`].
    pub frames: Vec<Frame>,
}

/// How much one [`Broker::read_after`] returns: at most `events` events and at most `bytes` bytes
/// of frames — except that the first held event is always returned (when `events` ≥ 1), so a
/// reader always moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimit {
    /// The most events.
    pub events: usize,
    /// The most bytes of frames (their JSON), past the first.
    pub bytes: usize,
}

impl ReadLimit {
    /// At most `events` events, of any size.
    pub const fn events(events: usize) -> Self {
        Self {
            events,
            bytes: usize::MAX,
        }
    }

    /// These limits, with at most `bytes` bytes of frames.
    pub const fn bytes(self, bytes: usize) -> Self {
        Self { bytes, ..self }
    }
}

impl From<usize> for ReadLimit {
    /// [`ReadLimit::events`].
    fn from(events: usize) -> Self {
        Self::events(events)
    }
}

/// Where a broker delivers live events: the bridge of this node.
///
/// A broker is given its live sink when it is built (by the bridge builder's
/// [`live_sink`](crate::UnconfiguredBridge::live_sink)); there is no way to install or swap one
/// later.
pub trait LiveSink: Send + Sync + 'static {
    /// One accepted event of `user`'s stream, in seq order per user. Must not block.
    fn deliver(&self, user: &UserId, epoch: &str, frame: Frame);
}

/// Holds every user's stream: assigns seqs, keeps history, and feeds live events to the nodes
/// that hold the user's connections.
///
/// The bridge works the same on every broker; [`MemoryBroker`](crate::MemoryBroker) is the
/// single-node default and `agentwire-redis` provides one shared by many nodes.
///
/// # What an implementor must guarantee
/// - The broker is built with the [`LiveSink`] of the bridge that will use it
///   ([`UnconfiguredBridge::live_sink`](crate::UnconfiguredBridge::live_sink)) and delivers to
///   that sink only.
/// - `append` gives the event the next seq of the user's stream — strictly increasing by one,
///   starting at 1, across **all** nodes sharing the broker — stores it in history before
///   returning, and returns the seq; on error the event has no seq and is not delivered.
/// - `append` returns [`NowOrLater::Now`] when it finished without waiting for I/O or other
///   tasks (a short critical section, the stream's lock, is fine), and [`NowOrLater::Later`]
///   otherwise. A `Later` append is queued by the call (the event's place in the stream is
///   fixed when `append` returns) and its future borrows nothing: it reports the outcome, and
///   the event is stored or fails whether or not anyone polls it.
/// - Events of one run (`event.run_id`) are fail-stop: once one fails, every later append of
///   that run on this broker fails too — those already queued and those made afterwards — until
///   [`acknowledge_failure`](Broker::acknowledge_failure) for the run. A broker whose appends only
///   fail as `Now` results has nothing to track (the default).
/// - Every appended event of a user this node [`subscribe`](Broker::subscribe)d to is passed to
///   the [`LiveSink`] exactly once per node, in seq order per user. Delivery may be lost when the
///   broker's connection breaks (the bridge detects the hole by seq and re-reads history), but
///   never reordered.
/// - `subscribe` returns only once live delivery for the user is active: any event appended after
///   it returns is delivered.
/// - `read_after` returns the held events after `after` in order within its [`ReadLimit`], a gap
///   for those no longer held, and the stream's epoch and head. An `epoch` other than the stream's means the caller's
///   position belongs to a reset stream: treat `after` as 0.
/// - Memory stays bounded: history by `history.max_events`, `history.max_bytes` (the newest
///   event is kept even alone over it) and `history.ttl`; idle streams expire whole.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an agentwire Broker",
    note = "implement name, append, read_after, subscribe, unsubscribe, remove, touch and ping"
)]
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// A short name for logs and health (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Accepts `event` into `user`'s stream and resolves to its seq: [`NowOrLater::Now`] when
    /// that took no waiting (the memory broker, always).
    ///
    /// The broker takes what it needs from `event` (its frame) before it returns: the result
    /// does not borrow it. It measures the frame it writes: one over `max_bytes`
    /// ([`RunEvent::size_at_any_seq`]) is refused, stores nothing and takes no seq.
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`] when the broker cannot accept it now,
    /// [`BridgeError::TooManyUsers`] when a new stream would pass the limit,
    /// [`BridgeError::EventTooLarge`] over `max_bytes`.
    fn append(
        &self,
        user: &UserId,
        event: &RunEvent,
        max_bytes: usize,
    ) -> NowOrLater<'static, Result<u64, BridgeError>>;

    /// The caller saw an append of `run` fail: appends of `run` to `user`'s stream are taken
    /// again (see the fail-stop rule above). The default does nothing.
    fn acknowledge_failure(&self, user: &UserId, run: &RunId) {
        let _ = (user, run);
    }

    /// The held events after `after` within `limit`, with the gap, epoch and head.
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`].
    async fn read_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: ReadLimit,
    ) -> Result<StreamSlice, BridgeError>;

    /// Makes sure `user`'s stream exists (creating an empty one), so that appends that follow
    /// are not refused for the stream limit: a transport calls it before it accepts a run
    /// (`POST /v1/runs` answers 202 only after it). Reads never create a stream. The default
    /// does nothing, for brokers with no stream limit.
    ///
    /// # Errors
    /// [`BridgeError::TooManyUsers`] when a new stream would pass the limit,
    /// [`BridgeError::BrokerUnavailable`].
    async fn open(&self, user: &UserId) -> Result<(), BridgeError> {
        let _ = user;
        Ok(())
    }

    /// Starts live delivery of `user`'s events to this node. Calls are counted: live delivery
    /// stops after as many [`unsubscribe`](Broker::unsubscribe)s.
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`].
    async fn subscribe(&self, user: &UserId) -> Result<(), BridgeError>;

    /// Undoes one `subscribe`.
    async fn unsubscribe(&self, user: &UserId);

    /// Deletes `user`'s stream whole.
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`].
    async fn remove(&self, user: &UserId) -> Result<(), BridgeError>;

    /// Keeps the streams of users with live connections from expiring while idle.
    async fn touch(&self, users: &[UserId]);

    /// Proves the broker answers (a real round trip for remote brokers).
    ///
    /// # Errors
    /// [`BridgeError::BrokerUnavailable`] with the cause.
    async fn ping(&self) -> Result<(), BridgeError>;

    /// Periodic upkeep (expire idle streams); the bridge calls it every few seconds.
    /// Returns how many streams were dropped.
    async fn sweep(&self) -> usize {
        0
    }

    /// Streams held, when the broker can count them cheaply.
    fn stream_count(&self) -> Option<usize> {
        None
    }
}
