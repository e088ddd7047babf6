//! One run seen in its user's stream: the stream's frames in, the run's AG-UI events out.

use agentwire_core::{EventKind, Frame, RunId, StreamEvent};
use serde_json::Value;

use crate::AguiMapper;

/// The AG-UI view of run `run_id` in its user's stream. A user's stream carries all of the
/// user's runs and control frames; this keeps the run's events, in order, and maps them.
#[derive(Debug, Clone)]
pub struct AguiRun {
    run_id: RunId,
    mapper: AguiMapper,
    started: bool,
}

impl AguiRun {
    /// The view of agentwire run `run_id`, mapped by `mapper`.
    pub fn new(run_id: RunId, mapper: AguiMapper) -> Self {
        Self {
            run_id,
            mapper,
            started: false,
        }
    }

    /// The AG-UI events of one frame of the user's stream: none for control frames (seq 0),
    /// other runs' events, frames that are not events, and anything after the run ended.
    pub fn frame(&mut self, frame: &Frame) -> Vec<Value> {
        if frame.seq() == 0 || self.mapper.is_finished() {
            return Vec::new();
        }
        match serde_json::from_slice::<StreamEvent>(frame.bytes()) {
            Ok(event) => self.event(&event),
            Err(_) => Vec::new(),
        }
    }

    /// The AG-UI events of one event of the user's stream (none for other runs' events).
    pub fn event(&mut self, event: &StreamEvent) -> Vec<Value> {
        if event.event.run_id != self.run_id {
            return Vec::new();
        }
        self.started |= matches!(event.event.kind, EventKind::AgentStarted(_));
        self.mapper.map(event)
    }

    /// Ends the AG-UI run with `RUN_ERROR` because the stream closed before the run did.
    pub fn interrupted(&mut self, message: &str) -> Vec<Value> {
        self.mapper.interrupted(message)
    }

    /// Whether the run's `agent_started` was seen (a resume of a run that never started in
    /// this stream is refused).
    pub fn has_started(&self) -> bool {
        self.started
    }

    /// Whether the run's terminal AG-UI event was produced: nothing more follows.
    pub fn is_finished(&self) -> bool {
        self.mapper.is_finished()
    }
}
