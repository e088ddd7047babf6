//! Opening client connections: optional source address, the handshake, the greeting.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Microseconds since the generator started: the clock the `content` of a run carries.
pub(crate) fn now_us() -> u64 {
    us_at(Instant::now())
}

/// `at` on the clock of [`now_us`].
pub(crate) fn us_at(at: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*BASE.get_or_init(Instant::now))
        .as_micros() as u64
}

/// Connects to `/ws?user=<user>` from `source` (any local address when `None`) and waits for the
/// greeting frame.
pub(crate) async fn connect(
    addr: SocketAddr,
    user: &str,
    source: Option<IpAddr>,
) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}/ws?user={user}");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| format!("handshake with {addr}: {e}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with("{\"type\":\"connection_established\"") => {
            Ok(ws)
        }
        other => Err(format!("expected connection_established, got {other:?}")),
    }
}

/// The `user_message` whose `content` is the send time.
pub(crate) fn user_message(n: u64) -> Message {
    user_message_at(n, now_us())
}

/// The `user_message` whose `content` is `sent_us` (on the clock of [`now_us`]): for an open
/// loop, the time the message was due, so a late send counts against the latency.
pub(crate) fn user_message_at(n: u64, sent_us: u64) -> Message {
    Message::text(format!(
        "{{\"type\":\"user_message\",\"id\":\"m{n}\",\"content\":\"{sent_us}\",\"agent\":\"echo\"}}"
    ))
}

/// What a received frame means to the generator.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// An event frame (has a `seq`); `Some(sent_us)` when it is an `agent_completed`.
    Event(Option<u64>),
    /// An `error` frame.
    Error,
    /// Anything else (ack, pong, greeting).
    Other,
}

/// Classifies a frame without a JSON parser (the generator must stay cheaper than the server).
pub(crate) fn classify(text: &str) -> Seen {
    if let Some(rest) = text.strip_prefix("{\"type\":\"agent_completed\"") {
        let sent = rest
            .find("\"result\":\"")
            .map(|i| &rest[i + 10..])
            .and_then(|r| r.split('"').next())
            .and_then(|digits| digits.parse().ok());
        Seen::Event(sent)
    } else if text.starts_with("{\"type\":\"error\"") {
        Seen::Error
    } else if text.contains("\"seq\":") {
        Seen::Event(None)
    } else {
        Seen::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_frames() {
        let done = r#"{"type":"agent_completed","seq":5,"run_id":"r_1","thread_id":"t_1","agent":"echo","ts":1,"data":{"result":"1234","duration_ms":0}}"#;
        assert_eq!(classify(done), Seen::Event(Some(1234)));
        let started = r#"{"type":"agent_started","seq":1,"run_id":"r_1","data":{"input":"1"}}"#;
        assert_eq!(classify(started), Seen::Event(None));
        assert_eq!(classify(r#"{"type":"ack","id":"m1"}"#), Seen::Other);
        assert_eq!(
            classify(r#"{"type":"error","code":"rate_limited"}"#),
            Seen::Error
        );
    }
}
