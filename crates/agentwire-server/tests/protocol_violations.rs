//! A peer that breaks RFC 6455 is closed with the code the RFC names: 1007 for a text frame
//! that is not UTF-8, 1002 for a protocol error (RSV bits set, an oversized control frame).

use std::time::Duration;

use agentwire_server::{AppState, serve, start};
use agentwire_startup::AgentwireConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let ready = start(AgentwireConfig::default(), Vec::new())
        .await
        .expect("startup");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, AppState::new(ready), async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// A raw WebSocket after the handshake, with the server's first frame read.
async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = "GET /ws?user=alice HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    tcp
}

/// A masked client frame with `first` as its first byte (FIN, RSV, opcode).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads server frames until a close frame and returns its code.
async fn close_code(tcp: &mut TcpStream) -> u16 {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut head = [0u8; 2];
            tcp.read_exact(&mut head).await.unwrap();
            let len = match head[1] & 0x7f {
                126 => {
                    let mut ext = [0u8; 2];
                    tcp.read_exact(&mut ext).await.unwrap();
                    u16::from_be_bytes(ext) as usize
                }
                127 => {
                    let mut ext = [0u8; 8];
                    tcp.read_exact(&mut ext).await.unwrap();
                    u64::from_be_bytes(ext) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.unwrap();
            if head[0] & 0x0f == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    })
    .await
    .expect("a close frame in time")
}

#[tokio::test]
async fn invalid_utf8_closes_1007_and_protocol_errors_close_1002() {
    let (addr, _stop) = server().await;

    let mut tcp = connect(addr).await;
    tcp.write_all(&frame(0x81, &[0xff, 0xfe, 0xfd]))
        .await
        .unwrap();
    assert_eq!(close_code(&mut tcp).await, 1007);

    let mut tcp = connect(addr).await;
    // FIN + RSV1 + text, without a negotiated extension.
    tcp.write_all(&frame(0xC1, b"{}")).await.unwrap();
    assert_eq!(close_code(&mut tcp).await, 1002);

    let mut tcp = connect(addr).await;
    // A ping must carry at most 125 bytes; this one claims 126 (extended length).
    let mut big_ping = vec![0x89, 0x80 | 126, 0, 126, 1, 2, 3, 4];
    big_ping.extend(std::iter::repeat_n(0u8, 126));
    tcp.write_all(&big_ping).await.unwrap();
    assert_eq!(close_code(&mut tcp).await, 1002);
}
