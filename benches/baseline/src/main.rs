//! `agentwire-baseline`: the bare baseline the load generator compares agentwire with.
//!
//! The same wire behaviour as agentwire's `/ws` for the `echo` agent, on tokio-tungstenite with
//! the least logic possible: `?user=` names the user; a greeting frame; `user_message` → an `ack`
//! to the sender, then the five echo events with per-user `seq`s, each serialized once and sent
//! to every connection of that user; `ping` → `pong`. No auth, no history, no grammar, no
//! limits, no JSON parser (fields are cut out of the text).
//!
//! Run with: `cargo run --release -p agentwire-baseline -- 127.0.0.1:9090`

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Tx = mpsc::UnboundedSender<Utf8Bytes>;

#[derive(Default)]
struct User {
    seq: u64,
    conns: Vec<(u64, Tx)>,
}

#[derive(Default)]
struct Shared {
    users: Mutex<HashMap<String, User>>,
    next_id: AtomicU64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("agentwire-baseline ready on {addr}");
    let shared = Arc::new(Shared::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            connection(stream, shared).await;
        });
    }
}

fn user_of(uri: &str) -> String {
    uri.split_once("user=")
        .map(|(_, rest)| rest.split('&').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| "anonymous".into())
}

/// The string value of `"key":"…"` in a flat JSON text (no escapes expected).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = text.find(&pat)? + pat.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// A 26-character id like agentwire's, so frames have the same sizes.
fn id26(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:026}")
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut user = String::new();
    // The handshake callback's error type is tungstenite's (an HTTP response), not ours.
    #[allow(clippy::result_large_err)]
    let cb = |req: &Request, resp: Response| {
        user = user_of(&req.uri().to_string());
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(16 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, cb, Some(config)).await
    else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let last_seq = {
        let mut users = shared.users.lock().unwrap_or_else(|e| e.into_inner());
        let u = users.entry(user.clone()).or_default();
        u.conns.push((id, tx.clone()));
        u.seq
    };
    let hello = format!(
        "{{\"type\":\"connection_established\",\"data\":{{\"connection_id\":\"c{id}\",\"user_id\":\"{user}\",\"epoch\":\"jw9smccmjddb\",\"last_seq\":{last_seq},\"heartbeat_ms\":20000,\"resumed\":null}}}}"
    );
    let _ = tx.send(hello.into());
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.feed(Message::Text(frame)).await.is_err() {
                return;
            }
            while let Ok(frame) = rx.try_recv() {
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else {
            if msg.is_close() {
                break;
            }
            continue;
        };
        let text = text.as_str();
        let req_id = field(text, "id").unwrap_or_default();
        match field(text, "type") {
            Some("user_message") => {
                let input = field(text, "content").unwrap_or_default();
                let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let (run, thread) = (id26("r_", n), id26("t_", n));
                let ack = format!(
                    "{{\"type\":\"ack\",\"id\":\"{req_id}\",\"run_id\":\"{run}\",\"thread_id\":\"{thread}\"}}"
                );
                let _ = tx.send(ack.into());
                echo_run(&shared, &user, &run, &thread, input);
            }
            Some("ping") => {
                let _ = tx.send(format!("{{\"type\":\"pong\",\"id\":\"{req_id}\"}}").into());
            }
            _ => {}
        }
    }
    drop(tx);
    {
        let mut users = shared.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = users.get_mut(&user) {
            u.conns.retain(|(c, _)| *c != id);
        }
    }
    let _ = writer.await;
}

/// The five events of an `echo` run, each serialized once and sent to every connection.
fn echo_run(shared: &Shared, user: &str, run: &str, thread: &str, input: &str) {
    let datas = [
        ("agent_started", format!("{{\"input\":\"{input}\"}}")),
        (
            "agent_thinking",
            "{\"thought\":\"Echoing the input\",\"step\":1}".to_owned(),
        ),
        (
            "tool_executing",
            format!("{{\"call_id\":\"c_1\",\"tool\":\"echo\",\"args\":{{\"text\":\"{input}\"}}}}"),
        ),
        (
            "tool_completed",
            format!(
                "{{\"call_id\":\"c_1\",\"tool\":\"echo\",\"ok\":true,\"result\":\"{input}\",\"duration_ms\":0}}"
            ),
        ),
        (
            "agent_completed",
            format!("{{\"result\":\"{input}\",\"duration_ms\":0}}"),
        ),
    ];
    for (kind, data) in datas {
        let mut users = shared.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(u) = users.get_mut(user) else {
            return;
        };
        u.seq += 1;
        let frame: Utf8Bytes = format!(
            "{{\"type\":\"{kind}\",\"seq\":{},\"run_id\":\"{run}\",\"thread_id\":\"{thread}\",\"agent\":\"echo\",\"ts\":{},\"data\":{data}}}",
            u.seq,
            now_ms()
        )
        .into();
        for (_, tx) in &u.conns {
            let _ = tx.send(frame.clone());
        }
    }
}
