//! Bad input gets its error code and the connection stays usable; oversized frames close 1009.

use agentwire_test::TestServer;
use serde_json::json;

#[tokio::test]
async fn bad_frames_get_their_error_code_and_the_connection_stays_usable() {
    let server = TestServer::start().await;
    let mut c = server.connect("eve").await;
    let cases = [
        ("{not json", "bad_json", None),
        ("[1,2,3]", "bad_json", None),
        (r#"{"type":"dance","id":"d1"}"#, "unknown_type", Some("d1")),
        (r#"{"id":"x1"}"#, "unknown_type", Some("x1")),
        (
            r#"{"type":"user_message","id":"m1"}"#,
            "invalid_field",
            Some("m1"),
        ),
        (
            r#"{"type":"user_message","id":"m2","content":""}"#,
            "invalid_field",
            Some("m2"),
        ),
        (
            r#"{"type":"user_message","id":"m3","content":"hi","thread_id":"bad id!"}"#,
            "invalid_field",
            Some("m3"),
        ),
        (
            r#"{"type":"user_message","id":"m4","content":"hi","agent":"nope"}"#,
            "unknown_agent",
            Some("m4"),
        ),
        (
            r#"{"type":"cancel","id":"k1","run_id":"r_doesnotexist"}"#,
            "run_not_found",
            Some("k1"),
        ),
    ];
    for (text, code, id) in cases {
        c.send_text(text).await;
        let f = c.next_json().await.expect("still connected");
        assert_eq!(f["type"], "error", "{text} -> {f}");
        assert_eq!(f["code"], code, "{text} -> {f}");
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(f.get("id").and_then(|v| v.as_str()), id, "{text} -> {f}");
    }
    // Still usable.
    let (_ack, events) = c.run("ok", "echo", "still here").await;
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["seq"], 1, "refused frames published nothing");
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let mut config = agentwire_test::test_config();
    config.limits.max_frame_bytes = 4096;
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut c = server.connect("frank").await;
    let big =
        json!({"type": "user_message", "id": "big", "content": "x".repeat(10_000)}).to_string();
    c.send_text(&big).await;
    assert!(
        c.next_json().await.is_none(),
        "the server closes the connection"
    );
    let close = c.close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    // The server is fine, and other connections are unaffected.
    let mut d = server.connect("frank").await;
    assert_eq!(d.run("after", "echo", "ok").await.1.len(), 5);
    server.stop().await;
}

/// `/ws` without a proper WebSocket upgrade gets a JSON 400 (426 for the version) that says what is missing — and a
/// real client still connects, with the `agentwire.v1` subprotocol selected when offered.
#[tokio::test]
async fn a_request_that_is_not_a_websocket_upgrade_gets_a_json_error() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let url = server.http_url("/ws?user=ada");
    type Case = (&'static [(&'static str, &'static str)], &'static str, u16);
    let cases: [Case; 3] = [
        (&[], "Connection: upgrade", 400),
        (
            &[("connection", "Upgrade"), ("upgrade", "websocket")],
            "Sec-WebSocket-Version: 13",
            426,
        ),
        (
            &[
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
            ],
            "Sec-WebSocket-Key",
            400,
        ),
    ];
    for (headers, missing, status) in cases {
        let mut req = http.get(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{missing}");
        if status == 426 {
            assert_eq!(resp.headers()["sec-websocket-version"], "13");
        }
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_field");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(missing), "{message}");
    }

    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.ws_url("user=ada"),
        )
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        agentwire_core::SUBPROTOCOL.parse().unwrap(),
    );
    let (_ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 101);
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        agentwire_core::SUBPROTOCOL
    );
}
