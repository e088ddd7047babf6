//! The two memory amplification attacks of issue 26, against the real `agentwire` process (memory
//! broker, default history bound of 8 MiB): its resident memory (`VmRSS`) stays under a stated
//! ceiling. Prints the figures docs/security.md quotes
//! (`cargo test -p agentwire-server --test amplification -- --nocapture`).
//!
//! The ceilings are assertions about a memory bound, not about speed: each is far below what the
//! attack took before the bounds (about 60 MB of history and 1.1 GB for the never-read pages).

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::Server;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1024;
const HISTORY_BYTES: usize = 8 * 1024 * 1024;
const INPUT: usize = 64 * 1024;

fn start(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        // Room for a 64 KiB content in one frame, and no rate limit in the way.
        ("AGENTWIRE_LIMITS__MAX_FRAME_BYTES", "131072"),
        ("AGENTWIRE_LIMITS__MESSAGES_PER_SECOND", "100000"),
        ("AGENTWIRE_LIMITS__BURST", "100000"),
        ("AGENTWIRE_LIMITS__MAX_RUNS_PER_USER", "1000"),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

/// `runs` echo runs of `user` with 64 KiB inputs over one WebSocket, at most two in flight (the
/// client reads everything, so it is never a slow consumer); samples the server's RSS every 20
/// runs and returns the highest.
async fn echo_64k(server: &Server, user: &str, runs: usize) -> u64 {
    let (ws, _) = server.ws(user, "").await;
    let (mut tx, mut rx) = ws.split();
    let input = "e".repeat(INPUT);
    let (mut sent, mut done, mut peak) = (0, 0, 0);
    while done < runs {
        while sent < runs && sent - done < 2 {
            let frame = json!({"type": "user_message", "id": format!("c{sent}"), "agent": "echo", "content": input});
            tx.send(Message::text(frame.to_string())).await.unwrap();
            sent += 1;
        }
        let text = match rx.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("the connection ended after {done} runs: {other:?}"),
        };
        if text.starts_with(r#"{"type":"agent_completed""#) {
            done += 1;
            if done % 20 == 0 {
                peak = peak.max(server.rss_kib());
            }
        }
        assert!(!text.starts_with(r#"{"type":"agent_error""#), "{text:.300}");
    }
    peak.max(server.rss_kib())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_amplification_keeps_history_within_max_bytes() {
    const RUNS: usize = 300;
    const CEILING_MIB: u64 = 40;
    let server = start(&[]);
    let (_idle, _) = server.ws("amp", "").await;
    let baseline = server.rss_kib();
    let started = Instant::now();
    let peak = echo_64k(&server, "amp", RUNS).await;
    let elapsed = started.elapsed();

    // Each run's four events carry the input: ~75 MiB went through one user's history.
    let (gap, pages) = server.pages("amp", "").await;
    let held: usize = pages.iter().map(|p| p.bytes()).sum();
    let events: usize = pages.iter().map(|p| p.events.len()).sum();
    let head = pages[0].head;
    assert_eq!(head, RUNS as u64 * 5);
    assert!(held <= HISTORY_BYTES, "history holds {held} bytes");
    // Trimmed by bytes, not by more: one more (64 KiB) event would not have fitted.
    assert!(
        held + INPUT + 512 > HISTORY_BYTES,
        "history holds only {held} bytes"
    );
    assert_eq!(gap["to_seq"].as_u64(), Some(head - events as u64));
    let after = server.rss_kib();
    println!(
        "echo amplification: {RUNS} runs x 4 events x 64 KiB ({} MiB) for one user in {elapsed:.1?}; \
         history holds {events} events, {held} B (bound {HISTORY_BYTES}); server RSS {} MiB -> peak {} MiB, {} MiB after",
        RUNS * 4 * INPUT / (1024 * 1024),
        baseline / MIB,
        peak / MIB,
        after / MIB
    );
    assert!(
        peak - baseline < CEILING_MIB * MIB,
        "RSS grew by {} MiB, ceiling {CEILING_MIB} MiB",
        (peak - baseline) / MIB
    );
}

/// Opens `GET /v1/events` of `user` from 0 with a tiny receive buffer and never reads it.
async fn never_read(server: &Server, user: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut tcp = sock.connect(server.addr.parse().unwrap()).await.unwrap();
    let request = format!("GET /v1/events?user={user}&after=0 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_read_event_pages_cost_bounded_memory() {
    const REQUESTS: usize = 20;
    const CEILING_MIB: u64 = 24;
    // One page may hold the whole history (8 MiB): built whole, 20 of them would be 160 MiB.
    let page = HISTORY_BYTES.to_string();
    let server = start(&[("AGENTWIRE_LIMITS__EVENTS_PAGE_BYTES", &page)]);
    echo_64k(&server, "pages", 40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.rss_kib();

    let mut held = Vec::new();
    for _ in 0..REQUESTS {
        held.push(never_read(&server, "pages").await);
    }
    // Let the server write what the sockets take, then sample for a while.
    let mut peak = baseline;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        peak = peak.max(server.rss_kib());
    }
    // The server still serves: health, and a reader gets the whole page.
    let health = reqwest::get(server.url("/health/live")).await.unwrap();
    assert_eq!(health.status(), 200);
    let (gap, pages) = server.pages("pages", "").await;
    let bytes: usize = pages.iter().map(|p| p.bytes()).sum();
    assert_eq!(pages.len(), 1, "the whole history in one page");
    assert!(gap.is_object() && bytes <= HISTORY_BYTES);
    println!(
        "never-read pages: {REQUESTS} concurrent GET /v1/events of one user, each a page of {bytes} B, never read; \
         server RSS {} MiB -> peak {} MiB",
        baseline / MIB,
        peak / MIB
    );
    assert!(
        peak - baseline < CEILING_MIB * MIB,
        "RSS grew by {} MiB, ceiling {CEILING_MIB} MiB",
        (peak - baseline) / MIB
    );
    drop(held);
}
