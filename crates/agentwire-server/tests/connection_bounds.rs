//! Bounds before authentication, against the real `agentwire` process on loopback: one client
//! holds more connections than the caps, and health keeps answering, another user is served,
//! idle connections are cut at the header-read timeout, and memory returns near its start.
//! Prints the figures docs/security.md quotes (`cargo test --test connection_bounds -- --nocapture`).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::{Server, rss_kib};

const PER_IP: usize = 500;
const GLOBAL: usize = 1000;
/// Connections above the global cap that still answer the health routes (accept.rs).
const HEALTH_RESERVE: usize = 16;
const HEADER_READ_TIMEOUT_S: u64 = 8;

fn start() -> Server {
    start_with(GLOBAL, PER_IP)
}

fn start_with(global: usize, per_ip: usize) -> Server {
    Server::start(&[
        ("AGENTWIRE_LIMITS__MAX_CONNECTIONS", &global.to_string()),
        (
            "AGENTWIRE_LIMITS__MAX_CONNECTIONS_PER_IP",
            &per_ip.to_string(),
        ),
        (
            "AGENTWIRE_LIMITS__HEADER_READ_TIMEOUT",
            &format!("{HEADER_READ_TIMEOUT_S}s"),
        ),
    ])
}

async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    sock.connect(addr).await.unwrap()
}

/// `GET path` from `from`; the status line and body, or `None` when the server closed first.
async fn get_from(from: [u8; 4], addr: SocketAddr, path: &str) -> Option<(String, String)> {
    let mut tcp = connect_from(from, addr).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("an answer within 10 s");
    let out = String::from_utf8_lossy(&out);
    // A refused connection is reset after its 503 (its request was never read): keep what came.
    if read.is_err() && out.is_empty() {
        return None;
    }
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// The value of one counter series in `/metrics`, 0 when absent.
async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (status, body) = get_from([127, 0, 0, 2], addr, "/metrics").await.unwrap();
    assert!(status.contains("200"), "{status} {body}");
    support::metric_value(&body, series).unwrap_or(0.0)
}

async fn wait_metric(addr: SocketAddr, series: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = metric(addr, series).await;
        if value >= want {
            assert_eq!(value, want, "{series}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens `n` connections from `from` and sends one byte on each (a request head begun and never
/// finished); the server keeps at most its caps and refuses the rest at once.
async fn hold(from: [u8; 4], addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = connect_from(from, addr).await;
        let _ = tcp.write_all(b"G").await;
        held.push(tcp);
    }
    held
}

/// Whether the server closed `tcp` (EOF, a reset, or the refusal 503 then EOF).
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

async fn bob_is_served(addr: SocketAddr) {
    let tcp = connect_from([127, 0, 0, 3], addr).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws?user=bob"), tcp)
        .await
        .expect("bob is served");
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("connection_established"));
}

/// One wave of the attack; returns the server's RSS at its peak (KiB) and how long until every
/// held connection was closed by the server.
async fn attack(pid: u32, addr: SocketAddr, wave: f64) -> (u64, Duration) {
    // One client opens 3× its per-IP cap: the surplus is refused at once and counted.
    let started = Instant::now();
    let mut attacker = hold([127, 0, 0, 1], addr, 3 * PER_IP).await;
    let per_ip = "agentwire_connections_refused_total{reason=\"per_ip\"}";
    wait_metric(addr, per_ip, wave * (2 * PER_IP) as f64).await;
    let (status, _) = get_from([127, 0, 0, 2], addr, "/health/live")
        .await
        .unwrap();
    assert!(status.contains("200"), "{status}");
    bob_is_served(addr).await;

    // A second address fills the global cap: health still answers from the reserve, and
    // everything else is refused with a JSON 503 (the reserve serves health only).
    attacker.extend(hold([127, 0, 0, 4], addr, PER_IP).await);
    let (status, _) = get_from([127, 0, 0, 2], addr, "/health/live")
        .await
        .unwrap();
    assert!(
        status.contains("200"),
        "health answers at the global cap: {status}"
    );
    let (status, body) = get_from([127, 0, 0, 3], addr, "/v1/events?user=bob")
        .await
        .unwrap();
    assert!(status.contains("503"), "{status}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "unavailable"
    );
    // A third address finds the node full; the reserve takes its first few.
    attacker.extend(hold([127, 0, 0, 5], addr, 2 * HEALTH_RESERVE).await);
    let peak = rss_kib(pid);
    assert!(
        started.elapsed() < Duration::from_secs(HEADER_READ_TIMEOUT_S),
        "the load phase outlasted the header timeout; the figures would be wrong"
    );

    // Every held connection is closed by the server: at once when refused, at the header-read
    // timeout otherwise.
    let cut = tokio::time::timeout(
        Duration::from_secs(HEADER_READ_TIMEOUT_S + 10),
        futures_util::future::join_all(attacker.iter_mut().map(closed_by_server)),
    )
    .await
    .expect("the server closes every idle connection after the header-read timeout");
    assert!(cut.iter().all(|c| *c));
    (peak, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_over_the_caps_cannot_starve_health_or_other_users() {
    let server = start();
    let (pid, addr) = (server.child.id(), server.socket_addr());
    // Warm up: one user served, one health answer, before the baseline.
    bob_is_served(addr).await;
    assert!(
        get_from([127, 0, 0, 2], addr, "/health/live")
            .await
            .is_some()
    );
    let baseline = rss_kib(pid);

    let (peak, cut_after) = attack(pid, addr, 1.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let global = "agentwire_connections_refused_total{reason=\"global\"}";
    assert!(metric(addr, global).await >= HEALTH_RESERVE as f64);
    bob_is_served(addr).await;

    // A second wave reuses what the allocator kept from the first instead of growing.
    let (second_peak, _) = attack(pid, addr, 2.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second_after = rss_kib(pid);
    println!(
        "connection_bounds: {} connections attempted per wave; RSS baseline {baseline} KiB, \
         peak {peak} KiB, {after} KiB after they closed (cut within {cut_after:?}); \
         second wave peak {second_peak} KiB, {second_after} KiB after",
        4 * PER_IP + 2 * HEALTH_RESERVE
    );
    // The server holds at most GLOBAL + HEALTH_RESERVE sockets: far under 64 MiB.
    assert!(
        peak - baseline < 64 * 1024,
        "peak {peak} KiB vs {baseline} KiB"
    );
    assert!(
        second_peak < peak + 8 * 1024,
        "the second wave grew the server: {second_peak} KiB vs {peak} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_websockets_count_against_the_global_cap_until_they_close() {
    let server = start_with(3, 1000);
    let addr = server.socket_addr();
    let url = format!("ws://{addr}/ws?user=alice");
    let mut open = Vec::new();
    for _ in 0..3 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        ws.next().await.unwrap().unwrap();
        open.push(ws);
    }
    // The fourth lands in the health reserve: refused with a JSON 503, health still answers.
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "unavailable");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    let (status, _) = get_from([127, 0, 0, 2], addr, "/health/live")
        .await
        .unwrap();
    assert!(status.contains("200"), "{status}");
    // Closing one WebSocket frees its slot.
    let mut closed = open.pop().unwrap();
    closed.close(None).await.unwrap();
    while closed.next().await.is_some() {}
    drop(closed);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await {
            ws.next().await.unwrap().unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed WebSocket's slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
