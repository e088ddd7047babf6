//! A client that stops reading, against the real `agentwire` process: it is closed with 4008,
//! the server's memory stays bounded while ~40 MB are published to it, another user keeps
//! receiving, and the slow client then resumes from history.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

mod support;

use support::{Server, next_json, rss_kib};

/// The server with a small queue and a short history, and limits that let one user flood it.
fn start() -> Server {
    Server::start(&[
        ("AGENTWIRE_LIMITS__QUEUE_BYTES", "262144"),
        ("AGENTWIRE_LIMITS__MESSAGES_PER_SECOND", "100000"),
        ("AGENTWIRE_LIMITS__BURST", "100000"),
        ("AGENTWIRE_LIMITS__MAX_RUNS_PER_USER", "100000"),
        ("AGENTWIRE_HISTORY__MAX_EVENTS", "200"),
    ])
}

/// The body of `GET path`, on a fresh connection.
async fn get_body(addr: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

async fn health(addr: &str) -> Value {
    serde_json::from_str(&get_body(addr, "/health").await).unwrap()
}

/// Completes the WebSocket handshake with a tiny receive buffer, then never reads again.
async fn stalled(addr: &str, user: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut tcp = sock.connect(addr.parse().unwrap()).await.unwrap();
    let req = format!(
        "GET /ws?user={user} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_costs_bounded_memory_and_resumes_afterwards() {
    let server = start();
    let pid = server.child.id();
    let addr = server.addr.clone();
    let _stalled = stalled(&addr, "slow").await;
    let (mut driver, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?user=slow"))
        .await
        .unwrap();
    let (mut other, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?user=other"))
        .await
        .unwrap();
    next_json(&mut driver).await.unwrap();
    next_json(&mut other).await.unwrap();
    let baseline = rss_kib(pid);

    // 320 echo runs (one at a time: the reading connection has the same 256 KiB queue) of
    // 32 KiB input: each run's four events carry it, ~40 MB in all for user
    // `slow` — far beyond its 256 KiB queue and the stalled socket's buffers.
    const RUNS: usize = 320;
    let big = "z".repeat(32 * 1024);
    let mut done = 0;
    let mut sent = 0;
    let mut peak = baseline;
    let started = Instant::now();
    while done < RUNS {
        while sent < RUNS && sent - done < 1 {
            let frame = json!({"type": "user_message", "id": format!("r{sent}"), "agent": "echo", "content": big});
            driver.send(Message::text(frame.to_string())).await.unwrap();
            sent += 1;
        }
        let f = next_json(&mut driver)
            .await
            .expect("the reading connection stays open");
        if f["type"] == "agent_completed" {
            done += 1;
            if done % 100 == 0 {
                peak = peak.max(rss_kib(pid));
                // The other user is served meanwhile.
                other
                    .send(Message::text(json!({"type": "user_message", "id": format!("o{done}"), "agent": "echo", "content": "hi"}).to_string()))
                    .await
                    .unwrap();
            }
        }
    }
    peak = peak.max(rss_kib(pid));
    let published_mb = (RUNS * 4 * 32) / 1024;
    println!(
        "slow consumer: {published_mb} MB published to a stalled client in {:?}; server RSS {} MiB -> peak {} MiB",
        started.elapsed(),
        baseline / 1024,
        peak / 1024
    );
    // History keeps 200 events (~6.5 MB), the stalled queue at most 256 KiB; allocator slack
    // aside, the server must not have kept what it could not deliver.
    assert!(
        peak - baseline < 24 * 1024,
        "RSS grew by {} MiB",
        (peak - baseline) / 1024
    );

    let mut other_done = 0;
    while other_done < RUNS / 100 {
        let f = next_json(&mut other)
            .await
            .expect("the other user stays connected");
        if f["type"] == "agent_completed" {
            other_done += 1;
        }
    }
    // The stalled connection was closed as a slow consumer: only driver and other remain.
    wait_for_connections(&addr, 2).await;
    resume_from_zero(&addr, (RUNS * 5) as u64, 200).await;
}

/// Waits until the server counts `n` connections.
async fn wait_for_connections(addr: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if health(addr).await["connections"] == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled connection was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resuming `slow` from 0 after `published` events of which history holds the last `held`: a
/// gap for what history no longer holds, then the held events in order.
async fn resume_from_zero(addr: &str, published: u64, held: u64) {
    let (mut resumed, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws?user=slow&last_seq=0"))
            .await
            .unwrap();
    let hello = next_json(&mut resumed).await.unwrap();
    let head = hello["data"]["last_seq"].as_u64().unwrap();
    assert_eq!(head, published);
    let gap = next_json(&mut resumed).await.unwrap();
    assert_eq!(gap["type"], "replay_gap");
    let mut expected = gap["data"]["to_seq"].as_u64().unwrap() + 1;
    assert_eq!(expected, head - held + 1);
    while expected <= head {
        let f = next_json(&mut resumed).await.unwrap();
        assert_eq!(f["seq"].as_u64(), Some(expected));
        expected += 1;
    }
}

/// `agentwire_tcp_connections` from `/metrics` (this request's own socket included).
async fn tcp_connections(addr: &str) -> u64 {
    let metrics = get_body(addr, "/metrics").await;
    support::metric_value(&metrics, "agentwire_tcp_connections")
        .expect("agentwire_tcp_connections in /metrics") as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_stops_reading_loses_its_socket_after_the_write_timeout() {
    let server = Server::start(&[
        ("AGENTWIRE_LIMITS__QUEUE_BYTES", "262144"),
        ("AGENTWIRE_LIMITS__MESSAGES_PER_SECOND", "100000"),
        ("AGENTWIRE_LIMITS__BURST", "100000"),
        ("AGENTWIRE_LIMITS__WRITE_TIMEOUT", "1s"),
    ]);
    let addr = server.addr.clone();
    // An SSE stream with a tiny receive buffer that is never read after its head.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(addr.parse().unwrap()).await.unwrap();
    stalled
        .write_all(b"GET /v1/stream?user=slow HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 256];
    let n = stalled.read(&mut head).await.unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    let (mut driver, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?user=slow"))
        .await
        .unwrap();
    next_json(&mut driver).await.unwrap();
    // The stalled socket, the driver and the metrics request itself.
    assert_eq!(tcp_connections(&addr).await, 3);

    // ~4 MB for `slow`: past the stream's 256 KiB queue (which ends the stream) and past what
    // the kernel buffers of both ends hold, so the server's writes stop making progress.
    let big = "z".repeat(32 * 1024);
    let mut done = 0;
    for i in 0..32 {
        let frame =
            json!({"type": "user_message", "id": format!("r{i}"), "agent": "echo", "content": big});
        driver.send(Message::text(frame.to_string())).await.unwrap();
        while done <= i {
            let f = next_json(&mut driver)
                .await
                .expect("the reading connection stays open");
            if f["type"] == "agent_completed" {
                done += 1;
            }
        }
    }

    // Within a few write timeouts the stalled socket is gone, the driver still connected.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tcp_connections(&addr).await != 2 {
        assert!(
            Instant::now() < deadline,
            "the stalled SSE client still holds its socket"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let frame = json!({"type": "user_message", "id": "after", "agent": "echo", "content": "hi"});
    driver.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let f = next_json(&mut driver)
            .await
            .expect("the driver is still served");
        if f["type"] == "agent_completed" {
            break;
        }
    }
    // The stalled client, reading at last, finds its connection closed by the server.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the server did not close the stalled socket"
    );
}
