//! The node's subscriber to `<prefix>:notify`: wakes the local live readers of a stream when
//! any node appends to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::watch;

/// The subscriber loop: wakes local waiters for each published path; on reconnect wakes them
/// all (a notification may have been missed while disconnected).
pub(super) async fn subscribe(
    client: redis::Client,
    channel: String,
    watchers: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            for tx in watchers.lock().values() {
                tx.send_modify(|v| *v += 1);
            }
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let path = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                let mut map = watchers.lock();
                if let Some(tx) = map.get(&path) {
                    if tx.receiver_count() == 0 {
                        map.remove(&path);
                    } else {
                        tx.send_modify(|v| *v += 1);
                    }
                }
            }
            tracing::warn!("durable streams: redis notification connection lost; reconnecting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
