//! `/agui/{agent}`: AG-UI events from a run, errors, and resume after a reconnect.

use std::time::Duration;

use agentwire_test::TestServer;
use reqwest::StatusCode;
use serde_json::json;

use super::{SseEvent, SseReader, assert_error, client, json_of, run_events};

/// The demo run as AG-UI events: started and finished once, its steps, two tool calls each
/// START, ARGS, END then RESULT, and one text message with the answer.
fn check_demo_run_shape(events: &[SseEvent]) {
    let types: Vec<&str> = events
        .iter()
        .map(|e| e.data["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"RUN_STARTED"), "{types:?}");
    assert_eq!(types.last(), Some(&"RUN_FINISHED"), "{types:?}");
    assert_eq!(events[0].data["threadId"], "thread-1");
    assert_eq!(events[0].data["runId"], "run-1");
    let count = |t: &str| types.iter().filter(|x| **x == t).count();
    assert_eq!(count("STEP_STARTED"), 3);
    assert_eq!(count("STEP_FINISHED"), 3);
    assert_eq!(count("TOOL_CALL_START"), 2);
    assert_eq!(count("TOOL_CALL_END"), 2);
    assert_eq!(count("TOOL_CALL_RESULT"), 2);
    assert_eq!(count("TEXT_MESSAGE_START"), 1);
    assert_eq!(count("TEXT_MESSAGE_END"), 1);
    // Every tool call: START, ARGS, END, then its RESULT.
    for (i, t) in types.iter().enumerate() {
        if *t == "TOOL_CALL_START" {
            assert_eq!(types[i + 1..i + 3], ["TOOL_CALL_ARGS", "TOOL_CALL_END"]);
        }
    }
    let answer: String = events
        .iter()
        .filter(|e| e.data["type"] == "TEXT_MESSAGE_CONTENT")
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect();
    assert!(answer.starts_with("6 * 7 = 42"), "{answer}");
    let result = events
        .iter()
        .find(|e| e.data["type"] == "TOOL_CALL_RESULT" && e.data["content"] == "42");
    assert!(result.is_some(), "the calculator's result");
}

/// Ids: the group of an agentwire event ends with its seq, strictly increasing; no event names.
fn check_ids(events: &[SseEvent]) {
    let ids: Vec<u64> = events
        .iter()
        .filter_map(|e| e.id.as_deref())
        .map(|id| id.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        events.last().unwrap().id.as_deref(),
        ids.last().map(u64::to_string).as_deref()
    );
    assert!(events.iter().all(|e| e.event.is_none()));
}

#[tokio::test]
async fn agui_streams_a_demo_run_as_ag_ui_events_in_order() {
    let server = TestServer::start().await;
    let input = json!({
        "threadId": "thread-1",
        "runId": "run-1",
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        "messages": [
            {"id": "u1", "role": "user", "content": "What is 6 * 7?"}
        ]
    });
    let r = client()
        .post(server.http_url("/agui/demo?user=pia"))
        .header("accept", "text/event-stream")
        .json(&input)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(r);
    let mut events = Vec::new();
    while let Some(e) = sse.next().await {
        events.push(e);
    }
    check_demo_run_shape(&events);
    check_ids(&events);

    // The same run is on the user's native stream, under the AG-UI ids.
    let events = run_events(&server, "pia", "run-1").await;
    assert_eq!(events[0]["thread_id"], "thread-1");

    // Unknown agent and input without a user message are JSON errors, not streams.
    let r = client()
        .post(server.http_url("/agui/nobody?user=pia"))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(r).await, StatusCode::NOT_FOUND, "unknown_agent");
    let r = client()
        .post(server.http_url("/agui/demo?user=pia"))
        .json(&json!({"threadId": "t", "runId": "r", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_error(
        &json_of(r).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    server.stop().await;
}

#[tokio::test]
async fn agui_ends_with_run_error_when_the_run_fails() {
    let mut config = agentwire_test::test_config();
    config.agents.demo = agentwire_agent_registry::DemoSettings::default();
    let server = TestServer::start_with(config, Vec::new()).await;
    let input = json!({
        "threadId": "thread-2", "runId": "run-2",
        "messages": [{"id": "u1", "role": "user", "content": "slow"}]
    });
    let r = client()
        .post(server.http_url("/agui/demo?user=quinn"))
        .json(&input)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(r);
    let first = sse.next().await.unwrap();
    assert_eq!(first.data["type"], "RUN_STARTED");
    // Cancel it through the HTTP API, by the AG-UI run id.
    let c = client()
        .post(server.http_url("/v1/runs/run-2/cancel?user=quinn"))
        .send()
        .await
        .unwrap();
    assert_eq!(c.status(), StatusCode::ACCEPTED);
    let mut last = first;
    while let Some(e) = sse.next().await {
        last = e;
    }
    assert_eq!(last.data["type"], "RUN_ERROR", "{:?}", last.data);
    assert_eq!(last.data["code"], "cancelled");
    server.stop().await;
}

#[tokio::test]
async fn agui_resumes_a_run_after_a_reconnect_with_last_event_id() {
    let mut config = agentwire_test::test_config();
    config.agents.demo = agentwire_agent_registry::DemoSettings {
        step_delay: Duration::from_millis(100),
        token_delay: Duration::from_millis(5),
    };
    let server = TestServer::start_with(config, Vec::new()).await;
    let input = json!({
        "threadId": "thread-3", "runId": "run-3",
        "messages": [{"id": "u1", "role": "user", "content": "What is 6 * 7?"}]
    });
    let post = |last_id: Option<String>| {
        let mut r = client()
            .post(server.http_url("/agui/demo?user=rex"))
            .json(&input);
        if let Some(id) = last_id {
            r = r.header("Last-Event-ID", id);
        }
        r.send()
    };
    // Read until the first tool call's group ended, then drop the connection.
    let mut sse = SseReader::new(post(None).await.unwrap());
    let mut first = Vec::new();
    let mut last_id = None;
    loop {
        let e = sse.next().await.unwrap();
        let done = e.data["type"] == "TOOL_CALL_END";
        first.push(e.data["type"].as_str().unwrap().to_owned());
        if e.id.is_some() {
            last_id = e.id;
        }
        if done {
            break;
        }
    }
    drop(sse);
    // The group of tool_executing ends with TOOL_CALL_END, which carries its seq.
    let last_id = last_id.expect("an id was seen");
    let mut resumed = SseReader::new(post(Some(last_id)).await.unwrap());
    let mut rest = Vec::new();
    while let Some(e) = resumed.next().await {
        rest.push(e.data["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        rest.first().map(String::as_str),
        Some("TOOL_CALL_RESULT"),
        "{rest:?}"
    );
    assert_eq!(rest.last().map(String::as_str), Some("RUN_FINISHED"));
    let all: Vec<String> = first.into_iter().chain(rest).collect();
    let count = |t: &str| all.iter().filter(|x| *x == t).count();
    assert_eq!(count("RUN_STARTED"), 1);
    assert_eq!(count("STEP_STARTED"), 3);
    assert_eq!(count("STEP_FINISHED"), 3);
    assert_eq!(count("TOOL_CALL_START"), 2);
    assert_eq!(count("TOOL_CALL_RESULT"), 2);
    assert_eq!(count("TEXT_MESSAGE_START"), 1);
    assert_eq!(count("TEXT_MESSAGE_END"), 1);
    // Only one run ran: a resume starts nothing.
    let events = run_events(&server, "rex", "run-3").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "agent_started")
            .count(),
        1
    );
    // Resuming a run the user does not have is 404.
    let r = client()
        .post(server.http_url("/agui/demo?user=sam"))
        .header("Last-Event-ID", "1")
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(r).await, StatusCode::NOT_FOUND, "run_not_found");
    server.stop().await;
}

#[tokio::test]
async fn two_users_sending_the_same_run_id_at_once_get_two_runs_each_cancellable_by_its_owner() {
    let mut config = agentwire_test::test_config();
    config.agents.demo = agentwire_agent_registry::DemoSettings::default();
    let server = TestServer::start_with(config, Vec::new()).await;
    let input = json!({
        "threadId": "thread-shared",
        "runId": "run-shared",
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        "messages": [{"id": "u1", "role": "user", "content": "What is 6 * 7?"}]
    });
    let post = |user: &str| {
        client()
            .post(server.http_url(&format!("/agui/demo?user={user}")))
            .header("accept", "text/event-stream")
            .json(&input)
            .send()
    };
    let (kim, lee) = tokio::join!(post("kim"), post("lee"));
    let (kim, lee) = (kim.unwrap(), lee.unwrap());
    assert_eq!(
        (kim.status(), lee.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let factory = server.state.ready().executor().factory().clone();
    let run_id = agentwire_core::RunId::new("run-shared").unwrap();
    let (kim_id, lee_id) = (
        agentwire_core::UserId::new("kim").unwrap(),
        agentwire_core::UserId::new("lee").unwrap(),
    );
    assert!(factory.owns_run(&kim_id, &run_id) && factory.owns_run(&lee_id, &run_id));
    let cancel = |user: &str| {
        client()
            .post(server.http_url(&format!("/v1/runs/run-shared/cancel?user={user}")))
            .send()
    };
    // Cancelling kim's run leaves lee's running.
    assert_eq!(cancel("kim").await.unwrap().status(), StatusCode::ACCEPTED);
    let kim_events = run_events(&server, "kim", "run-shared").await;
    assert_eq!(kim_events.last().unwrap()["data"]["code"], "cancelled");
    assert!(factory.owns_run(&lee_id, &run_id), "lee's run goes on");
    assert_eq!(cancel("lee").await.unwrap().status(), StatusCode::ACCEPTED);
    let lee_events = run_events(&server, "lee", "run-shared").await;
    assert_eq!(lee_events.last().unwrap()["data"]["code"], "cancelled");
    // Each SSE stream ends with its own run's error.
    for response in [kim, lee] {
        let mut sse = SseReader::new(response);
        let mut last = None;
        while let Some(e) = sse.next().await {
            last = Some(e.data["type"].as_str().unwrap().to_owned());
        }
        assert_eq!(last.as_deref(), Some("RUN_ERROR"));
    }
    assert!(factory.wait_idle(Duration::from_secs(10)).await);
    server.stop().await;
}
