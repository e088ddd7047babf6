//! The SSE routes end when the request's token expires (see `crate::expiry` for the 1–2 s
//! tokens): `/v1/stream` with a `close` event (4001) and resumes exactly once after a reconnect
//! with a fresh token and `Last-Event-ID`; `/agui/{agent}` ends without a terminal event while
//! the run goes on, and the resume finishes it; a Durable Streams SSE read ends too.

use std::time::Duration;

use agentwire_agent_registry::DemoSettings;
use reqwest::StatusCode;
use serde_json::json;

use super::{SseReader, WAIT, client};
use crate::expiry::{jwt_server, jwt_server_with, long_token, short_token};

#[tokio::test]
async fn an_sse_stream_ends_at_the_token_expiry_and_resumes_exactly_once() {
    let server = jwt_server().await;
    let http = client();
    let start = |content: &'static str| {
        http.post(server.http_url("/v1/runs"))
            .bearer_auth(long_token("nia"))
            .json(&json!({"agent": "echo", "content": content}))
            .send()
    };
    let mut sse = SseReader::new(
        http.get(server.http_url("/v1/stream"))
            .bearer_auth(short_token("nia"))
            .send()
            .await
            .unwrap(),
    );
    let hello = sse.next().await.unwrap();
    let expires_in = hello.data["data"]["expires_in_ms"].as_u64().unwrap();
    assert!(expires_in <= 2_000, "{:?}", hello.data);
    assert_eq!(start("one").await.unwrap().status(), StatusCode::ACCEPTED);
    let mut ids = Vec::new();
    while ids.len() < 5 {
        ids.push(sse.next().await.unwrap().id.unwrap());
    }
    let close = sse.next().await.expect("a close event at the expiry");
    assert_eq!(close.event.as_deref(), Some("close"));
    assert_eq!(close.data["code"], 4001, "{:?}", close.data);
    assert!(
        sse.next().await.is_none(),
        "the stream ends after the close"
    );

    // Offline: a second run; a fresh token with Last-Event-ID resumes after seq 5.
    assert_eq!(start("two").await.unwrap().status(), StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + WAIT;
    let nia = agentwire_core::UserId::new("nia").unwrap();
    while server
        .state
        .ready()
        .bridge()
        .stream_head(&nia)
        .await
        .unwrap()
        .1
        < 10
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut resumed = SseReader::new(
        http.get(server.http_url("/v1/stream"))
            .bearer_auth(long_token("nia"))
            .header("Last-Event-ID", ids.last().unwrap().as_str())
            .send()
            .await
            .unwrap(),
    );
    let hello = resumed.next().await.unwrap();
    assert_eq!(hello.data["data"]["resumed"]["from_seq"], 6);
    assert_eq!(hello.data["data"]["resumed"]["replayed"], 5);
    for seq in 6..=10 {
        assert_eq!(resumed.next().await.unwrap().id, Some(seq.to_string()));
    }
    // Live events follow without a duplicate of 6..=10.
    assert_eq!(start("three").await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(resumed.next().await.unwrap().id.as_deref(), Some("11"));
    drop(resumed);
    server.stop().await;
}

#[tokio::test]
async fn an_agui_stream_ends_at_the_expiry_without_ending_the_run_and_resumes() {
    let mut config = agentwire_test::test_config();
    // Three steps of 0.8 s: the run outlives the 1–2 s token.
    config.agents.demo = DemoSettings {
        step_delay: Duration::from_millis(800),
        token_delay: Duration::from_millis(5),
    };
    let server = jwt_server_with(config).await;
    let input = json!({
        "threadId": "thread-x", "runId": "run-x",
        "messages": [{"id": "u1", "role": "user", "content": "What is 6 * 7?"}]
    });
    let mut sse = SseReader::new(
        client()
            .post(server.http_url("/agui/demo"))
            .bearer_auth(short_token("ola"))
            .json(&input)
            .send()
            .await
            .unwrap(),
    );
    let (mut first, mut last_id) = (Vec::new(), None);
    while let Some(e) = sse.next().await {
        first.push(e.data["type"].as_str().unwrap().to_owned());
        last_id = e.id.or(last_id);
    }
    assert_eq!(first.first().map(String::as_str), Some("RUN_STARTED"));
    for terminal in ["RUN_FINISHED", "RUN_ERROR"] {
        assert!(!first.iter().any(|t| t == terminal), "{first:?}");
    }
    let mut resumed = SseReader::new(
        client()
            .post(server.http_url("/agui/demo"))
            .bearer_auth(long_token("ola"))
            .header("Last-Event-ID", last_id.expect("an id before the expiry"))
            .json(&input)
            .send()
            .await
            .unwrap(),
    );
    let mut rest = Vec::new();
    while let Some(e) = resumed.next().await {
        rest.push(e.data["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(rest.last().map(String::as_str), Some("RUN_FINISHED"));
    let all: Vec<&String> = first.iter().chain(&rest).collect();
    let count = |t: &str| all.iter().filter(|x| x.as_str() == t).count();
    assert_eq!(count("RUN_STARTED"), 1, "{all:?}");
    assert_eq!(count("STEP_STARTED"), 3, "{all:?}");
    assert_eq!(count("TEXT_MESSAGE_START"), 1, "{all:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_durable_streams_sse_read_ends_at_the_token_expiry() {
    let server = jwt_server().await;
    let response = client()
        .get(server.http_url("/ds/agentwire/events?offset=-1&live=sse"))
        .bearer_auth(short_token("pia"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The stream has nothing to send after its first control event; without the expiry it
    // would stay open for `durable_streams.sse_lifetime` (60 s).
    let body = tokio::time::timeout(WAIT, response.text())
        .await
        .expect("the response ends at the expiry, well before the SSE lifetime")
        .unwrap();
    assert!(body.contains("event: control"), "{body}");
}
