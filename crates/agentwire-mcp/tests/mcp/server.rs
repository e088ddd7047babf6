//! Through a real agentwire server: startup connects `[mcp.*]`, a WebSocket client sees MCP
//! calls as tool events, and its `cancel` reaches the MCP server.

use std::time::Duration;

use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
use agentwire_mcp::McpServerConfig;
use agentwire_server::AppState;
use agentwire_startup::Phase;
use agentwire_test::{TestServer, test_config};
use serde_json::{Value, json};

use crate::support::{Caller, call, start_probe};

async fn serve_with_probe(url: &str) -> TestServer {
    let mut config = test_config();
    config
        .mcp
        .insert("probe".into(), McpServerConfig::http(url));
    let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
    registry.register_agent(Caller);
    let ready = agentwire_server::start_with_registry(config, registry, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("startup failed: {e}"));
    TestServer::serve(AppState::new(ready)).await
}

pub(crate) async fn a_websocket_client_sees_an_mcp_call_as_tool_events_in_order() {
    let probe = start_probe().await;
    let server = serve_with_probe(&probe.url).await;
    let mut ada = server.connect("ada").await;
    let (_ack, events) = ada
        .run(
            "c1",
            "caller",
            &call("mcp:probe/add", json!({"a": 20, "b": 22})),
        )
        .await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    assert_eq!(events[1]["data"]["tool"], "mcp:probe/add");
    assert_eq!(events[1]["data"]["args"], json!({"a": 20, "b": 22}));
    assert_eq!(events[2]["data"]["call_id"], events[1]["data"]["call_id"]);
    assert_eq!(events[2]["data"]["ok"], true);
    assert_eq!(
        events[2]["data"]["result"]["structured"],
        json!({"sum": 42.0})
    );
    assert_eq!(events[3]["data"]["result"]["text"], "42");

    // The MCP server is a (non-critical) health check.
    let health: Value = reqwest::get(server.http_url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let check = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mcp:probe")
        .unwrap_or_else(|| panic!("no mcp:probe check in {health}"));
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["critical"], false);
    server.stop().await;
}

pub(crate) async fn cancelling_a_run_cancels_its_mcp_call() {
    let mut probe = start_probe().await;
    let server = serve_with_probe(&probe.url).await;
    let mut ada = server.connect("ada").await;
    ada.send_json(
        json!({"type": "user_message", "id": "c1", "agent": "caller",
        "content": call("mcp:probe/slow", json!({}))}),
    )
    .await;
    let mut run_id = Value::Null;
    loop {
        let frame = ada.next_json().await.expect("frames until tool_executing");
        if frame["type"] == "ack" {
            run_id = frame["run_id"].clone();
        }
        if frame["type"] == "tool_executing" {
            break;
        }
    }
    ada.send_json(json!({"type": "cancel", "id": "x1", "run_id": run_id}))
        .await;
    let mut tail = Vec::new();
    while let Some(frame) = ada.next_json().await {
        if frame.get("seq").is_some() {
            tail.push(frame.clone());
        }
        if frame["type"] == "agent_error" {
            break;
        }
    }
    let types: Vec<&str> = tail.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["tool_completed", "agent_error"]);
    assert_eq!(tail[0]["data"]["ok"], false);
    assert_eq!(tail[1]["data"]["code"], "cancelled");
    let cancelled = probe.next_cancellation().await;
    assert_eq!(
        cancelled.reason.as_deref(),
        Some("the agentwire run was cancelled")
    );
    server.stop().await;
}

pub(crate) async fn a_required_server_that_cannot_start_stops_startup_with_one_clear_line() {
    let mut config = test_config();
    config.mcp.insert(
        "files".into(),
        McpServerConfig::stdio(["/nonexistent/mcp-server", "--root", "/srv"])
            .with_timeout(Duration::from_secs(5)),
    );
    let error = agentwire_server::start(config, Vec::new())
        .await
        .expect_err("a required MCP server that fails stops startup");
    assert_eq!(error.phase, Phase::Agents);
    assert_eq!(error.component, "mcp.files");
    let line = error.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.starts_with(
            "startup failed in phase Agents: mcp.files: cannot run \"/nonexistent/mcp-server\""
        ),
        "{line}"
    );
    assert!(line.contains("hint: "), "{line}");
}

pub(crate) async fn an_optional_server_that_cannot_start_is_skipped() {
    let mut config = test_config();
    let mut files = McpServerConfig::stdio(["/nonexistent/mcp-server"]);
    files.optional = true;
    config.mcp.insert("files".into(), files);
    let ready = agentwire_server::start(config, Vec::new())
        .await
        .expect("an optional MCP server does not stop startup");
    assert!(
        ready
            .executor()
            .registry()
            .tool("mcp:files/read_file")
            .is_none()
    );
}
