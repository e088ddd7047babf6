//! A [`Broker`] on Redis — one server or a Redis Cluster — so that many agentwire nodes behind a
//! plain load balancer serve any user: a client resumes on any node, and a node that dies loses
//! nothing that was acknowledged.
//!
//! Per user, two keys share a hash tag (`aw:{user}:…`, one cluster slot): a hash with the seq
//! head, the epoch and the history's counters, and a Redis Stream for history with one entry per
//! append batch (holding at most `history.max_events` events and `history.max_bytes` bytes of
//! frames, entries older than `history.ttl` trimmed). Appends are group-committed per user:
//! while one batch of a user is being stored, that user's later events queue, and the next batch
//! stores them all in one Lua script call — seqs, history, expiry and one publication of the
//! whole batch — so every node sees the same seqs in the same order. Each node subscribes only
//! to the users it has connections for; on a cluster with sharded pub/sub (`SSUBSCRIBE`), so live
//! traffic stays on the shard that owns the user. See `docs/scaling.md` for the design, the guarantees with and
//! without the replica wait, and the costs.
//!
//! ```no_run
//! use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, HistoryConfig};
//! use agentwire_core::Configurable;
//! use agentwire_redis::{RedisBroker, RedisOptions};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One Redis: "redis://127.0.0.1:6379". A cluster: its seed nodes.
//! let options = RedisOptions::new(HistoryConfig::default()).wait_replicas(1);
//! let builder = AgentWebSocketBridge::builder();
//! let broker = RedisBroker::connect_with(
//!     "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
//!     options,
//!     builder.live_sink(),
//! )
//! .await?;
//! let bridge = builder.broker(broker).configure(BridgeConfig::default())?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod commit;
mod live;
mod scripts;
mod slice;
mod store;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agentwire_bridge::{BridgeError, Broker, HistoryConfig, LiveSink, ReadLimit, StreamSlice};
use agentwire_core::{Frame, NowOrLater, RunEvent, RunId, UserId, async_trait, unix_millis};
use redis::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use commit::{Committer, ReplicaWait};
use live::{LiveConn, LiveFeed};
use scripts::Lua;
use store::{COMMAND_TIMEOUT, Store, Target};

pub use commit::FAILOVER_SEQ_JUMP;

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

/// How a [`RedisBroker`] keeps streams. Optional settings return `Self`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    history: HistoryConfig,
    prefix: String,
    wait: Option<(u32, Duration)>,
}

impl RedisOptions {
    /// History as configured, key prefix `aw`, no replica wait.
    pub fn new(history: HistoryConfig) -> Self {
        Self {
            history,
            prefix: "aw".to_owned(),
            wait: None,
        }
    }

    /// Another key prefix (several deployments on one Redis, or isolated tests).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// An append counts as stored only once `replicas` replicas acknowledged it (`WAIT`); 0 (the
    /// default) does not wait. The timeout defaults to 1 s; see [`Self::wait_timeout`].
    pub fn wait_replicas(mut self, replicas: u32) -> Self {
        let timeout = self.wait.map_or(Duration::from_secs(1), |(_, t)| t);
        self.wait = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// How long an append waits for its replicas before it fails (with the replica wait on).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        if let Some((_, t)) = &mut self.wait {
            *t = timeout;
        }
        self
    }
}

/// Key and channel names of one deployment.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
    cluster: bool,
}

impl Names {
    /// The user's keys: the meta hash (head, epoch, counters, trim point) and the history
    /// stream (one entry per append batch); see `scripts.rs`.
    fn keys(&self, user: &UserId) -> [String; 2] {
        let p = &self.prefix;
        [format!("{p}:{{{user}}}:m"), format!("{p}:{{{user}}}:h")]
    }

    /// The user's live channel; on a cluster in the user's hash slot, so `SPUBLISH` from the
    /// append script stays on the shard.
    fn channel(&self, user: &UserId) -> String {
        if self.cluster {
            format!("{}:{{{user}}}:live", self.prefix)
        } else {
            format!("{}:live:{user}", self.prefix)
        }
    }

    fn user_of_channel(&self, channel: &str) -> Option<UserId> {
        let rest = channel.strip_prefix(&self.prefix)?;
        let user = if self.cluster {
            rest.strip_prefix(":{")?.strip_suffix("}:live")?
        } else {
            rest.strip_prefix(":live:")?
        };
        UserId::new(user).ok()
    }

