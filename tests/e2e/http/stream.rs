//! `/v1/stream`: SSE with ids, `Last-Event-ID` resume, detach, and the close event at shutdown.

use std::time::Duration;

use agentwire_test::TestServer;
use reqwest::StatusCode;
use serde_json::json;

use super::{SseReader, WAIT, assert_error, client, json_of};

/// Waits until `user`'s stream holds `seq`.
async fn wait_for_head(server: &TestServer, user: &str, seq: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while server
        .state
        .ready()
        .bridge()
        .stream_head(&user.parse_user())
        .await
        .unwrap()
        .1
        < seq
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A garbage Last-Event-ID is a 422, not a silent replay from 0.
#[tokio::test]
async fn a_garbage_last_event_id_is_refused() {
    let server = TestServer::start().await;
    let http = client();
    let r = http
        .get(server.http_url("/v1/stream?user=mia"))
        .header("Last-Event-ID", "abc")
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
async fn sse_stream_delivers_events_with_ids_and_resumes_from_last_event_id() {
    let server = TestServer::start().await;
    let http = client();
    let mut sse = SseReader::new(
        http.get(server.http_url("/v1/stream?user=mia"))
            .send()
            .await
            .unwrap(),
    );
    let hello = sse.next().await.unwrap();
    assert_eq!(hello.data["type"], "connection_established");
    assert_eq!(hello.data["data"]["user_id"], "mia");
    assert!(hello.id.is_none());
    let epoch = hello.data["data"]["epoch"].as_str().unwrap().to_owned();

    let start = |content: &str| {
        http.post(server.http_url("/v1/runs?user=mia"))
            .json(&json!({"agent": "echo", "content": content}))
            .send()
    };
    assert_eq!(start("one").await.unwrap().status(), StatusCode::ACCEPTED);
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let e = sse.next().await.unwrap();
        assert_eq!(e.id.as_deref(), Some(e.data["seq"].to_string().as_str()));
        seen.push(e.data);
    }
    assert_eq!(seen[0]["type"], "agent_started");
    assert_eq!(seen[4]["type"], "agent_completed");
    drop(sse);

    // Offline: a second run. Reconnecting with Last-Event-ID: 3 replays 4.. exactly once.
    assert_eq!(start("two").await.unwrap().status(), StatusCode::ACCEPTED);
    wait_for_head(&server, "mia", 10).await;
    let mut resumed = SseReader::new(
        http.get(server.http_url(&format!("/v1/stream?user=mia&epoch={epoch}")))
            .header("Last-Event-ID", "3")
            .send()
            .await
            .unwrap(),
    );
    let hello = resumed.next().await.unwrap();
    assert_eq!(hello.data["data"]["resumed"]["from_seq"], 4);
    assert_eq!(hello.data["data"]["resumed"]["replayed"], 7);
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        while ids.len() < 7 {
            ids.push(resumed.next().await.unwrap().id.unwrap());
        }
        ids
    };
    assert_eq!(ids, ["4", "5", "6", "7", "8", "9", "10"]);
    // ?last_seq= works as well, and live events follow the replay.
    let mut by_query = SseReader::new(
        http.get(server.http_url("/v1/stream?user=mia&last_seq=9"))
            .send()
            .await
            .unwrap(),
    );
    by_query.next().await.unwrap();
    assert_eq!(by_query.next().await.unwrap().id.as_deref(), Some("10"));
    assert_eq!(start("three").await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(by_query.next().await.unwrap().id.as_deref(), Some("11"));
    assert_eq!(resumed.next().await.unwrap().id.as_deref(), Some("11"));

    drop((resumed, by_query));
    server.stop().await;
}

#[tokio::test]
async fn sse_stream_detaches_when_the_client_goes_away() {
    let server = TestServer::start().await;
    let before = server.state.ready().bridge().stats().connections;
    let mut sse = SseReader::new(
        client()
            .get(server.http_url("/v1/stream?user=ned"))
            .send()
            .await
            .unwrap(),
    );
    sse.next().await.unwrap();
    assert_eq!(
        server.state.ready().bridge().stats().connections,
        before + 1
    );
    drop(sse);
    let deadline = tokio::time::Instant::now() + WAIT;
    // The server notices at its next write; a published event makes it write.
    let runs = server.http_url("/v1/runs?user=ned");
    client()
        .post(&runs)
        .json(&json!({"agent": "echo", "content": "x"}))
        .send()
        .await
        .unwrap();
    while server.state.ready().bridge().stats().connections > before {
        assert!(tokio::time::Instant::now() < deadline, "not detached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

trait ParseUser {
    fn parse_user(&self) -> agentwire_core::UserId;
}

impl ParseUser for str {
    fn parse_user(&self) -> agentwire_core::UserId {
        agentwire_core::UserId::new(self).unwrap()
    }
}

#[tokio::test]
async fn shutdown_ends_open_sse_streams_with_a_close_event() {
    let mut server = TestServer::start().await;
    let mut sse = SseReader::new(
        client()
            .get(server.http_url("/v1/stream?user=tia"))
            .send()
            .await
            .unwrap(),
    );
    sse.next().await.unwrap();
    server.begin_stop();
    let close = sse.next().await.expect("a close event");
    assert_eq!(close.event.as_deref(), Some("close"));
    assert_eq!(close.data["code"], 1001);
    assert!(sse.next().await.is_none(), "the stream ends");
    tokio::time::timeout(WAIT, server.join())
        .await
        .expect("shutdown does not wait for the SSE client");
}
