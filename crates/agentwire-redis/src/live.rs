//! The pub/sub side: which users this node follows, and how their published batches reach the
//! bridge. On one Redis, one subscriber connection (`SUBSCRIBE`, reconnecting in [`run_single`]);
//! on a cluster, sharded pub/sub (`SSUBSCRIBE`) on the cluster client, so a user's live traffic
//! only touches the shard that owns the user and only the nodes that follow the user.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentwire_bridge::{BridgeError, LiveSink};
use agentwire_core::{Frame, UserId};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use redis::aio::PubSubSink;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::slice::frames_of;
use crate::store::Store;
use crate::{Names, unavailable};

/// How this node receives published batches.
pub(crate) enum LiveConn {
    /// One Redis: a dedicated subscriber connection, replaced on reconnect.
    Single {
        client: redis::Client,
        pubsub: tokio::sync::Mutex<Option<PubSubSink>>,
    },
    /// A cluster: the cluster client in RESP3 with a push channel; [`run_cluster`] reads it.
    Cluster {
        conn: RwLock<ClusterConnection>,
        /// Seed nodes and the push channel, to build the client again when it is stuck.
        seeds: Vec<String>,
        pushes: UnboundedSender<PushInfo>,
        /// Wakes the re-subscriber after a node connection dropped.
        lost: Notify,
    },
}

/// The live feed of one node.
pub(crate) struct LiveFeed {
    /// Given when the broker is built.
    pub(crate) sink: Arc<dyn LiveSink>,
    /// Users with local connections and how many.
    users: Mutex<HashMap<UserId, usize>>,
    pub(crate) connected: AtomicBool,
    names: Names,
    store: Store,
    conn: LiveConn,
}

impl LiveFeed {
    pub(crate) fn new(names: Names, store: Store, conn: LiveConn, sink: Arc<dyn LiveSink>) -> Self {
        Self {
            sink,
            users: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(matches!(conn, LiveConn::Cluster { .. })),
            names,
            store,
            conn,
        }
    }

