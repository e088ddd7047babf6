//! Test support for agentwire and for people who implement its components.
//!
//! Add it as a dev-dependency when you write your own `Agent`, `Tool`, `AgentRegistry` or
//! `WebSocketSink`, or embed agentwire in a service:
//!
//! - [`run_agent`]: runs one agent of your registry through the real executor, bridge and a
//!   loopback connection, and returns the run's events, grammar-checked. No server, no socket.
//! - [`LoopbackSink`]: a [`WebSocketSink`](agentwire_core::WebSocketSink) whose frames the test
//!   awaits on a [`LoopbackReceiver`], as a client would read them.
//! - [`RecordingSink`]: a sink that records frames and closes, with [`check_events`] asserting
//!   consecutive seqs and the run grammar.
//! - [`TestServer`]: the real server on `127.0.0.1:0`, stopped gracefully or on drop, and
//!   [`WsClient`], a real WebSocket client that reads JSON frames and whole runs.
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

mod agent;
mod loopback;
mod server;
mod sink;

pub use agent::{RUN_TIMEOUT, run_agent};
pub use loopback::{LoopbackReceiver, LoopbackSink};
pub use server::{ConnectError, FRAME_TIMEOUT, TestServer, WsClient, test_config};
pub use sink::{RecordingSink, check_events};

// The guide's code blocks are compiled (and the runnable ones run) as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/extending.md")]
struct ExtendingGuide;
