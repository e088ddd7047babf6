//! `/v1/publish`: external agents publishing runs with the API key; the grammar is enforced.

use agentwire_test::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{API_KEY, assert_error, client, json_of, server_with_key};

async fn publish(server: &TestServer, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut r = client().post(server.http_url("/v1/publish")).json(&body);
    if let Some(key) = key {
        r = r.bearer_auth(key);
    }
    json_of(r.send().await.unwrap()).await
}

fn event(run: &str, t: &str, data: Value) -> Value {
    json!({"user_id": "ola", "run_id": run, "thread_id": "t_ext", "agent": "py", "type": t, "data": data})
}

/// A whole external run, `r_ext1`, of `ola`: every event type once, in grammar order.
fn external_run() -> [Value; 6] {
    [
        event("r_ext1", "agent_started", json!({"input": "hi"})),
        event(
            "r_ext1",
            "agent_thinking",
            json!({"thought": "hm", "step": 1}),
        ),
        event(
            "r_ext1",
            "tool_executing",
            json!({"call_id": "c1", "tool": "search", "args": {"q": "x"}}),
        ),
        event(
            "r_ext1",
            "tool_completed",
            json!({"call_id": "c1", "tool": "search", "ok": true, "result": [1], "duration_ms": 3}),
        ),
        event(
            "r_ext1",
            "agent_message_delta",
            json!({"message_id": "m1", "delta": "done"}),
        ),
        event(
            "r_ext1",
            "agent_completed",
            json!({"result": "done", "duration_ms": 9}),
        ),
    ]
}

/// Publishes `run` to a user with no events yet: its events get seqs 1, 2, …
async fn publish_run(server: &TestServer, run: &[Value]) {
    for (i, e) in run.iter().enumerate() {
        let (status, body) = publish(server, Some(API_KEY), e.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["seq"], i as u64 + 1);
    }
}

#[tokio::test]
async fn publish_streams_an_external_run_to_the_users_websocket() {
    let server = server_with_key().await;
    let mut ws = server.connect("ola").await;
    let run = external_run();
    publish_run(&server, &run).await;
    for (i, sent) in run.iter().enumerate() {
        let got = ws.next_json().await.unwrap();
        assert_eq!(got["seq"], i as u64 + 1);
        assert_eq!(got["type"], sent["type"]);
        assert_eq!(got["run_id"], "r_ext1");
        assert_eq!(got["agent"], "py");
    }

    server.stop().await;
}

#[tokio::test]
async fn events_out_of_grammar_are_refused_with_409_and_take_no_seq() {
    let server = server_with_key().await;
    publish_run(&server, &external_run()).await;
    // Out of grammar: after the terminal event, before agent_started, unknown calls.
    let after_end = publish(
        &server,
        Some(API_KEY),
        event("r_ext1", "agent_thinking", json!({"thought": "late"})),
    )
    .await;
    assert_error(&after_end, StatusCode::CONFLICT, "out_of_grammar");
    let not_started = publish(
        &server,
        Some(API_KEY),
        event("r_ext2", "agent_thinking", json!({"thought": "x"})),
    )
    .await;
    assert_error(&not_started, StatusCode::CONFLICT, "out_of_grammar");
    publish(
        &server,
        Some(API_KEY),
        event("r_ext2", "agent_started", json!({})),
    )
    .await;
    let unknown_call = publish(
        &server,
        Some(API_KEY),
        event(
            "r_ext2",
            "tool_completed",
            json!({"call_id": "zz", "tool": "t", "ok": true}),
        ),
    )
    .await;
    assert_error(&unknown_call, StatusCode::CONFLICT, "out_of_grammar");
    // The refused events took no seq.
    let (_, next) = publish(
        &server,
        Some(API_KEY),
        event(
            "r_ext2",
            "agent_error",
            json!({"code": "agent_failed", "message": "x"}),
        ),
    )
    .await;
    assert_eq!(next["seq"], 8);

    server.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_422_and_a_wrong_or_missing_key_401() {
    let server = server_with_key().await;
    // Bad bodies.
    let bad_type = publish(
        &server,
        Some(API_KEY),
        event("r_ext3", "agent_dancing", json!({})),
    )
    .await;
    assert_error(&bad_type, StatusCode::UNPROCESSABLE_ENTITY, "unknown_type");
    let bad_data = publish(
        &server,
        Some(API_KEY),
        event("r_ext3", "tool_executing", json!({})),
    )
    .await;
    assert_error(&bad_data, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let mut reserved = event("r_ext3", "agent_started", json!({}));
    reserved["user_id"] = json!("__health");
    assert_error(
        &publish(&server, Some(API_KEY), reserved).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );

    // Wrong or missing key.
    let wrong = publish(
        &server,
        Some("not-the-key-at-all"),
        event("r_ext4", "agent_started", json!({})),
    )
    .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    let none = publish(&server, None, event("r_ext4", "agent_started", json!({}))).await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "unauthorized");
    // A user's dev credentials are not the API key.
    let r = client()
        .post(server.http_url("/v1/publish?user=ola"))
        .json(&event("r_ext4", "agent_started", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn publish_does_not_exist_without_an_api_key() {
    let server = TestServer::start().await;
    let got = publish(
        &server,
        Some(API_KEY),
        event("r_x", "agent_started", json!({})),
    )
    .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    server.stop().await;
}
