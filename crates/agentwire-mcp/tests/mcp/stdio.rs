//! stdio: the published `@modelcontextprotocol/server-everything`, run by agents.

use std::time::Duration;

use agentwire_agent_registry::Tool;
use agentwire_mcp::{McpServer, McpServerConfig, McpServers};
use agentwire_test::run_agent;
use serde_json::json;

use crate::support::{call, everything_command, kinds, registry, types};

async fn everything(timeout: Duration) -> McpServer {
    let config = McpServerConfig::stdio(everything_command()).with_timeout(timeout);
    McpServer::connect("everything", config)
        .await
        .expect("server-everything starts")
}

fn servers(server: &McpServer) -> McpServers {
    let mut servers = McpServers::new();
    servers.insert(server.clone());
    servers
}

pub(crate) async fn tools_are_listed_with_their_description_and_schema() {
    let server = everything(Duration::from_secs(20)).await;
    let echo = server.tool("echo").expect("echo is listed");
    assert_eq!(echo.name(), "mcp:everything/echo");
    assert_eq!(echo.description(), "Echoes back the input string");
    assert_eq!(
        echo.input_schema()["properties"]["message"]["type"],
        "string"
    );
    let all = servers(&server).resolve("mcp:everything/*").unwrap();
    assert!(all.len() > 5, "{} tools", all.len());
    assert!(all.iter().any(|t| t.name() == "mcp:everything/get-sum"));
}

pub(crate) async fn echo_add_and_an_error_reach_the_user_as_tool_events() {
    let server = everything(Duration::from_secs(20)).await;
    let registry = || registry(servers(&server));

    let events = kinds(
        &run_agent(
            registry(),
            "caller",
            &call("mcp:everything/echo", json!({"message": "hi"})),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        types(&events),
        [
            "agent_started",
            "tool_executing",
            "tool_completed",
            "agent_completed"
        ]
    );
    assert_eq!(events[1]["data"]["tool"], "mcp:everything/echo");
    assert_eq!(events[1]["data"]["args"], json!({"message": "hi"}));
    assert_eq!(events[2]["data"]["ok"], true);
    assert_eq!(events[2]["data"]["result"]["text"], "Echo: hi");
    assert_eq!(
        events[2]["data"]["result"]["content"],
        json!([{"type": "text", "text": "Echo: hi"}])
    );
    assert_eq!(events[3]["data"]["result"]["text"], "Echo: hi");

    let events = kinds(
        &run_agent(
            registry(),
            "caller",
            &call("mcp:everything/get-sum", json!({"a": 2, "b": 40})),
        )
        .await
        .unwrap(),
    );
    assert_eq!(events[2]["data"]["ok"], true);
    assert_eq!(
        events[2]["data"]["result"]["text"],
        "The sum of 2 and 40 is 42."
    );

    // Arguments the server rejects: isError, so ok:false with the server's message.
    let events = kinds(
        &run_agent(
            registry(),
            "caller",
            &call("mcp:everything/get-sum", json!({"a": "two", "b": 40})),
        )
        .await
        .unwrap(),
    );
    assert_eq!(events[2]["type"], "tool_completed");
    assert_eq!(events[2]["data"]["ok"], false);
    let error = events[2]["data"]["error"].as_str().unwrap();
    assert!(!error.is_empty());
    assert!(events[2]["data"].get("result").is_none());
}

pub(crate) async fn progress_of_a_long_operation_becomes_thinking_lines_of_the_call() {
    let server = everything(Duration::from_secs(20)).await;
    let input = call(
        "mcp:everything/trigger-long-running-operation",
        json!({"duration": 0.6, "steps": 3}),
    );
    let events = kinds(
        &run_agent(registry(servers(&server)), "caller", &input)
            .await
            .unwrap(),
    );
    // Every report before the result arrives as a thinking line of the call, in order, between
    // its tool_executing and tool_completed (the last one races the result inside rmcp, which
    // hands each notification to a task of its own, so it may be missing).
    let order = types(&events);
    let completed = order.iter().position(|t| *t == "tool_completed").unwrap();
    assert_eq!(order[..2], ["agent_started", "tool_executing"]);
    assert_eq!(order[completed..], ["tool_completed", "agent_completed"]);
    let thoughts = &events[2..completed];
    assert!((2..=3).contains(&thoughts.len()), "{order:?}");
    let call_id = events[1]["data"]["call_id"].as_str().unwrap();
    for (step, event) in thoughts.iter().enumerate() {
        assert_eq!(event["type"], "agent_thinking");
        assert_eq!(
            event["data"]["thought"],
            format!(
                "mcp:everything/trigger-long-running-operation ({call_id}): {}/3",
                step + 1
            )
        );
    }
    assert_eq!(events[completed]["data"]["ok"], true);
    assert!(
        events[completed]["data"]["result"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Long running operation completed")
    );
}

pub(crate) async fn a_server_killed_mid_call_fails_the_call_and_is_restarted() {
    let server = everything(Duration::from_secs(20)).await;
    let pid = server.process_id().expect("a stdio server has a pid");
    let input = call(
        "mcp:everything/trigger-long-running-operation",
        json!({"duration": 20, "steps": 20}),
    );
    let registry = registry(servers(&server));
    let run = tokio::spawn(async move { run_agent(registry, "caller", &input).await });
    // The call is in flight once the server reports its first step.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let events = kinds(&run.await.unwrap().unwrap());
    let completed = events
        .iter()
        .find(|e| e["type"] == "tool_completed")
        .unwrap();
    assert_eq!(completed["data"]["ok"], false);
    assert!(
        completed["data"]["error"]
            .as_str()
            .unwrap()
            .contains("closed the connection during the call"),
        "{completed}"
    );

    // Restarted with a new process, and its tools work again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(server.is_connected() && server.restarts() == 1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server restarted in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(server.process_id(), Some(pid));
    let echo = server.tool("echo").unwrap();
    assert_eq!(
        echo.call(json!({"message": "again"})).await.unwrap()["text"],
        "Echo: again"
    );
}
