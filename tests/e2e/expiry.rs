//! Expiry on live connections: a WebSocket is closed with 4001 when its token expires, unless a
//! `refresh` frame with a token for the same user moved the expiry first; a refused refresh is
//! an `unauthorized` error frame and changes nothing. Dev users never expire.
//!
//! The short-lived tokens carry an `exp` 3 s in the past: every token is accepted with 5 s of
//! clock-skew leeway, and a connection ends when its token stops being accepted (`exp` + 5 s),
//! so these connections end 1–2 s after they open.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentwire_startup::AuthMode;
use agentwire_test::{TestServer, WsClient};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

pub(crate) async fn jwt_server_with(mut config: agentwire_startup::AgentwireConfig) -> TestServer {
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwt_secret = Some(SECRET.into());
    TestServer::start_with(config, Vec::new()).await
}

pub(crate) async fn jwt_server() -> TestServer {
    jwt_server_with(agentwire_test::test_config()).await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `claims` signed with the server's secret.
pub(crate) fn signed(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A token for `user` that stops being accepted 1–2 s from now (see the module doc).
pub(crate) fn short_token(user: &str) -> String {
    signed(json!({"sub": user, "exp": now() - 3}))
}

/// A token for `user` valid for 5 minutes.
pub(crate) fn long_token(user: &str) -> String {
    signed(json!({"sub": user, "exp": now() + 300}))
}

/// Connects with `token`; returns the client, when it connected, and `expires_in_ms`.
async fn connect(server: &TestServer, token: &str) -> (WsClient, Instant, u64) {
    let opened = Instant::now();
    let ws = WsClient::connect(&server.ws_url(&format!("token={token}")))
        .await
        .unwrap();
    let expires_in = ws.hello["data"]["expires_in_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("the greeting says when the token expires: {}", ws.hello));
    (ws, opened, expires_in)
}

/// Every frame until the server closes; asserts the close is 4001.
async fn until_expired(ws: &mut WsClient) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(frame) = ws.next_json().await {
        frames.push(frame);
    }
    let close = ws.close.clone().expect("a close frame");
    assert_eq!(u16::from(close.code), 4001, "{close:?}");
    assert!(close.reason.contains("token expired"), "{close:?}");
    frames
}

#[tokio::test]
async fn a_websocket_is_closed_with_4001_when_its_token_expires() {
    let server = jwt_server().await;
    let (mut ws, opened, expires_in) = connect(&server, &short_token("ivy")).await;
    assert!(expires_in <= 2_000, "expires_in_ms {expires_in}");
    assert_eq!(ws.run("c1", "echo", "before").await.1.len(), 5);

    // Past the expiry, without reading: a user_message sent now must not run.
    tokio::time::sleep_until(opened + Duration::from_millis(expires_in + 300)).await;
    let late = json!({"type": "user_message", "id": "late", "agent": "echo", "content": "after"});
    let _ = ws.stream_mut().send(Message::text(late.to_string())).await;
    let frames = until_expired(&mut ws).await;
    assert!(frames.is_empty(), "nothing after the expiry: {frames:?}");

    // The user's history holds the first run only.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page: Value = reqwest::Client::new()
        .get(server.http_url("/v1/events?after=0"))
        .bearer_auth(long_token("ivy"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 5, "{page}");
    assert!(events.iter().all(|e| e["data"]["input"] != "after"));
    server.stop().await;
}

#[tokio::test]
async fn a_refresh_before_the_expiry_keeps_the_connection_open() {
    let server = jwt_server().await;
    let (mut ws, opened, expires_in) = connect(&server, &short_token("jay")).await;
    ws.send_json(json!({"type": "refresh", "id": "f1", "token": long_token("jay")}))
        .await;
    let ack = ws.next_json().await.unwrap();
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["id"], "f1");
    let moved = ack["expires_in_ms"].as_u64().unwrap();
    assert!(moved > 290_000, "the new expiry is the new token's: {ack}");

    tokio::time::sleep_until(opened + Duration::from_millis(expires_in + 500)).await;
    let (_, events) = ws.run("c1", "echo", "still here").await;
    assert_eq!(events.len(), 5);
    assert_eq!(events[4]["type"], "agent_completed");
    ws.send_json(json!({"type": "ping", "id": "p1"})).await;
    assert_eq!(ws.next_json().await.unwrap()["type"], "pong");
    server.stop().await;
}

#[tokio::test]
async fn a_refresh_with_a_bad_token_or_another_users_is_refused_and_changes_nothing() {
    let server = jwt_server().await;
    // 3–4 s: room for the refusals below before the expiry, on a loaded machine too.
    let (mut ws, _, _) = connect(&server, &signed(json!({"sub": "kim", "exp": now() - 1}))).await;
    let wrong_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "kim", "exp": now() + 300}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-that-is-also-32-bytes!"),
    )
    .unwrap();
    for (id, token, says) in [
        ("other", long_token("lee"), "another user"),
        ("garbage", "not-a-jwt".to_owned(), "not a JWT"),
        (
            "expired",
            signed(json!({"sub": "kim", "exp": now() - 3600})),
            "expired",
        ),
        ("secret", wrong_secret, "signature"),
    ] {
        ws.send_json(json!({"type": "refresh", "id": id, "token": token}))
            .await;
        let error = ws.next_json().await.unwrap();
        assert_eq!(error["type"], "error", "{id}: {error}");
        assert_eq!(error["code"], "unauthorized", "{id}: {error}");
        assert_eq!(error["id"], id);
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(says), "{id}: {message}");
    }
    ws.send_json(json!({"type": "refresh", "id": "none"})).await;
    let error = ws.next_json().await.unwrap();
    assert_eq!(
        (&error["code"], &error["id"]),
        (&json!("invalid_field"), &json!("none"))
    );
    // The refusals left the expiry where it was.
    let frames = until_expired(&mut ws).await;
    assert!(frames.is_empty(), "{frames:?}");
    server.stop().await;
}

#[tokio::test]
async fn dev_users_do_not_expire_and_cannot_refresh() {
    let server = TestServer::start().await;
    let mut ws = server.connect("moe").await;
    assert!(
        ws.hello["data"].get("expires_in_ms").is_none(),
        "{}",
        ws.hello
    );
    ws.send_json(json!({"type": "refresh", "id": "f1", "token": long_token("moe")}))
        .await;
    let error = ws.next_json().await.unwrap();
    assert_eq!(error["code"], "unauthorized", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("do not expire"),
        "{error}"
    );
    assert_eq!(ws.run("c1", "echo", "hi").await.1.len(), 5);
    server.stop().await;
}
