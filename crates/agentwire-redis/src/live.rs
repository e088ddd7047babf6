//! The pub/sub side: one subscriber connection per node, refcounted per user, reconnecting.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentwire_bridge::LiveSink;
use agentwire_core::{Frame, UserId};
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::PubSubSink;

use crate::RedisBroker;

/// The live feed of one node.
pub(crate) struct LiveFeed {
    /// Given when the broker is built.
    pub(crate) sink: Arc<dyn LiveSink>,
    /// Users with local connections and how many.
    pub(crate) users: Mutex<HashMap<UserId, usize>>,
    /// The current subscriber connection, while connected.
    pub(crate) pubsub: tokio::sync::Mutex<Option<PubSubSink>>,
    pub(crate) connected: AtomicBool,
    pub(crate) prefix: String,
}

impl LiveFeed {
    pub(crate) fn new(prefix: String, sink: Arc<dyn LiveSink>) -> Self {
        Self {
            sink,
            users: Mutex::new(HashMap::new()),
            pubsub: tokio::sync::Mutex::new(None),
            connected: AtomicBool::new(false),
            prefix,
        }
    }

    pub(crate) fn channel(&self, user: &UserId) -> String {
        format!("{}:live:{user}", self.prefix)
    }

    fn user_of(&self, channel: &str) -> Option<UserId> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix(":live:")?;
        UserId::new(rest).ok()
    }

    /// Hands one published message (`"<seq> <epoch> <frame json>"`) to the bridge.
    fn dispatch(&self, channel: &str, payload: &[u8]) {
        let Some(user) = self.user_of(channel) else {
            return;
        };
        let live = &self.sink;
        let mut parts = payload.splitn(3, |b| *b == b' ');
        let (Some(seq), Some(epoch), Some(json)) = (parts.next(), parts.next(), parts.next())
        else {
            tracing::warn!(channel, "malformed live message ignored");
            return;
        };
        let (Some(seq), Ok(epoch)) = (
            std::str::from_utf8(seq)
                .ok()
                .and_then(|s| s.parse::<u64>().ok()),
            std::str::from_utf8(epoch),
        ) else {
            tracing::warn!(channel, "malformed live message ignored");
            return;
        };
        // Latency on Redis is measured from when this node received the live message.
        live.deliver(
            &user,
            epoch,
            Frame::event(seq, json.to_vec()).accepted_at(std::time::Instant::now()),
        );
    }
}

/// Keeps the subscriber connection up: connects, re-subscribes every local user, nudges the
/// bridge with each user's newest event (so events published while disconnected are found as
/// holes and replayed), and dispatches messages until the connection drops — forever.
pub(crate) async fn run(broker: Arc<RedisBroker>) {
    let feed = broker.live.clone();
    let mut backoff = Duration::from_millis(50);
    loop {
        match broker.client.get_async_pubsub().await {
            Ok(pubsub) => {
                let (mut sink, mut stream) = pubsub.split();
                let users: Vec<UserId> = feed.users.lock().keys().cloned().collect();
                let mut ok = true;
                for user in &users {
                    if let Err(e) = sink.subscribe(feed.channel(user)).await {
                        tracing::warn!(error = %e, "re-subscribe failed");
                        ok = false;
                        break;
                    }
                }
                if ok {
                    *feed.pubsub.lock().await = Some(sink);
                    feed.connected.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(50);
                    if !users.is_empty() {
                        tracing::info!(users = users.len(), "live feed reconnected");
                        tokio::spawn(nudge(broker.clone(), users));
                    }
                    while let Some(msg) = stream.next().await {
                        feed.dispatch(msg.get_channel_name(), msg.get_payload_bytes());
                    }
                    metrics::counter!("agentwire_broker_errors_total", "broker" => "redis", "op" => "live")
                        .increment(1);
                    tracing::warn!("live feed connection lost; reconnecting");
                }
            }
            Err(e) => {
                metrics::counter!("agentwire_broker_errors_total", "broker" => "redis", "op" => "live")
                    .increment(1);
                tracing::debug!(error = %e, "live feed cannot connect");
            }
        }
        feed.connected.store(false, Ordering::Relaxed);
        *feed.pubsub.lock().await = None;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Delivers each user's newest event again: a connection that missed events while the feed was
/// down sees a seq past its cursor and replays the hole from history; others skip it as a
/// duplicate.
async fn nudge(broker: Arc<RedisBroker>, users: Vec<UserId>) {
    for user in users {
        match broker.newest(&user).await {
            Ok(Some((epoch, frame))) => {
                broker.live.sink.deliver(&user, &epoch, frame);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "nudge failed"),
        }
    }
}
