//! A real agentwire server on an ephemeral loopback port, and real WebSocket clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentwire_agent_registry::{AgentRegistry, DemoSettings};
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

/// A config for tests: the demo agent without pauses, listening on `127.0.0.1:0`, everything else
/// default (in-memory broker, dev auth).
///
/// ```
/// let mut config = agentwire_test::test_config();
/// config.limits.max_runs_per_user = 2; // adjust, then `TestServer::start_with(config, vec![])`
/// ```
pub fn test_config() -> AgentwireConfig {
    let mut config = AgentwireConfig::default();
    config.agents.demo = DemoSettings::instant();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config
}

/// A running server bound to `127.0.0.1:0`: every startup phase ran, the routes are
/// agentwire's own, and dev auth lets [`Self::connect`] pick the user.
///
/// It stops gracefully with [`Self::stop`] and is aborted when dropped.
///
/// ```no_run
/// use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
/// use agentwire_test::TestServer;
///
/// # #[tokio::main] async fn main() {
/// // Your own registry (it must keep the built-in `echo` agent for the critical-path check).
/// let registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
/// let server = TestServer::start_with_registry(registry).await;
/// let mut ada = server.connect("ada").await;
/// let (_ack, events) = ada.run("c1", "demo", "what is 6*7?").await;
/// assert_eq!(events.last().unwrap()["type"], "agent_completed");
/// let health = reqwest::get(server.http_url("/health")).await.unwrap();
/// # drop(health);
/// server.stop().await;
/// # }
/// ```
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

    /// Starts a server with [`test_config`] and your own registry.
    ///
    /// # Panics
    /// When startup fails (e.g. the registry has no `echo` agent or drops its websocket
    /// manager); the panic message is the startup error.
    pub async fn start_with_registry<R: AgentRegistry>(registry: R) -> Self {
        let ready = agentwire_server::start_with_registry(test_config(), registry, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("startup failed: {e}"));
        Self::serve(AppState::new(ready)).await
    }

    /// Serves an already-built state (e.g. with your own authenticator:
    /// `AppState::with_authenticator(ready, auth)`).
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

/// A real WebSocket client (tokio-tungstenite) that reads JSON frames, with a
/// [`FRAME_TIMEOUT`] on every read so a broken test fails instead of hanging.
///
/// ```no_run
/// use agentwire_test::{TestServer, WsClient};
/// use serde_json::json;
///
/// # #[tokio::main] async fn main() {
/// let server = TestServer::start().await;
/// let mut bob = WsClient::connect(&server.ws_url("user=bob")).await.unwrap();
/// assert_eq!(bob.hello["data"]["user_id"], "bob");
/// bob.send_json(json!({"type": "ping", "id": "p1"})).await;
/// assert_eq!(bob.next_json().await.unwrap()["type"], "pong");
/// # }
/// ```
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

#[cfg(test)]
mod tests {
    use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};

    use super::*;

    #[tokio::test]
    async fn a_server_with_your_registry_runs_agents_for_connected_clients() {
        let registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
        let server = TestServer::start_with_registry(registry).await;
        let mut ada = server.connect("ada").await;
        assert_eq!(ada.hello["data"]["user_id"], "ada");
        let (ack, events) = ada.run("c1", "echo", "hi").await;
        assert_eq!(ack["id"], "c1");
        let parsed: Vec<agentwire_core::StreamEvent> = events
            .iter()
            .map(|e| serde_json::from_value(e.clone()).unwrap())
            .collect();
        assert_eq!(crate::check_events(&parsed), Ok(1));
        ada.close().await;
        server.stop().await;
    }

    #[tokio::test]
    #[should_panic(expected = "no `echo` agent")]
    async fn a_registry_without_echo_fails_startup_with_its_reason() {
        TestServer::start_with_registry(InMemoryAgentRegistry::new()).await;
    }
}
