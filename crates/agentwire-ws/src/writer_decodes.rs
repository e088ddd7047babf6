//! The frame writer encodes frames itself (header by tungstenite's `FrameHeader::format`, the
//! payload copied or written straight from the shared bytes). Property: any sequence of text
//! frames of any size, with pings, pongs and flushes interleaved and a close at the end, decodes
//! with tungstenite's own reader (as a client reads it) to exactly the frames written.

use std::io::{Cursor, Read, Write};

use proptest::prelude::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::writer::FrameWriter;

/// One step of the writer.
#[derive(Debug, Clone)]
enum Op {
    Text(String),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Flush,
}

/// A client's socket: reads the server's bytes, and keeps what tungstenite writes back (the
/// pongs it answers pings with) apart from them.
struct Wire {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Texts of every length class: small (7-bit length), around the 16-bit length boundaries,
/// around the writer's buffer size (a frame that no longer fits is written from its bytes), and
/// past 64 KiB (64-bit length). Multi-byte UTF-8 included.
fn text() -> impl Strategy<Value = String> {
    let sized = (
        prop_oneof![
            0usize..130,
            120usize..140,
            65_530usize..65_545,
            16_000usize..16_500,
            1usize..70_000,
        ],
        "[a-zé€𝄞 {}\":,0-9]{1,8}",
    )
        .prop_map(|(len, unit)| {
            let mut s = String::with_capacity(len + unit.len());
            while s.len() < len {
                s.push_str(&unit);
            }
            s
        });
    prop_oneof![3 => any::<String>(), 2 => sized]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => text().prop_map(Op::Text),
        1 => prop::collection::vec(any::<u8>(), 0..=125).prop_map(Op::Ping),
        1 => prop::collection::vec(any::<u8>(), 0..=125).prop_map(Op::Pong),
        1 => Just(Op::Flush),
    ]
}

fn close() -> impl Strategy<Value = Option<(u16, String)>> {
    prop::option::of((
        prop_oneof![
            Just(1000u16),
            Just(1001),
            Just(1008),
            Just(1009),
            Just(1011),
            Just(1012),
            4000u16..5000
        ],
        "[a-zA-Z0-9 ;:é]{0,40}",
    ))
}

/// What the writer produces for `ops` and the closing frame.
fn encode(ops: &[Op], close: Option<&(u16, String)>) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut w = FrameWriter::new(Vec::new());
        for op in ops {
            match op {
                Op::Text(t) => w.text(t.as_bytes()).await.expect("a Vec accepts writes"),
                Op::Ping(p) => w.control(Frame::ping(Bytes::from(p.clone()))),
                Op::Pong(p) => w.control(Frame::pong(Bytes::from(p.clone()))),
                Op::Flush => w.flush().await.expect("a Vec accepts writes"),
            }
        }
        if let Some((code, reason)) = close {
            w.control(Frame::close(Some(CloseFrame {
                code: CloseCode::from(*code),
                reason: Utf8Bytes::from(reason.as_str()),
            })));
        }
        w.flush().await.expect("a Vec accepts writes");
        w.tx
    })
}

/// The messages tungstenite reads from `bytes`, up to the end of the input.
fn decode(bytes: Vec<u8>) -> Vec<Message> {
    let wire = Wire {
        input: Cursor::new(bytes),
        output: Vec::new(),
    };
    let mut socket = WebSocket::from_raw_socket(wire, Role::Client, None);
    let mut messages = Vec::new();
    while let Ok(message) = socket.read() {
        messages.push(message);
    }
    assert_eq!(
        socket.get_ref().input.position() as usize,
        socket.get_ref().input.get_ref().len(),
        "tungstenite stopped before the end of the writer's output"
    );
    messages
}

fn expected(ops: &[Op], close: Option<&(u16, String)>) -> Vec<Message> {
    let mut messages: Vec<Message> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Text(t) => Some(Message::Text(t.as_str().into())),
            Op::Ping(p) => Some(Message::Ping(Bytes::from(p.clone()))),
            Op::Pong(p) => Some(Message::Pong(Bytes::from(p.clone()))),
            Op::Flush => None,
        })
        .collect();
    if let Some((code, reason)) = close {
        messages.push(Message::Close(Some(CloseFrame {
            code: CloseCode::from(*code),
            reason: reason.as_str().into(),
        })));
    }
    messages
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tungstenite_reads_exactly_what_the_writer_wrote(
        ops in prop::collection::vec(op(), 0..24),
        close in close(),
    ) {
        let bytes = encode(&ops, close.as_ref());
        prop_assert_eq!(decode(bytes), expected(&ops, close.as_ref()));
    }
}

#[test]
fn a_frame_larger_than_the_buffer_is_written_after_what_was_buffered() {
    let big = "x".repeat(40_000);
    let ops = [
        Op::Text("first".into()),
        Op::Ping(vec![1, 2]),
        Op::Text(big),
        Op::Text("last".into()),
    ];
    let close = (1000, "bye".to_owned());
    let bytes = encode(&ops, Some(&close));
    assert_eq!(decode(bytes), expected(&ops, Some(&close)));
}
