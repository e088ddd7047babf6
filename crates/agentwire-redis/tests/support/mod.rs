//! Test support: private Redis processes ([`procs`]), a recording live sink, test events.
#![allow(dead_code, unreachable_pub)]

pub mod procs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentwire_bridge::LiveSink;
use agentwire_core::{AgentMessageDelta, EventKind, Frame, RunEvent, RunId, ThreadId, UserId};
use parking_lot::Mutex;

pub use procs::*;

/// A live sink that records every delivered frame.
#[derive(Default)]
pub struct Recorder {
    pub frames: Mutex<Vec<(UserId, String, Frame)>>,
}

impl LiveSink for Recorder {
    fn deliver(&self, user: &UserId, epoch: &str, frame: Frame) {
        self.frames
            .lock()
            .push((user.clone(), epoch.to_owned(), frame));
    }
}

impl Recorder {
    pub fn seqs_of(&self, user: &UserId) -> Vec<u64> {
        self.frames
            .lock()
            .iter()
            .filter(|(u, _, _)| u == user)
            .map(|(_, _, f)| f.seq())
            .collect()
    }

    pub async fn wait_for(&self, user: &UserId, n: usize) -> Vec<u64> {
        let started = Instant::now();
        loop {
            let seqs = self.seqs_of(user);
            if seqs.len() >= n || started.elapsed() > Duration::from_secs(15) {
                return seqs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn text_of(&self, user: &UserId, seq: u64) -> Option<String> {
        self.frames
            .lock()
            .iter()
            .find(|(u, _, f)| u == user && f.seq() == seq)
            .map(|(_, _, f)| String::from_utf8_lossy(f.bytes()).into_owned())
    }
}

pub fn recorder() -> Arc<Recorder> {
    Arc::new(Recorder::default())
}

/// The largest event the tests append with: the server's default `limits.max_event_bytes`.
pub const MAX_EVENT: usize = agentwire_core::DEFAULT_MAX_EVENT_BYTES;

/// An event whose text names its publisher and index.
pub fn delta(tag: &str) -> RunEvent {
    RunEvent::now(
        RunId::generate(),
        ThreadId::generate(),
        "test".into(),
        EventKind::AgentMessageDelta(AgentMessageDelta {
            message_id: "m".into(),
            delta: tag.to_owned(),
        }),
    )
}

/// A name no other run of the tests uses.
pub fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        &ThreadId::generate().as_str()[2..10]
    )
}
