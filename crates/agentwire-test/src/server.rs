//! A real agentwire server on an ephemeral loopback port, and real WebSocket clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentwire_agent_registry::DemoSettings;
use agentwire_health_monitor::HealthCheck;
use agentwire_server::AppState;
use agentwire_startup::AgentwireConfig;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a client waits for one frame before the test fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// A config for tests: the demo agent without pauses, everything else default.
pub fn test_config() -> AgentwireConfig {
    let mut config = AgentwireConfig::default();
    config.agents.demo = DemoSettings::instant();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config
}

/// A running server bound to `127.0.0.1:0`.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (bridge, executor, monitor, config).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with [`test_config`].
    ///
    /// # Panics
    /// When startup fails.
    pub async fn start() -> Self {
        Self::start_with(test_config(), Vec::new()).await
    }

    /// Starts a server with `config` and extra health checks.
    ///
    /// # Panics
    /// When startup fails or the port cannot be bound.
    pub async fn start_with(config: AgentwireConfig, checks: Vec<Arc<dyn HealthCheck>>) -> Self {
        let ready = agentwire_server::start(config, checks)
            .await
            .expect("startup succeeds");
        Self::serve(AppState::new(ready)).await
    }

    /// Serves an already-built state.
    ///
    /// # Panics
    /// When the port cannot be bound.
    pub async fn serve(state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(agentwire_server::serve(
            listener,
            state.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://addr{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://addr/ws?{query}`.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.addr)
    }

    /// Connects as `user` with dev auth and reads the greeting.
    ///
    /// # Panics
    /// When the connection fails.
    pub async fn connect(&self, user: &str) -> WsClient {
        WsClient::connect(&self.ws_url(&format!("user={user}")))
            .await
            .expect("websocket connects")
    }

    /// Starts the graceful shutdown and waits for the server to stop.
    ///
    /// # Panics
    /// When the server task failed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }

    /// Starts the graceful shutdown without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server task after [`Self::begin_stop`].
    ///
    /// # Panics
    /// When the server task failed.
    pub async fn join(mut self) {
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A real WebSocket client.
#[derive(Debug)]
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `connection_established` frame.
    pub hello: Value,
    /// The close frame received, once the server closed.
    pub close: Option<CloseFrame>,
}

/// Why a connection attempt failed.
pub type ConnectError = tokio_tungstenite::tungstenite::Error;

impl WsClient {
    /// Connects to `url` and reads `connection_established`.
    ///
    /// # Errors
    /// The handshake error (e.g. HTTP 401).
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_request(url.into_client_request()?).await
    }

    /// Connects with a prepared request (extra headers, subprotocols).
    ///
    /// # Errors
    /// The handshake error.
    ///
    /// # Panics
    /// When the greeting does not arrive.
    pub async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, ConnectError> {
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        let mut client = Self {
            stream,
            hello: Value::Null,
            close: None,
        };
        let hello = client.next_json().await.expect("greeting arrives");
        assert_eq!(
            hello["type"], "connection_established",
            "first frame: {hello}"
        );
        client.hello = hello;
        Ok(client)
    }

    /// Sends a JSON frame.
    ///
    /// # Panics
    /// When the socket is closed.
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a raw text frame.
    ///
    /// # Panics
    /// When the socket is closed.
    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// The next JSON frame, or `None` once the server closed (the close is kept in `close`).
    ///
    /// # Panics
    /// After [`FRAME_TIMEOUT`] without a frame, or on a non-JSON frame.
    pub async fn next_json(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .expect("a frame within the timeout");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(&t).expect("JSON frame"));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.close = frame;
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Reads frames until the run acknowledged for request `id` ends; returns the ack and that
    /// run's events (frames of other runs are skipped).
    ///
    /// # Panics
    /// When the connection ends first or an error frame answers `id`.
    pub async fn until_run_ends(&mut self, id: &str) -> (Value, Vec<Value>) {
        let mut ack = Value::Null;
        let mut events = Vec::new();
        let mut early = Vec::new();
        loop {
            let f = self
                .next_json()
                .await
                .expect("connection stays open until the run ends");
            if f["type"] == "error" && f["id"] == id {
                panic!("request {id} failed: {f}");
            }
            if f["type"] == "ack" && f["id"] == id {
                ack = f;
                events.extend(
                    early
                        .drain(..)
                        .filter(|e: &Value| e["run_id"] == ack["run_id"]),
                );
                continue;
            }
            if f.get("seq").is_none() {
                continue;
            }
            if ack.is_null() {
                early.push(f);
                continue;
            }
            if f["run_id"] == ack["run_id"] {
                let done = matches!(f["type"].as_str(), Some("agent_completed" | "agent_error"));
                events.push(f);
                if done {
                    return (ack, events);
                }
            }
        }
    }

    /// Sends a `user_message` and waits for its run to end.
    pub async fn run(&mut self, id: &str, agent: &str, content: &str) -> (Value, Vec<Value>) {
        self.send_json(serde_json::json!({"type": "user_message", "id": id, "agent": agent, "content": content}))
            .await;
        self.until_run_ends(id).await
    }

    /// Closes the connection normally.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// The underlying stream, for raw access.
    pub fn stream_mut(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.stream
    }
}
