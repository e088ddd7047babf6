//! Per-user bounds of the HTTP API on a real server (docs/security.md): the request rate (429
//! then recovery), the `/v1/publish` rate, the cap on concurrent HTTP streams, `max_users`
//! counting only streams that hold events or connections (1,000 read-only GETs lock nobody
//! out; a run over the cap is not answered 202), the first-frame timeout of an upgraded
//! WebSocket, and 401 bodies in plain words.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::in_process as server;

use agentwire_startup::{AgentwireConfig, AuthMode};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status and JSON body of a response.
async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn the_http_api_is_rate_limited_per_user_then_recovers() {
    let mut config = AgentwireConfig::default();
    config.limits.http_requests_per_second = 1;
    config.limits.http_burst = 3;
    config.limits.publish_per_second = 1;
    config.limits.publish_burst = 2;
    config.api_key = Some("k".repeat(32));
    let (addr, _stop) = server(config).await;
    let http = reqwest::Client::new();
    let events = |user: &str| format!("http://{addr}/v1/events?user={user}");

    // The burst: a run, then reads until alice is over her rate (3 at once, 1 more a second).
    let run = http
        .post(format!("http://{addr}/v1/runs?user=alice"))
        .json(&json!({"agent": "echo", "content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), StatusCode::ACCEPTED);
    let mut served = 1;
    let limited = loop {
        let r = http.get(events("alice")).send().await.unwrap();
        if r.status() != 200 {
            break r;
        }
        served += 1;
        assert!(served < 10, "no request of alice was limited");
    };
    assert!(served >= 3, "the burst of 3 was served ({served})");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    let (status, body) = answer(limited).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Runs share the budget.
    let (status, body) = answer(
        http.post(format!("http://{addr}/v1/runs?user=alice"))
            .json(&json!({"agent": "echo", "content": "hi"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another user has their own budget.
    assert_eq!(http.get(events("bob")).send().await.unwrap().status(), 200);

    // Recovery: after Retry-After, alice is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        http.get(events("alice")).send().await.unwrap().status(),
        200
    );

    // /v1/publish: per target user, with its own budget.
    let publish = |user: &str, run: &str| {
        http.post(format!("http://{addr}/v1/publish"))
            .bearer_auth("k".repeat(32))
            .json(&json!({"user_id": user, "run_id": run, "thread_id": "t_1",
                "agent": "ext", "type": "agent_started", "data": {}}))
            .send()
    };
    assert_eq!(publish("carol", "r_1").await.unwrap().status(), 200);
    assert_eq!(publish("carol", "r_2").await.unwrap().status(), 200);
    let limited = publish("carol", "r_3").await.unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    let (status, body) = answer(limited).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(publish("dave", "r_1").await.unwrap().status(), 200);
}

/// Opens `path` and keeps the response (an open stream) once its headers arrive.
async fn open(http: &reqwest::Client, url: String) -> reqwest::Response {
    http.get(url).send().await.unwrap()
}

/// A stream of `url` opens again once a closed one's slot is freed.
async fn reopen_after_a_close(http: &reqwest::Client, url: &str) {
    // The server sees the close at its next write at the latest (a keepalive every 15 s).
    for _ in 0..250 {
        let reopened = open(http, url.to_owned()).await;
        if reopened.status() != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let hello = reopened.bytes_stream().next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&hello).contains("connection_established"));
        return;
    }
    panic!("a closed stream frees its slot");
}

#[tokio::test]
async fn concurrent_http_streams_are_capped_per_user() {
    let mut config = AgentwireConfig::default();
    config.limits.max_http_streams_per_user = 2;
    config.limits.http_requests_per_second = 1000;
    config.limits.http_burst = 1000;
    let (addr, _stop) = server(config).await;
    let http = reqwest::Client::new();
    let stream = |user: &str| format!("http://{addr}/v1/stream?user={user}");

    let first = open(&http, stream("alice")).await;
    assert_eq!(first.status(), 200);
    let second = open(
        &http,
        format!("http://{addr}/ds/agentwire/events?user=alice&offset=-1&live=sse"),
    )
    .await;
    assert_eq!(second.status(), 200, "a live /ds read is a stream too");

    let (status, body) = answer(open(&http, stream("alice")).await).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
    );
    let agui = http
        .post(format!("http://{addr}/agui/echo?user=alice"))
        .json(&json!({"threadId": "t_1", "runId": "r_1", "messages": [
            {"id": "m1", "role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(agui).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
    );
    let (status, body) = answer(
        open(
            &http,
            format!("http://{addr}/ds/agentwire/events?user=alice&offset=-1&live=long-poll"),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
    );
    // Another user is not affected; a plain (not live) read is not a stream.
    let bob = open(&http, stream("bob")).await;
    assert_eq!(bob.status(), 200);
    let read = http
        .get(format!(
            "http://{addr}/ds/agentwire/events?user=alice&offset=-1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);

    // Closing a stream frees its slot (the guard is dropped with the response body).
    drop(first);
    reopen_after_a_close(&http, &stream("alice")).await;
    drop(second);
}

#[tokio::test]
async fn read_only_gets_do_not_take_user_slots() {
    let mut config = AgentwireConfig::default();
    config.limits.max_users = 1000;
    let (addr, _stop) = server(config).await;
    let http = reqwest::Client::new();
    // 1,000 users that only read: the history of each, its head, its durable stream.
    for i in 0..1000 {
        let url = match i % 3 {
            0 => format!("http://{addr}/v1/events?user=reader{i}"),
            1 => format!("http://{addr}/ds/agentwire/events?user=reader{i}&offset=-1"),
            _ => format!("http://{addr}/ds/agentwire/events?user=reader{i}&offset=now"),
        };
        let (status, body) = answer(http.get(url).send().await.unwrap()).await;
        assert!(status.is_success(), "read {i}: {status} {body}");
    }
    // A new user is served: a WebSocket gets its greeting, and a run its 202 and its events.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?user=newcomer"))
        .await
        .unwrap();
    let hello = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(hello.contains("connection_established"), "{hello}");
    let run = http
        .post(format!("http://{addr}/v1/runs?user=newcomer"))
        .json(&json!({"agent": "echo", "content": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), StatusCode::ACCEPTED);
    let started = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(started.contains("agent_started"), "{started}");
}

#[tokio::test]
async fn a_run_over_the_user_cap_is_refused_not_accepted() {
    let mut config = AgentwireConfig::default();
    config.limits.max_users = 2;
    let (addr, _stop) = server(config).await;
    let http = reqwest::Client::new();
    let run = |user: &str| {
        http.post(format!("http://{addr}/v1/runs?user={user}"))
            .json(&json!({"agent": "echo", "content": "hi"}))
            .send()
    };
    for user in ["a", "b"] {
        assert_eq!(run(user).await.unwrap().status(), StatusCode::ACCEPTED);
    }
    let (status, body) = answer(run("c").await.unwrap()).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_users"),
        "{body}"
    );
    // Users that hold a stream still start runs; reads of the refused user still answer.
    assert_eq!(run("a").await.unwrap().status(), StatusCode::ACCEPTED);
    let (status, page) = answer(
        http.get(format!("http://{addr}/v1/events?user=c"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["head"], 0);
}

#[tokio::test]
async fn an_upgraded_websocket_that_sends_nothing_is_closed() {
    let mut config = AgentwireConfig::default();
    config.heartbeat.interval = Duration::from_secs(1);
    config.heartbeat.timeout = Duration::from_secs(2);
    let (addr, _stop) = server(config).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws?user=silent HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // Read what the server sends (101, greeting, pings, close) and never answer: the server
    // must close the connection by itself.
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent connection was not closed");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("connection_established"), "{text}");
    assert!(
        text.contains("heartbeat timeout"),
        "closed with a reason: {text}"
    );
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// `GET path` over a raw socket (a WebSocket handshake is not something reqwest sends): the
/// status and the JSON body.
async fn raw_get(addr: SocketAddr, path: &str, extra: &str) -> (StatusCode, Value) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the head and a whole JSON body are in (the connection stays open).
    let (status, json) = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before a whole answer");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n")
            && let Ok(json) = serde_json::from_str::<Value>(body)
        {
            break (head[9..12].parse::<u16>().unwrap(), json);
        }
    };
    (StatusCode::from_u16(status).unwrap(), json)
}

/// Words that are library internals and must not reach a 401 body.
const INTERNALS: [&str; 9] = [
    "HS256",
    "HS384",
    "RS256",
    "ES256",
    "EdDSA",
    "ErrorKind",
    "InvalidSignature",
    "ExpiredSignature",
    "Base64",
];

fn assert_plain_401(status: StatusCode, body: &Value, must_say: &str) {
    assert_error(status, body, StatusCode::UNAUTHORIZED, "unauthorized");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(must_say),
        "{message:?} should say {must_say:?}"
    );
    for word in INTERNALS {
        assert!(!message.contains(word), "{message:?} leaks {word:?}");
    }
}

fn token(secret: &str, algorithm: jsonwebtoken::Algorithm, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn refusals_say_what_is_wrong_in_plain_words() {
    let secret = "s".repeat(32);
    let mut config = AgentwireConfig::default();
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwt_secret = Some(secret.clone());
    config.auth.audience = Some("agentwire".into());
    config.api_key = Some("k".repeat(32));
    let (addr, _stop) = server(config).await;
    let http = reqwest::Client::new();
    let events = |bearer: Option<String>| {
        let req = http.get(format!("http://{addr}/v1/events"));
        match bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
    };
    let good = json!({"sub": "alice", "exp": now() + 600, "aud": "agentwire"});
    let hs256 = jsonwebtoken::Algorithm::HS256;

    let (s, b) = answer(events(None).await.unwrap()).await;
    assert_plain_401(s, &b, "no credentials");
    let (s, b) = answer(events(Some("not-a-token".into())).await.unwrap()).await;
    assert_plain_401(s, &b, "not a JWT");
    let other = token(&"o".repeat(32), hs256, good.clone());
    let (s, b) = answer(events(Some(other)).await.unwrap()).await;
    assert_plain_401(s, &b, "signature does not match");
    let expired = json!({"sub": "alice", "exp": now() - 3600, "aud": "agentwire"});
    let (s, b) = answer(events(Some(token(&secret, hs256, expired))).await.unwrap()).await;
    assert_plain_401(s, &b, "expired");
    let hs384 = token(&secret, jsonwebtoken::Algorithm::HS384, good.clone());
    let (s, b) = answer(events(Some(hs384)).await.unwrap()).await;
    assert_plain_401(s, &b, "kind of signature");
    let no_aud = json!({"sub": "alice", "exp": now() + 600});
    let (s, b) = answer(events(Some(token(&secret, hs256, no_aud))).await.unwrap()).await;
    assert_plain_401(s, &b, "`aud`");
    let wrong_aud = json!({"sub": "alice", "exp": now() + 600, "aud": "billing"});
    let (s, b) = answer(
        events(Some(token(&secret, hs256, wrong_aud)))
            .await
            .unwrap(),
    )
    .await;
    assert_plain_401(s, &b, "another service");
    let ok = token(&secret, hs256, good);
    assert_eq!(events(Some(ok.clone())).await.unwrap().status(), 200);

    // The WebSocket upgrade answers the same JSON 401.
    let (s, b) = raw_get(addr, "/ws?token=garbage", UPGRADE).await;
    assert_plain_401(s, &b, "not a JWT");
    // A user token is not the server API key.
    let publish = http
        .post(format!("http://{addr}/v1/publish"))
        .bearer_auth(ok)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (s, b) = answer(publish).await;
    assert_plain_401(s, &b, "API key");
}

#[tokio::test]
async fn identity_provider_refusals_say_what_is_wrong_in_plain_words() {
    // A JWKS endpoint with no keys, served from the test.
    let jwks = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(|| async { axum::Json(json!({"keys": []})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, jwks).await });
    let mut config = AgentwireConfig::default();
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwks_url = Some(format!("http://{jwks_addr}/jwks.json"));
    let (addr, _stop) = server(config).await;
    let http = reqwest::Client::new();
    let claims = json!({"sub": "alice", "exp": now() + 600});

    // An HS256 token without a `kid` where only the provider's keys verify.
    let hs = token(
        &"s".repeat(32),
        jsonwebtoken::Algorithm::HS256,
        claims.clone(),
    );
    let r = http
        .get(format!("http://{addr}/v1/stream"))
        .bearer_auth(hs)
        .send()
        .await
        .unwrap();
    let (s, b) = answer(r).await;
    assert_plain_401(s, &b, "identity provider");
    // A token naming a key the provider does not publish.
    use base64::Engine as _;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let forged = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "typ": "JWT", "kid": "unknown-key"})),
        b64(claims)
    );
    let r = http
        .get(format!("http://{addr}/v1/events?token={forged}"))
        .send()
        .await
        .unwrap();
    let (s, b) = answer(r).await;
    assert_plain_401(s, &b, "a key this server has not loaded");
}
