//! The real `agentwire` process on loopback (or the server in this process) and clients for it,
//! shared by the suites of this crate that run a server.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_agentwire");

/// A running `agentwire serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on a free loopback port with `env` and waits until it is ready.
    pub fn start(env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("RUST_LOG", "info")
            .env("AGENTWIRE_HEALTH__CACHE", "0s")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("server logs until ready").unwrap();
            if line.contains("agentwire ready") {
                let v: Value = serde_json::from_str(&line).unwrap();
                break v["fields"]["listen"].as_str().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Server { child, addr }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address as a socket address.
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        self.addr.parse().unwrap()
    }

    /// The server process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// A WebSocket of `user` (dev auth) with `query` added, past its `connection_established`
    /// (returned).
    pub async fn ws(&self, user: &str, query: &str) -> (Ws, Value) {
        let url = format!("ws://{}/ws?user={user}{query}", self.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let hello = next_json(&mut ws).await.expect("connection_established");
        assert_eq!(hello["type"], "connection_established", "{hello}");
        (ws, hello)
    }

    /// Every held event of `user`, page by page from `after=0`: the first page's `gap`, and
    /// each page as (its events as raw JSON texts, its `next_after`, its `head`).
    pub async fn pages(&self, user: &str, query: &str) -> (Value, Vec<Page>) {
        let http = reqwest::Client::new();
        let mut after = 0;
        let mut gap = Value::Null;
        let mut pages = Vec::new();
        loop {
            let url = self.url(&format!("/v1/events?user={user}&after={after}{query}"));
            let body = http.get(url).send().await.unwrap().text().await.unwrap();
            let page = Page::parse(&body);
            if pages.is_empty() {
                gap = page.gap.clone();
            }
            after = page.next_after;
            let done = page.next_after >= page.head;
            pages.push(page);
            if done {
                return (gap, pages);
            }
            assert!(pages.len() < 10_000, "paging does not end");
        }
    }
}

/// One `/v1/events` page.
#[derive(Debug)]
pub struct Page {
    /// Each event's JSON exactly as the body holds it.
    pub events: Vec<String>,
    pub seqs: Vec<u64>,
    pub gap: Value,
    pub head: u64,
    pub next_after: u64,
}

impl Page {
    pub fn parse(body: &str) -> Page {
        #[derive(serde::Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            events: Vec<&'a serde_json::value::RawValue>,
            gap: Value,
            head: u64,
            next_after: u64,
        }
        let raw: Raw<'_> =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:.300}"));
        let events: Vec<String> = raw.events.iter().map(|e| e.get().to_owned()).collect();
        let seqs = events
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(e).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        Page {
            events,
            seqs,
            gap: raw.gap,
            head: raw.head,
            next_after: raw.next_after,
        }
    }

    /// Bytes of the page's events (their JSON).
    pub fn bytes(&self) -> usize {
        self.events.iter().map(String::len).sum()
    }
}

/// The resident memory of process `pid`, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The server in this process with `config` on a free loopback port: its address, and the
/// sender that shuts it down (dropping it does too).
pub async fn in_process(
    config: agentwire_startup::AgentwireConfig,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let ready = agentwire_server::start(config, Vec::new())
        .await
        .expect("startup");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(agentwire_server::serve(
        listener,
        agentwire_server::AppState::new(ready),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame as the server wrote it; `None` when the connection ends.
pub async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
        {
            Some(Ok(Message::Text(t))) => return Some(t.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// The next text frame as JSON; `None` when the connection ends.
pub async fn next_json(ws: &mut Ws) -> Option<Value> {
    Some(serde_json::from_str(&next_text(ws).await?).unwrap())
}

/// Sends a `user_message` to `agent`.
pub async fn send_message(ws: &mut Ws, id: &str, agent: &str, content: &str) {
    let frame = json!({"type": "user_message", "id": id, "agent": agent, "content": content});
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// Runs `echo` with `content` and reads its frames up to the terminal event: the frames after
/// the ack (the ack itself is checked), each as the server wrote it and as JSON.
pub async fn echo_run(ws: &mut Ws, id: &str, content: &str) -> Vec<(String, Value)> {
    send_message(ws, id, "echo", content).await;
    let ack = next_json(ws).await.unwrap();
    assert_eq!(ack["type"], "ack", "{ack:.300}");
    let mut frames = Vec::new();
    loop {
        let text = next_text(ws).await.expect("the run's events");
        let f: Value = serde_json::from_str(&text).unwrap();
        let end = matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"));
        frames.push((text, f));
        if end {
            return frames;
        }
    }
}

/// The value of one series (`name{labels}`, or a bare name) in a `/metrics` body.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
