//! Streamable HTTP: an MCP server written with rmcp inside the test.

use std::time::Duration;

use agentwire_agent_registry::Tool;
use agentwire_mcp::{McpServer, McpServerConfig};
use serde_json::json;

use crate::support::start_probe;

pub(crate) async fn structured_content_and_is_error_come_back() {
    let probe = start_probe().await;
    let server = McpServer::connect("probe", McpServerConfig::http(&probe.url))
        .await
        .expect("the rmcp server answers initialize");
    let add = server.tool("add").unwrap();
    assert_eq!(add.name(), "mcp:probe/add");
    assert_eq!(add.input_schema()["required"], json!(["a", "b"]));
    let result = add.call(json!({"a": 2, "b": 3})).await.unwrap();
    assert_eq!(result["text"], "5");
    assert_eq!(result["structured"], json!({"sum": 5.0}));

    let error = server.tool("fail").unwrap().call(json!({})).await;
    assert_eq!(error, Err("the disk is on fire".to_owned()));

    let error = add.call(json!([1, 2])).await.unwrap_err();
    assert!(error.contains("must be a JSON object"), "{error}");
}

pub(crate) async fn a_call_that_times_out_fails_and_the_server_is_told() {
    let mut probe = start_probe().await;
    let config = McpServerConfig::http(&probe.url).with_timeout(Duration::from_millis(500));
    let server = McpServer::connect("probe", config).await.unwrap();
    let error = server
        .tool("slow")
        .unwrap()
        .call(json!({}))
        .await
        .unwrap_err();
    assert!(error.contains("did not answer within 500ms"), "{error}");
    let cancelled = probe.next_cancellation().await;
    assert!(cancelled.request_id.is_some());
    assert_eq!(cancelled.reason.as_deref(), Some("request timeout"));
}

pub(crate) async fn a_dropped_call_sends_notifications_cancelled() {
    let mut probe = start_probe().await;
    let server = McpServer::connect("probe", McpServerConfig::http(&probe.url))
        .await
        .unwrap();
    let slow = server.tool("slow").unwrap();
    let call = slow.call(json!({}));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), call)
            .await
            .is_err()
    );
    let cancelled = probe.next_cancellation().await;
    assert_eq!(
        cancelled.reason.as_deref(),
        Some("the agentwire run was cancelled")
    );
}

pub(crate) async fn list_changed_refreshes_the_tools() {
    let probe = start_probe().await;
    let server = McpServer::connect("probe", McpServerConfig::http(&probe.url))
        .await
        .unwrap();
    assert!(server.tool("added").is_none());
    server.tool("grow").unwrap().call(json!({})).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.tool("added").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tool list was refreshed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.tools().len(), 5);
}

pub(crate) async fn an_unreachable_server_fails_to_connect_with_the_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    drop(listener);
    let config = McpServerConfig::http(&url).with_timeout(Duration::from_secs(5));
    let error = McpServer::connect("gone", config).await.unwrap_err();
    assert_eq!(error.server(), Some("gone"));
    assert!(error.to_string().contains("initialize at"), "{error}");
}
