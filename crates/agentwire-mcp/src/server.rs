//! `McpServer`: one connection to an MCP server, kept up by a supervisor task.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::{Endpoint, INHERITED_ENV};
use crate::{McpError, McpServerConfig, McpTool};

/// A tool a server offers, as `tools/list` described it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpToolSpec {
    /// The name agents call it by: `mcp:<server>/<tool>`.
    pub name: String,
    /// The tool's name on its server.
    pub remote_name: String,
    /// What it does (the server's description; empty when it gave none).
    pub description: String,
    /// The JSON Schema of its arguments (`inputSchema`).
    pub input_schema: Value,
}

/// One MCP server: connected, its tools listed, and kept connected.
///
/// [`McpServer::connect`] starts the server (stdio) or reaches it (streamable HTTP), runs
/// `initialize` and `tools/list`, and hands the connection to a supervisor task that
///
/// - restarts a server whose connection ends (a stdio process that dies), with exponential
///   backoff from 200 ms to 30 s; calls in flight then fail, and calls made while it is down
///   fail at once with the reason;
/// - lists the tools again on `notifications/tools/list_changed`.
///
/// Clones share the connection; when the last clone is dropped the supervisor stops and a stdio
/// server's process is killed.
#[derive(Clone)]
pub struct McpServer {
    pub(crate) shared: Arc<Shared>,
    _stop: Arc<DropGuard>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.state.read();
        f.debug_struct("McpServer")
            .field("name", &self.shared.name)
            .field("connected", &state.peer.is_some())
            .field("tools", &state.tools.keys().collect::<Vec<_>>())
            .finish()
    }
}

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) config: McpServerConfig,
    endpoint: Endpoint,
    pub(crate) progress: ProgressDispatcher,
    pub(crate) state: RwLock<State>,
    stop: CancellationToken,
}

pub(crate) struct State {
    /// The live connection; `None` while the server is down.
    pub(crate) peer: Option<Peer<RoleClient>>,
    /// Why the server is down (`peer` is `None`).
    pub(crate) down: Option<String>,
    pub(crate) pid: Option<u32>,
    pub(crate) restarts: u64,
    /// By remote name.
    pub(crate) tools: Arc<BTreeMap<String, Arc<McpToolSpec>>>,
}

/// The client side of one connection: routes progress to the call that asked for it and
/// refreshes the tool list when the server says it changed.
#[derive(Clone)]
struct Handler {
    shared: Weak<Shared>,
}

impl ClientHandler for Handler {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(shared) = self.shared.upgrade() {
            shared.progress.handle_notification(params).await;
        }
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        if let Some(shared) = self.shared.upgrade() {
            // Listing is a request on this same connection: not from inside its notification
            // handler, which the connection's loop awaits.
            tokio::spawn(async move {
                if let Err(e) = shared.list_tools(&context.peer).await {
                    tracing::warn!(server = %shared.name, error = %e, "tools/list after list_changed failed");
                }
            });
        }
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("agentwire", env!("CARGO_PKG_VERSION")),
        )
        // The newest version with the `initialize` handshake: what servers of every SDK speak.
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

type Service = RunningService<RoleClient, Handler>;

impl McpServer {
    /// Starts or reaches server `name`, runs `initialize` and `tools/list` (each within the
    /// server's `timeout`), and keeps it connected from then on.
    ///
    /// # Errors
    /// [`McpError::Config`] for a wrong configuration, [`McpError::Connect`] when the server
    /// cannot be started or reached or does not answer.
    pub async fn connect(name: &str, config: McpServerConfig) -> Result<Self, McpError> {
        let endpoint = config.endpoint(name)?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            config,
            endpoint,
            progress: ProgressDispatcher::new(),
            state: RwLock::new(State {
                peer: None,
                down: Some("connecting".into()),
                pid: None,
                restarts: 0,
                tools: Arc::default(),
            }),
            stop: stop.clone(),
        });
        let service = shared.open().await.map_err(|reason| McpError::Connect {
            server: name.to_owned(),
            reason,
        })?;
        tokio::spawn(supervise(shared.clone(), service));
        Ok(Self {
            shared,
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// The server's name (`[mcp.<name>]`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its tools, sorted by name.
    pub fn tools(&self) -> Vec<McpTool> {
        let tools = self.shared.state.read().tools.clone();
        tools
            .values()
            .map(|spec| McpTool::new(self.shared.clone(), spec.clone()))
            .collect()
    }

    /// Its tool `remote_name` (the name on the server, without `mcp:<server>/`).
    pub fn tool(&self, remote_name: &str) -> Option<McpTool> {
        let spec = self.shared.state.read().tools.get(remote_name).cloned()?;
        Some(McpTool::new(self.shared.clone(), spec))
    }

    /// The process id of a stdio server while it runs.
    pub fn process_id(&self) -> Option<u32> {
        self.shared.state.read().pid
    }

    /// How often the server was restarted after its connection ended.
    pub fn restarts(&self) -> u64 {
        self.shared.state.read().restarts
    }

    /// Whether it is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.state.read().peer.is_some()
    }

    /// A real round trip (`ping`) when connected; why not otherwise.
    ///
    /// # Errors
    /// The server is down (and being restarted) or did not answer.
    pub async fn ping(&self) -> Result<(), String> {
        let peer = self.shared.peer()?;
        tokio::time::timeout(self.shared.config.timeout, peer.send_request(ping()))
            .await
            .map_err(|_| "no answer to ping".to_owned())?
            .map(|_| ())
            .map_err(|e| format!("ping failed: {e}"))
    }
}

