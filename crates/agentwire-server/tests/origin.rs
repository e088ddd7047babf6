//! Cross-site refusals on a real server: a web page on another origin cannot open `/ws`, read
//! the SSE stream, start runs or disconnect users; with dev auth a DNS-rebound host name is not
//! served; the server's own origin, loopback origins in dev mode, `allowed_origins` and
//! requests without `Origin` pass.

mod support;

use std::net::SocketAddr;
use support::in_process as server;

use agentwire_startup::{AgentwireConfig, AuthMode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `method path` with `host` and optional `origin`; returns the status and the JSON body
/// of a refusal (`Value::Null` otherwise).
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    origin: Option<&str>,
    extra: &str,
) -> (u16, Value) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let body = if method == "POST" {
        "{\"agent\":\"echo\",\"input\":\"hi\"}"
    } else {
        ""
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{origin}{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out[..n]).into_owned();
    let status = text[9..12].parse().unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fn assert_refused((status, body): (u16, Value), what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("not"),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn dev_mode_refuses_other_origins_and_rebound_host_names() {
    let (addr, _stop) = server(AgentwireConfig::default()).await;
    let host = addr.to_string();
    let evil = Some("https://evil.example");
    assert_refused(
        send(
            addr,
            "GET",
            "/ws?user=alice&last_seq=0",
            &host,
            evil,
            UPGRADE,
        )
        .await,
        "/ws",
    );
    assert_refused(
        send(addr, "GET", "/v1/stream?user=alice", &host, evil, "").await,
        "SSE",
    );
    assert_refused(
        send(addr, "POST", "/v1/runs?user=alice", &host, evil, "").await,
        "POST /v1/runs",
    );
    assert_refused(
        send(
            addr,
            "POST",
            "/debug/disconnect?user=alice",
            &host,
            evil,
            "",
        )
        .await,
        "/debug/disconnect",
    );
    assert_refused(
        send(addr, "GET", "/ws?user=alice", &host, Some("null"), UPGRADE).await,
        "Origin: null",
    );
    // DNS rebinding: the attacker's name resolves to 127.0.0.1; the page is "same origin".
    let rebound = format!("rebind.evil.example:{}", addr.port());
    let rebound_origin = format!("http://{rebound}");
    assert_refused(
        send(
            addr,
            "GET",
            "/ws?user=alice",
            &rebound,
            Some(&rebound_origin),
            UPGRADE,
        )
        .await,
        "rebound host",
    );
    assert_refused(
        send(addr, "GET", "/v1/events?user=alice", &rebound, None, "").await,
        "rebound host without Origin",
    );

    // Allowed: the server's own origin, a loopback dev front-end, no Origin at all.
    let own = format!("http://{host}");
    let (status, _) = send(addr, "GET", "/ws?user=alice", &host, Some(&own), UPGRADE).await;
    assert_eq!(status, 101);
    let (status, _) = send(
        addr,
        "GET",
        "/ws?user=alice",
        &format!("localhost:{}", addr.port()),
        Some("http://localhost:3000"),
        UPGRADE,
    )
    .await;
    assert_eq!(status, 101);
    let (status, _) = send(addr, "GET", "/health/live", &host, None, "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn jwt_mode_allows_only_its_own_and_listed_origins() {
    let mut config = AgentwireConfig::default();
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwt_secret = Some("a-secret-of-at-least-32-bytes-long!".into());
    config.allowed_origins = vec!["https://app.example.com".into()];
    let (addr, _stop) = server(config).await;
    // Any Host is served in JWT mode (behind a proxy the name is the public one).
    let host = "api.example.com";
    for origin in ["http://localhost:3000", "https://evil.example"] {
        assert_refused(
            send(addr, "GET", "/ws", host, Some(origin), UPGRADE).await,
            origin,
        );
    }
    // Listed and same origins reach authentication (401 without a token), not the origin check.
    for origin in ["https://app.example.com", "http://api.example.com"] {
        let (status, body) = send(addr, "GET", "/ws", host, Some(origin), UPGRADE).await;
        assert_eq!(status, 401, "{origin}: {body}");
    }
}

#[tokio::test]
async fn every_error_body_is_json_even_from_axum_rejections() {
    let (addr, _stop) = server(AgentwireConfig::default()).await;
    let host = addr.to_string();
    // A duplicated query parameter, and a method the route does not have.
    for (method, path) in [
        ("GET", "/v1/events?user=alice&after=1&after=2"),
        ("GET", "/v1/runs"),
    ] {
        let (status, body) = send(addr, method, path, &host, None, "").await;
        assert!((400..500).contains(&status), "{path}: {status}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
}
