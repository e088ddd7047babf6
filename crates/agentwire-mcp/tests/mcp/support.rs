//! What the MCP tests share: the `caller` agent, a registry with MCP tools, the pinned
//! server-everything, and an MCP server written with rmcp.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentwire_agent_registry::{
    Agent, AgentError, DemoSettings, InMemoryAgentRegistry, RunContext, async_trait,
};
use agentwire_core::StreamEvent;
use agentwire_mcp::{McpServers, WithMcpTools};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelledNotificationParam,
    ContentBlock, ErrorData, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool as ToolSpec,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// An agent that calls one tool: its input is `{"tool": "<name>", "args": {…}}`. A failed call
/// is its result (`{"tool_failed": "<message>"}`), so the run still completes.
pub(crate) struct Caller;

#[async_trait]
impl Agent for Caller {
    fn name(&self) -> &str {
        "caller"
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        let request: Value =
            serde_json::from_str(ctx.input()).map_err(|e| AgentError::failed(e.to_string()))?;
        let tool = request["tool"].as_str().unwrap_or_default();
        match ctx.call_tool(tool, request["args"].clone()).await {
            Ok(result) => Ok(result),
            Err(AgentError::Tool { message, .. }) => Ok(json!({ "tool_failed": message })),
            Err(e) => Err(e),
        }
    }
}

/// The built-in agents and tools, `caller`, and the tools of `servers`.
pub(crate) fn registry(servers: McpServers) -> WithMcpTools<InMemoryAgentRegistry> {
    let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
    registry.register_agent(Caller);
    WithMcpTools::new(registry, servers)
}

/// `caller`'s input for one call.
pub(crate) fn call(tool: &str, args: Value) -> String {
    json!({ "tool": tool, "args": args }).to_string()
}

/// Each event as `{"type": …, "data": …}`.
pub(crate) fn kinds(events: &[StreamEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::to_value(&e.event.kind).unwrap())
        .collect()
}

/// The `type`s of `events`, in order.
pub(crate) fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// The command that runs the pinned `@modelcontextprotocol/server-everything` (tests/mcp,
/// installed by `npm ci`). The harness provisions it before a stdio test runs, so its absence
/// here is a failure, never a test that passes without running.
pub(crate) fn everything_command() -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        script.is_file(),
        "server-everything is not installed at {} although the harness provisioned it",
        script.display()
    );
    vec![
        "node".into(),
        script.to_string_lossy().into_owned(),
        "stdio".into(),
    ]
}

/// An MCP server written with rmcp, served over streamable HTTP. Its tools:
/// - `add {a, b}`: the sum as text and as structured content `{"sum": …}`;
/// - `slow`: answers only when cancelled (or after 30 s);
/// - `fail`: a result with `isError` and the text "the disk is on fire";
/// - `grow`: adds the tool `added` and sends `notifications/tools/list_changed`.
///
/// Every `notifications/cancelled` it receives is sent to `cancelled`.
#[derive(Clone)]
pub(crate) struct Probe {
    cancelled: mpsc::UnboundedSender<CancelledNotificationParam>,
    grown: Arc<AtomicBool>,
}

/// A running [`Probe`].
pub(crate) struct ProbeServer {
    /// `http://127.0.0.1:<port>/mcp`
    pub(crate) url: String,
    /// The cancellations the server received.
    pub(crate) cancelled: mpsc::UnboundedReceiver<CancelledNotificationParam>,
}

impl ProbeServer {
    /// The next cancellation the server receives (within 10 s).
    pub(crate) async fn next_cancellation(&mut self) -> CancelledNotificationParam {
        tokio::time::timeout(Duration::from_secs(10), self.cancelled.recv())
            .await
            .expect("the MCP server received notifications/cancelled")
            .expect("the server is running")
    }
}

/// Starts a [`Probe`] on `127.0.0.1:0`.
pub(crate) async fn start_probe() -> ProbeServer {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe {
        cancelled: tx,
        grown: Arc::default(),
    };
    let service = StreamableHttpService::new(
        move || Ok(probe.clone()),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    ProbeServer {
        url: format!("http://{addr}/mcp"),
        cancelled: rx,
    }
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> ToolSpec {
    let Value::Object(schema) = schema else {
        unreachable!()
    };
    ToolSpec::new(name, description, schema)
}

fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

impl ServerHandler for Probe {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let object = json!({"type": "object"});
        let mut tools = vec![
            tool(
                "add",
                "Adds two numbers",
                json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
            ),
            tool("slow", "Never finishes by itself", object.clone()),
            tool("fail", "Always fails", object.clone()),
            tool("grow", "Adds a tool", object.clone()),
        ];
        if self.grown.load(Ordering::SeqCst) {
            tools.push(tool("added", "Added by grow", object));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        match request.name.as_ref() {
            "add" => {
                let sum = args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0);
                let mut result = text_result(format!("{sum}"));
                result.structured_content = Some(json!({ "sum": sum }));
                Ok(result.into())
            }
            "slow" => {
                tokio::select! {
                    () = context.ct.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
                Ok(text_result("slow is done").into())
            }
            "fail" => {
                Ok(CallToolResult::error(vec![ContentBlock::text("the disk is on fire")]).into())
            }
            "grow" => {
                self.grown.store(true, Ordering::SeqCst);
                let _ = context.peer.notify_tool_list_changed().await;
                Ok(text_result("grown").into())
            }
            _ => Err(ErrorData::invalid_params("no such tool", None)),
        }
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        _context: NotificationContext<RoleServer>,
    ) {
        let _ = self.cancelled.send(notification);
    }
}
