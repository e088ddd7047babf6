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