    /// Counts one subscription of `user`; subscribes on Redis for the first.
    pub(crate) async fn subscribe(&self, user: &UserId) -> Result<(), BridgeError> {
        let first = {
            let mut users = self.users.lock();
            let n = users.entry(user.clone()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if !first {
            return Ok(());
        }
        let channel = self.names.channel(user);
        let result = match &self.conn {
            LiveConn::Single { pubsub, .. } => subscribe_single(pubsub, channel).await,
            LiveConn::Cluster { conn, lost, .. } => {
                let mut conn = conn.read().clone();
                let subscribed = conn.ssubscribe(channel).await.map_err(unavailable);
                if subscribed.is_err() {
                    // Let the re-subscriber check (and if need be rebuild) the connection.
                    lost.notify_one();
                }
                subscribed
            }
        };
        if result.is_err() {
            self.release(user);
        }
        result
    }

    /// Undoes one subscription; unsubscribes on Redis after the last.
    pub(crate) async fn unsubscribe(&self, user: &UserId) {
        if !self.release(user) {
            return;
        }
        let channel = self.names.channel(user);
        match &self.conn {
            LiveConn::Single { pubsub, .. } => {
                if let Some(sink) = pubsub.lock().await.as_mut() {
                    let _ = sink.unsubscribe(channel).await;
                }
            }
            LiveConn::Cluster { conn, .. } => {
                let mut conn = conn.read().clone();
                let _ = conn.sunsubscribe(channel).await;
            }
        }
    }

    /// Drops one subscription of `user`; true when it was the last.
    fn release(&self, user: &UserId) -> bool {
        let mut users = self.users.lock();
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

    fn followed(&self) -> Vec<UserId> {
        self.users.lock().keys().cloned().collect()
    }

    /// Hands one published batch (`"<first seq> <epoch> <frame>\n<frame>…"`) to the bridge,
    /// frame by frame in seq order.
    fn dispatch(&self, channel: &str, payload: &[u8]) {
        let live = &self.sink;
        let Some(user) = self.names.user_of_channel(channel) else {
            return;
        };
        let Some((first, epoch, frames)) = decode_batch(payload) else {
            tracing::warn!(channel, "malformed live message ignored");
            return;
        };
        // Latency on Redis is measured from when this node received the live message.
        let now = std::time::Instant::now();
        // One copy of the batch; its frames are slices of it.
        let frames = Bytes::copy_from_slice(frames);
        for (seq, json) in (first..).zip(frames_of(&frames)) {
            live.deliver(&user, epoch, Frame::event(seq, json).accepted_at(now));
        }
    }

    /// Delivers `user`'s newest event again: a connection that missed events while the feed was
    /// down sees a seq past its cursor and replays the hole from history; others skip it as a
    /// duplicate.
    async fn nudge(&self, user: &UserId) {
        match crate::newest(&self.store, &self.names, user).await {
            Ok(Some((epoch, frame))) => {
                self.sink.deliver(user, &epoch, frame);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "nudge failed"),
        }
    }
}

/// `"<first> <epoch> <frame>\n<frame>…"` → (first, epoch, the joined frames).
fn decode_batch(payload: &[u8]) -> Option<(u64, &str, &[u8])> {
    let mut parts = payload.splitn(3, |b| *b == b' ');
    let first = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let epoch = std::str::from_utf8(parts.next()?).ok()?;
    Some((first, epoch, parts.next()?))
}

/// Waits up to a few seconds for the subscriber connection (it may be reconnecting).
async fn subscribe_single(
    pubsub: &tokio::sync::Mutex<Option<PubSubSink>>,
    channel: String,
) -> Result<(), BridgeError> {
    for _ in 0..200 {
        if let Some(sink) = pubsub.lock().await.as_mut() {
            return sink.subscribe(channel).await.map_err(unavailable);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(unavailable("the live feed is not connected"))
}

/// One Redis: keeps the subscriber connection up — connects, re-subscribes every followed user,
/// nudges them (events published while disconnected are found as holes and replayed), and
/// dispatches messages until the connection drops — forever.
pub(crate) async fn run_single(feed: Arc<LiveFeed>) {
    let LiveConn::Single { client, pubsub } = &feed.conn else {
        return;
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        match client.get_async_pubsub().await {
            Ok(connection) => {
                let (mut sink, mut stream) = connection.split();
                let users = feed.followed();
                let mut ok = true;
                for user in &users {
                    if let Err(e) = sink.subscribe(feed.names.channel(user)).await {
                        tracing::warn!(error = %e, "re-subscribe failed");
                        ok = false;
                        break;
                    }
                }
                if ok {
                    *pubsub.lock().await = Some(sink);
                    feed.connected.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(50);
                    if !users.is_empty() {
                        tracing::info!(users = users.len(), "live feed reconnected");
                        let feed = feed.clone();
                        tokio::spawn(async move {
                            for user in users {
                                feed.nudge(&user).await;
                            }
                        });
                    }
                    while let Some(msg) = stream.next().await {
                        feed.dispatch(msg.get_channel_name(), msg.get_payload_bytes());
                    }
                    feed_lost();
                    tracing::warn!("live feed connection lost; reconnecting");
                }
            }
            Err(e) => {
                feed_lost();
                tracing::debug!(error = %e, "live feed cannot connect");
            }
        }
        feed.connected.store(false, Ordering::Relaxed);
        *pubsub.lock().await = None;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn feed_lost() {
    metrics::counter!("agentwire_broker_errors_total", "broker" => "redis", "op" => "live")
        .increment(1);
}

/// A cluster: reads the push channel — shard messages go to the bridge; a (re)subscription
/// confirmation nudges the user (it may have missed messages meanwhile); a dropped node
/// connection wakes [`resubscribe_cluster`].
pub(crate) async fn run_cluster(feed: Arc<LiveFeed>, mut pushes: UnboundedReceiver<PushInfo>) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::SMessage | PushKind::Message => {
                if let [Value::BulkString(channel), Value::BulkString(payload), ..] = &push.data[..]
                    && let Ok(channel) = std::str::from_utf8(channel)
                {
                    feed.dispatch(channel, payload);
                }
            }
            PushKind::SSubscribe => {
                let user = match push.data.first() {
                    Some(Value::BulkString(channel)) => std::str::from_utf8(channel)
                        .ok()
                        .and_then(|c| feed.names.user_of_channel(c)),
                    _ => None,
                };
                if let Some(user) = user {
                    let feed = feed.clone();
                    tokio::spawn(async move { feed.nudge(&user).await });
                }
            }
            PushKind::Disconnection => {
                feed_lost();
                if let LiveConn::Cluster { lost, .. } = &feed.conn {
                    lost.notify_one();
                }
            }
            _ => {}
        }
    }
}

/// A cluster: after a node connection dropped (a failover, a restart), subscribes every followed
/// user again — routed by the refreshed slot map to the shard's current primary — retrying with
/// backoff until all succeed; meanwhile the feed counts as disconnected.
pub(crate) async fn resubscribe_cluster(feed: Arc<LiveFeed>) {
    let LiveConn::Cluster {
        conn,
        seeds,
        pushes,
        lost,
    } = &feed.conn
    else {
        return;
    };
    loop {
        lost.notified().await;
        feed.connected.store(false, Ordering::Relaxed);
        let mut backoff = Duration::from_millis(100);
        for attempt in 1.. {
            tokio::time::sleep(backoff).await;
            if attempt % 4 == 0 {
                // Still failing after a few tries: build the client afresh from the seed nodes
                // rather than rely on its internal recovery alone.
                match crate::store::cluster_pubsub(seeds, pushes.clone()).await {
                    Ok(fresh) => *conn.write() = fresh,
                    Err(e) => tracing::debug!(error = %e, "pub/sub client rebuild failed"),
                }
            }
            let mut current = conn.read().clone();
            let mut ok = true;
            for user in feed.followed() {
                if let Err(e) = current.ssubscribe(feed.names.channel(&user)).await {
                    tracing::debug!(error = %e, "sharded re-subscribe failed; retrying");
                    ok = false;
                    break;
                }
            }
            if ok {
                break;
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        tracing::info!("live feed re-subscribed on the cluster");
        feed.connected.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_message_decodes_into_consecutive_frames() {
        let (first, epoch, frames) = decode_batch(b"7 ep1 {\"a\":1}\n{\"b\":2}").unwrap();
        assert_eq!((first, epoch), (7, "ep1"));
        let frames: Vec<Bytes> = frames_of(&Bytes::copy_from_slice(frames)).collect();
        assert_eq!(frames, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
        let (first, _, frames) = decode_batch(b"3 e {\"x\":\"a b\"}").unwrap();
        let frames = Bytes::copy_from_slice(frames);
        assert_eq!((first, frames_of(&frames).count()), (3, 1));
        assert!(decode_batch(b"x e {}").is_none());
        assert!(decode_batch(b"1 e").is_none());
    }
}
