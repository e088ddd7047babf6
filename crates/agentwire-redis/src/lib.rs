//! A [`Broker`] on Redis, so that many agentwire nodes behind a plain load balancer serve any
//! user: a client resumes on any node, and a node that dies loses nothing that was acknowledged.
//!
//! Per user, three keys share a hash tag (`aw:{user}:…`): a counter for the seq, a Redis
//! Stream for history (length-capped at `history.max_events`, entries older than `history.ttl`
//! trimmed) and the epoch. One Lua script appends an event atomically — seq, history, expiry,
//! and a `PUBLISH` on `aw:live:<user>` — so every node sees the same seqs in the same order.
//! Each node holds one subscriber connection and subscribes only to the users it has
//! connections for. See `docs/scaling.md` for the design and its costs.
//!
//! ```no_run
//! use std::sync::Arc;
//! use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, HistoryConfig};
//! use agentwire_core::Configurable;
//! use agentwire_redis::RedisBroker;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let builder = AgentWebSocketBridge::builder();
//! let broker =
//!     RedisBroker::connect("redis://127.0.0.1:6379", HistoryConfig::default(), builder.live_sink())
//!         .await?;
//! let bridge = builder.broker(broker).configure(BridgeConfig::default())?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod live;
mod scripts;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agentwire_bridge::{BridgeError, Broker, HistoryConfig, LiveSink, StreamSlice};
use agentwire_core::{Frame, NowOrLater, ReplayGap, RunEvent, UserId, async_trait, unix_millis};
use redis::aio::ConnectionManager;
use redis::{AsyncConnectionConfig, Script, Value};

use live::LiveFeed;

/// Errors of the Redis broker's setup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBrokerError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL {url:?}: {cause}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        cause: String,
    },
    /// Redis did not answer.
    #[error("cannot reach Redis at {url}: {cause}")]
    Unreachable {
        /// Where it was looked for.
        url: String,
        /// What failed.
        cause: String,
    },
}

/// How long one Redis command may take before it counts as a failure.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis broker. Cheap to share (`Arc`); one per node.
pub struct RedisBroker {
    client: redis::Client,
    conn: ConnectionManager,
    append: Script,
    read: Script,
    touch: Script,
    history: HistoryConfig,
    prefix: String,
    live: Arc<LiveFeed>,
    url: String,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("url", &self.url)
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> BridgeError {
    BridgeError::BrokerUnavailable {
        broker: "redis",
        cause: e.to_string(),
    }
}

/// A fresh epoch candidate: 12 random characters (used only when a stream has none).
fn epoch_candidate() -> String {
    agentwire_core::ThreadId::generate().as_str()[2..14].to_owned()
}

impl RedisBroker {
    /// Connects to `url`, proves it with a round trip (`PING`), and starts the live feed into
    /// `live` (the bridge builder's
    /// [`live_sink`](agentwire_bridge::UnconfiguredBridge::live_sink)).
    ///
    /// # Errors
    /// [`RedisBrokerError::InvalidUrl`] or [`RedisBrokerError::Unreachable`].
    pub async fn connect(
        url: &str,
        history: HistoryConfig,
        live: Arc<dyn LiveSink>,
    ) -> Result<Arc<Self>, RedisBrokerError> {
        Self::connect_with_prefix(url, history, "aw", live).await
    }

    /// As [`Self::connect`], with another key prefix (several deployments on one Redis, or
    /// isolated tests).
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub async fn connect_with_prefix(
        url: &str,
        history: HistoryConfig,
        prefix: &str,
        live: Arc<dyn LiveSink>,
    ) -> Result<Arc<Self>, RedisBrokerError> {
        let client = redis::Client::open(url).map_err(|e| RedisBrokerError::InvalidUrl {
            url: url.to_owned(),
            cause: e.to_string(),
        })?;
        let unreachable = |e: redis::RedisError| RedisBrokerError::Unreachable {
            url: url.to_owned(),
            cause: e.to_string(),
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let mut conn = tokio::time::timeout(
            COMMAND_TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| RedisBrokerError::Unreachable {
            url: url.to_owned(),
            cause: "no answer within 4s".into(),
        })?
        .map_err(unreachable)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unreachable)?;
        let _ = AsyncConnectionConfig::new();
        let broker = Arc::new(Self {
            client,
            conn,
            append: Script::new(scripts::APPEND),
            read: Script::new(scripts::READ),
            touch: Script::new(scripts::TOUCH),
            history,
            prefix: prefix.to_owned(),
            live: Arc::new(LiveFeed::new(prefix.to_owned(), live)),
            url: url.to_owned(),
        });
        tokio::spawn(live::run(broker.clone()));
        // Wait briefly for the subscriber connection so the first attach does not race it.
        for _ in 0..100 {
            if broker.live.connected.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(broker)
    }

    fn keys(&self, user: &UserId) -> [String; 3] {
        let p = &self.prefix;
        [
            format!("{p}:{{{user}}}:seq"),
            format!("{p}:{{{user}}}:s"),
            format!("{p}:{{{user}}}:e"),
        ]
    }

    fn ttl_ms(&self) -> u64 {
        self.history.ttl.as_millis() as u64
    }

    /// The newest held event of `user`, with the stream's epoch.
    pub(crate) async fn newest(
        &self,
        user: &UserId,
    ) -> Result<Option<(String, Frame)>, BridgeError> {
        let [_, stream, epoch_key] = self.keys(user);
        let mut conn = self.conn.clone();
        let (epoch, entries): (Option<String>, StreamEntries) = redis::pipe()
            .get(&epoch_key)
            .cmd("XREVRANGE")
            .arg(&stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let (Some(epoch), Some((id, fields))) = (epoch, entries.into_iter().next()) else {
            return Ok(None);
        };
        let seq = parse_seq(&id).ok_or_else(|| unavailable(format!("bad stream id {id}")))?;
        let frame = fields.into_iter().find(|(k, _)| k == "f").map(|(_, v)| v);
        Ok(frame.map(|f| (epoch, Frame::event(seq, f))))
    }
}

/// `XREVRANGE` entries: (id, [(field, value)]).
type StreamEntries = Vec<(String, Vec<(String, Vec<u8>)>)>;

fn parse_seq(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

#[async_trait]
impl Broker for RedisBroker {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn append<'a>(
        &'a self,
        user: &'a UserId,
        event: RunEvent,
    ) -> NowOrLater<'a, Result<u64, BridgeError>> {
        NowOrLater::later(async move {
            let [seq_key, stream, epoch_key] = self.keys(user);
            let (prefix, suffix) = event.to_envelope_parts();
            let mut conn = self.conn.clone();
            self.append
                .key(seq_key)
                .key(stream)
                .key(epoch_key)
                .arg(epoch_candidate())
                .arg(prefix)
                .arg(suffix)
                .arg(self.history.max_events)
                .arg(self.ttl_ms())
                .arg(self.live.channel(user))
                .arg(unix_millis())
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)
        })
    }