    fn publish_command(&self) -> &'static str {
        if self.cluster { "SPUBLISH" } else { "PUBLISH" }
    }
}

/// The Redis broker. Cheap to share (`Arc`); one per node.
pub struct RedisBroker {
    commits: Arc<Committer>,
    read: Lua,
    touch: Lua,
    history: HistoryConfig,
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
    /// Connects to `url` (`redis://…`, or `redis+cluster://host:port,host:port` for a cluster),
    /// proves it with a round trip (`PING`), and starts the live feed into `live` (the bridge
    /// builder's [`live_sink`](agentwire_bridge::UnconfiguredBridge::live_sink)).
    ///
    /// # Errors
    /// [`RedisBrokerError::InvalidUrl`] or [`RedisBrokerError::Unreachable`].
    pub async fn connect(
        url: &str,
        history: HistoryConfig,
        live: Arc<dyn LiveSink>,
    ) -> Result<Arc<Self>, RedisBrokerError> {
        Self::connect_with(url, RedisOptions::new(history), live).await
    }

    /// As [`Self::connect`], with another key prefix.
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub async fn connect_with_prefix(
        url: &str,
        history: HistoryConfig,
        prefix: &str,
        live: Arc<dyn LiveSink>,
    ) -> Result<Arc<Self>, RedisBrokerError> {
        Self::connect_with(url, RedisOptions::new(history).prefix(prefix), live).await
    }

    /// As [`Self::connect`], with every option.
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub async fn connect_with(
        url: &str,
        options: RedisOptions,
        sink: Arc<dyn LiveSink>,
    ) -> Result<Arc<Self>, RedisBrokerError> {
        let target = Target::parse(url)?;
        let unreachable = |e: redis::RedisError| RedisBrokerError::Unreachable {
            url: url.to_owned(),
            cause: e.to_string(),
        };
        let names = Names {
            prefix: options.prefix.clone(),
            cluster: matches!(target, Target::Cluster(_)),
        };
        let (mut store, live_conn, pushes) =
            tokio::time::timeout(COMMAND_TIMEOUT * 2, open(&target, url))
                .await
                .map_err(|_| RedisBrokerError::Unreachable {
                    url: url.to_owned(),
                    cause: "no answer within 4s".into(),
                })??;
        let _: Value = redis::cmd("PING")
            .query_async(&mut store)
            .await
            .map_err(unreachable)?;
        let wait = options
            .wait
            .map(|(replicas, timeout)| ReplicaWait { replicas, timeout });
        let history = options.history;
        let commits = Committer::new(store.clone(), names.clone(), &history, wait);
        let live = Arc::new(LiveFeed::new(names, store, live_conn, sink));
        let broker = Arc::new(Self {
            commits: Arc::new(commits),
            read: Lua::new(scripts::READ),
            touch: Lua::new(scripts::TOUCH),
            history,
            live: live.clone(),
            url: url.to_owned(),
        });
        match pushes {
            None => {
                tokio::spawn(live::run_single(live.clone()));
            }
            Some(pushes) => {
                tokio::spawn(live::run_cluster(live.clone(), pushes));
                tokio::spawn(live::resubscribe_cluster(live.clone()));
            }
        }
        // Wait briefly for the subscriber connection so the first attach does not race it.
        for _ in 0..100 {
            if live.connected.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(broker)
    }

    fn ttl_ms(&self) -> u64 {
        self.history.ttl.as_millis() as u64
    }

    fn conn(&self) -> Store {
        self.commits.store.clone()
    }

    fn keys(&self, user: &UserId) -> [String; 2] {
        self.commits.names.keys(user)
    }
}

/// What [`open`] connects: the command connection, the live feed's connection, and on a cluster
/// the receiver of its pushes.
type Opened = (Store, LiveConn, Option<UnboundedReceiver<redis::PushInfo>>);

/// Connects the command and the pub/sub side to `target`.
async fn open(target: &Target, url: &str) -> Result<Opened, RedisBrokerError> {
    let unreachable = |e: redis::RedisError| RedisBrokerError::Unreachable {
        url: url.to_owned(),
        cause: e.to_string(),
    };
    let invalid = |e: redis::RedisError| RedisBrokerError::InvalidUrl {
        url: url.to_owned(),
        cause: e.to_string(),
    };
    match target {
        Target::Single(url) => {
            let client = redis::Client::open(url.as_str()).map_err(invalid)?;
            let store = Store::single(client.clone()).await.map_err(unreachable)?;
            let pubsub = tokio::sync::Mutex::new(None);
            Ok((store, LiveConn::Single { client, pubsub }, None))
        }
        Target::Cluster(seeds) => {
            let store = Store::cluster(seeds).await.map_err(unreachable)?;
            let (pushes, rx) = tokio::sync::mpsc::unbounded_channel();
            let conn = store::cluster_pubsub(seeds, pushes.clone())
                .await
                .map_err(unreachable)?;
            let live = LiveConn::Cluster {
                conn: parking_lot::RwLock::new(conn),
                seeds: seeds.clone(),
                pushes,
                lost: tokio::sync::Notify::new(),
            };
            Ok((store, live, Some(rx)))
        }
    }
}

/// The newest held event of `user`, with the stream's epoch.
pub(crate) async fn newest(
    store: &Store,
    names: &Names,
    user: &UserId,
) -> Result<Option<(String, Frame)>, BridgeError> {
    let [meta, stream] = names.keys(user);
    let mut conn = store.clone();
    let (epoch, entries): (Option<String>, StreamEntries) = redis::pipe()
        .hget(&meta, "e")
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
    let epoch = epoch.split('/').next().unwrap_or_default().to_owned();
    // The entry's last frame is its newest event.
    let Some((_, joined)) = fields.into_iter().find(|(k, _)| k == "f") else {
        return Ok(None);
    };
    let frames = slice::split_entry(&id, joined)
        .ok_or_else(|| unavailable(format!("bad stream entry {id}")))?;
    Ok(frames
        .into_iter()
        .next_back()
        .map(|(seq, f)| (epoch, Frame::event(seq, f))))
}

/// `XREVRANGE` entries: (id, [(field, value)]).
type StreamEntries = Vec<(String, Vec<(String, Vec<u8>)>)>;

#[async_trait]
impl Broker for RedisBroker {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn append(
        &self,
        user: &UserId,
        event: &RunEvent,
        max_event_bytes: usize,
    ) -> NowOrLater<'static, Result<u64, BridgeError>> {
        // Through the group commit: the seq comes once the batch holding the event is stored
        // (and, with the replica wait, acknowledged by the replicas) — the contract's "stored".
        // `BrokerUnavailable` when Redis does not store it, or too few replicas acknowledged it
        // in time.
        self.commits.append(user, event, max_event_bytes)
    }

