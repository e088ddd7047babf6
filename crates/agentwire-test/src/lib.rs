//! Test support for agentwire and for people who implement its components.
//!
//! - [`TestServer`]: the real server on `127.0.0.1:0`, stopped gracefully or on drop.
//! - [`WsClient`]: a real WebSocket client that reads JSON frames and whole runs.
//! - [`RecordingSink`]: a loopback [`WebSocketSink`](agentwire_core::WebSocketSink) that records
//!   frames, with [`check_events`] asserting consecutive seqs and the run grammar.
//!
//! ```no_run
//! use agentwire_test::TestServer;
//!
//! # #[tokio::main] async fn main() {
//! let server = TestServer::start().await;
//! let mut alice = server.connect("alice").await;
//! let (ack, events) = alice.run("c1", "echo", "hi").await;
//! assert_eq!(events.len(), 5);
//! assert_eq!(ack["id"], "c1");
//! server.stop().await;
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod server;
mod sink;

pub use server::{ConnectError, FRAME_TIMEOUT, TestServer, WsClient, test_config};
pub use sink::{RecordingSink, check_events};