    async fn read_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: usize,
    ) -> Result<StreamSlice, BridgeError> {
        let [seq_key, stream, epoch_key] = self.keys(user);
        let mut conn = self.conn.clone();
        let values: Vec<Value> = self
            .read
            .key(seq_key)
            .key(stream)
            .key(epoch_key)
            .arg(after)
            .arg(epoch.unwrap_or(""))
            .arg(limit)
            .arg(epoch_candidate())
            .arg(self.ttl_ms())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        parse_slice(values).ok_or_else(|| unavailable("unexpected reply to the read script"))
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), BridgeError> {
        let first = {
            let mut users = self.live.users.lock();
            let n = users.entry(user.clone()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if !first {
            return Ok(());
        }
        // Wait up to a few seconds for the subscriber connection (it may be reconnecting).
        for _ in 0..200 {
            let mut guard = self.live.pubsub.lock().await;
            if let Some(sink) = guard.as_mut() {
                return match sink.subscribe(self.live.channel(user)).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        drop(guard);
                        self.release(user);
                        Err(unavailable(e))
                    }
                };
            }
            drop(guard);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.release(user);
        Err(unavailable("the live feed is not connected"))
    }

    async fn unsubscribe(&self, user: &UserId) {
        if self.release(user)
            && let Some(sink) = self.live.pubsub.lock().await.as_mut()
        {
            let _ = sink.unsubscribe(self.live.channel(user)).await;
        }
    }

    async fn remove(&self, user: &UserId) -> Result<(), BridgeError> {
        let keys = self.keys(user);
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(&keys[..])
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn touch(&self, users: &[UserId]) {
        let mut conn = self.conn.clone();
        for user in users {
            let [a, b, c] = self.keys(user);
            let r: Result<i64, _> = self
                .touch
                .key(a)
                .key(b)
                .key(c)
                .arg(self.ttl_ms())
                .arg(unix_millis())
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "touch failed");
                return;
            }
        }
    }

    async fn ping(&self) -> Result<(), BridgeError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if !self.live.connected.load(Ordering::Relaxed) {
            return Err(unavailable("the live feed (pub/sub) is disconnected"));
        }
        Ok(())
    }
}

impl RedisBroker {
    /// Drops one subscription of `user`; true when it was the last.
    fn release(&self, user: &UserId) -> bool {
        let mut users = self.live.users.lock();
        match users.get_mut(user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                users.remove(user);
                true
            }
            None => false,
        }
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// `[head, epoch, after, first_seq, id1, frame1, id2, frame2, …]` → a slice.
fn parse_slice(values: Vec<Value>) -> Option<StreamSlice> {
    let mut it = values.into_iter();
    let head = as_u64(&it.next()?)?;
    let epoch = String::from_utf8(as_bytes(it.next()?)?).ok()?;
    let after = as_u64(&it.next()?)?;
    let first_seq = as_u64(&it.next()?)?;
    let mut frames = Vec::new();
    while let Some(id) = it.next() {
        let id = String::from_utf8(as_bytes(id)?).ok()?;
        let frame = as_bytes(it.next()?)?;
        frames.push(Frame::event(parse_seq(&id)?, frame));
    }
    let gap = (after < head && first_seq > after + 1).then(|| ReplayGap {
        from_seq: after + 1,
        to_seq: (first_seq - 1).min(head),
    });
    Some(StreamSlice {
        epoch: epoch.into(),
        head,
        gap,
        frames,
    })
}