    fn acknowledge_failure(&self, user: &UserId, run: &RunId) {
        self.commits.acknowledge_failure(user, run);
    }

    async fn read_after(
        &self,
        user: &UserId,
        after: u64,
        epoch: Option<&str>,
        limit: ReadLimit,
    ) -> Result<StreamSlice, BridgeError> {
        let keys = self.keys(user);
        let args = [
            after.to_string(),
            epoch.unwrap_or("").to_owned(),
            // Entries to fetch: one holds one event at least.
            limit.events.clamp(1, 1 << 20).to_string(),
            epoch_candidate(),
            self.ttl_ms().to_string(),
            if self.commits.names.cluster { "1" } else { "0" }.to_owned(),
        ];
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let values: Vec<Value> = self
            .read
            .run(&mut self.conn(), &keys, &args)
            .await
            .map_err(unavailable)?;
        slice::parse_slice(values, limit)
            .ok_or_else(|| unavailable("unexpected reply to the read script"))
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), BridgeError> {
        self.live.subscribe(user).await
    }

    async fn unsubscribe(&self, user: &UserId) {
        self.live.unsubscribe(user).await;
    }

    async fn remove(&self, user: &UserId) -> Result<(), BridgeError> {
        let keys = self.keys(user);
        let mut conn = self.conn();
        redis::cmd("DEL")
            .arg(&keys[..])
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn touch(&self, users: &[UserId]) {
        let mut conn = self.conn();
        let args = [self.ttl_ms().to_string(), unix_millis().to_string()];
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        for user in users {
            let r: Result<i64, _> = self.touch.run(&mut conn, &self.keys(user), &args).await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "touch failed");
                return;
            }
        }
    }

    async fn ping(&self) -> Result<(), BridgeError> {
        let mut conn = self.conn();
        let _: Value = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if !self.live.connected.load(Ordering::Relaxed) {
            return Err(unavailable("the live feed (pub/sub) is disconnected"));
        }
        Ok(())
    }

    async fn sweep(&self) -> usize {
        self.commits.sweep();
        0
    }
}