fn ping() -> rmcp::model::ClientRequest {
    rmcp::model::ClientRequest::PingRequest(rmcp::model::PingRequest::default())
}

impl Shared {
    /// The live connection, or why there is none.
    pub(crate) fn peer(&self) -> Result<Peer<RoleClient>, String> {
        let state = self.state.read();
        state.peer.clone().ok_or_else(|| {
            format!(
                "MCP server {} is not connected: {}",
                self.name,
                state.down.as_deref().unwrap_or("unknown")
            )
        })
    }

    /// Starts or reaches the server, runs `initialize` and `tools/list`, and publishes the
    /// connection.
    async fn open(self: &Arc<Self>) -> Result<Service, String> {
        let handler = Handler {
            shared: Arc::downgrade(self),
        };
        let timeout = self.config.timeout;
        let (service, pid) = match &self.endpoint {
            Endpoint::Stdio { program, args } => {
                let mut command = tokio::process::Command::new(program);
                command.args(args).env_clear();
                for key in INHERITED_ENV {
                    if let Some(value) = std::env::var_os(key) {
                        command.env(key, value);
                    }
                }
                command.envs(&self.config.env);
                let (process, stderr) = TokioChildProcess::builder(command)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot run {program:?}: {e}"))?;
                let pid = process.id();
                if let Some(stderr) = stderr {
                    tokio::spawn(log_stderr(self.name.clone(), stderr));
                }
                let service = tokio::time::timeout(timeout, handler.serve(process))
                    .await
                    .map_err(|_| format!("no answer to initialize within {timeout:?}"))?
                    .map_err(|e| format!("initialize failed: {e}"))?;
                (service, pid)
            }
            Endpoint::Http { url } => {
                let transport = StreamableHttpClientTransport::from_uri(url.as_str());
                let service = tokio::time::timeout(timeout, handler.serve(transport))
                    .await
                    .map_err(|_| format!("no answer to initialize from {url} within {timeout:?}"))?
                    .map_err(|e| format!("initialize at {url} failed: {e}"))?;
                (service, None)
            }
        };
        tokio::time::timeout(timeout, self.list_tools(service.peer()))
            .await
            .map_err(|_| format!("no answer to tools/list within {timeout:?}"))??;
        let mut state = self.state.write();
        state.peer = Some(service.peer().clone());
        state.down = None;
        state.pid = pid;
        drop(state);
        tracing::info!(server = %self.name, pid, "MCP server connected");
        Ok(service)
    }

    /// Runs `tools/list` (every page) and replaces the tool list.
    async fn list_tools(&self, peer: &Peer<RoleClient>) -> Result<(), String> {
        let listed = peer
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        let tools: BTreeMap<String, Arc<McpToolSpec>> = listed
            .into_iter()
            .map(|tool| {
                let remote_name = tool.name.to_string();
                let spec = McpToolSpec {
                    name: format!("mcp:{}/{remote_name}", self.name),
                    remote_name: remote_name.clone(),
                    description: tool.description.as_deref().unwrap_or_default().to_owned(),
                    input_schema: Value::Object((*tool.input_schema).clone()),
                };
                (remote_name, Arc::new(spec))
            })
            .collect();
        tracing::debug!(server = %self.name, tools = tools.len(), "MCP tools listed");
        self.state.write().tools = Arc::new(tools);
        Ok(())
    }

    fn mark_down(&self, why: String) {
        tracing::warn!(server = %self.name, reason = %why, "MCP server is down");
        let mut state = self.state.write();
        state.peer = None;
        state.pid = None;
        state.down = Some(why);
    }
}

/// Waits for the connection to end, then reconnects with backoff, until the server is dropped.
async fn supervise(shared: Arc<Shared>, mut service: Service) {
    let mut failures: u32 = 0;
    loop {
        let connected_at = tokio::time::Instant::now();
        let token = service.cancellation_token();
        let quit = tokio::select! {
            quit = service.waiting() => quit,
            () = shared.stop.cancelled() => {
                token.cancel();
                return;
            }
        };
        shared.mark_down(format!("its connection ended ({quit:?}); restarting"));
        if connected_at.elapsed() > Duration::from_secs(30) {
            failures = 0;
        }
        service = loop {
            let delay = backoff(failures);
            failures = failures.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shared.stop.cancelled() => return,
            }
            match shared.open().await {
                Ok(service) => break service,
                Err(e) => shared.mark_down(format!("restart failed: {e}")),
            }
        };
        shared.state.write().restarts += 1;
    }
}

/// 200 ms, 400 ms, 800 ms, … up to 30 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << failures.min(8))).min(Duration::from_secs(30))
}

/// A stdio server's stderr, as debug log lines (its stdout is the protocol).
async fn log_stderr(server: String, stderr: tokio::process::ChildStderr) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(server = %server, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
