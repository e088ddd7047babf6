//! Sinks for tests: a recording [`WebSocketSink`] that checks the run grammar.

use std::collections::HashMap;

use agentwire_core::{CloseCode, CoreError, Frame, RunGrammar, StreamEvent, WebSocketSink};
use parking_lot::Mutex;

/// A [`WebSocketSink`] that keeps every frame and every close, for assertions.
///
/// ```
/// use agentwire_core::{Frame, WebSocketSink};
/// use agentwire_test::RecordingSink;
///
/// let sink = RecordingSink::default();
/// sink.send(Frame::event(1, br#"{"type":"x"}"#.to_vec())).unwrap();
/// assert_eq!(sink.frames().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct RecordingSink {
    frames: Mutex<Vec<Frame>>,
    closes: Mutex<Vec<(CloseCode, String)>>,
}

impl RecordingSink {
    /// Every frame received, in order.
    pub fn frames(&self) -> Vec<Frame> {
        self.frames.lock().clone()
    }

    /// The event frames, parsed.
    ///
    /// # Panics
    /// When an event frame is not a valid envelope.
    pub fn events(&self) -> Vec<StreamEvent> {
        self.frames
            .lock()
            .iter()
            .filter(|f| f.seq() > 0)
            .map(|f| serde_json::from_str(f.as_str()).expect("event frames parse as StreamEvent"))
            .collect()
    }

    /// The closes requested.
    pub fn closes(&self) -> Vec<(CloseCode, String)> {
        self.closes.lock().clone()
    }

    /// Checks that the events have seqs `first, first+1, …` and that each run's events fit the run
    /// grammar. Returns the number of runs that ended.
    ///
    /// # Errors
    /// What is wrong, with the seq where it happened.
    pub fn check_stream(&self) -> Result<usize, String> {
        check_events(&self.events())
    }
}

/// Checks consecutive seqs and the grammar of every run in `events`; returns how many runs
/// ended.
///
/// ```
/// use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
/// use agentwire_test::{check_events, run_agent};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), String> {
/// let registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
/// let mut events = run_agent(registry, "echo", "hi").await?;
/// assert_eq!(check_events(&events), Ok(1));
/// events.remove(2); // a hole: seq 4 now follows seq 2
/// assert!(check_events(&events).is_err());
/// # Ok(()) }
/// ```
///
/// # Errors
/// What is wrong, with the seq where it happened.
pub fn check_events(events: &[StreamEvent]) -> Result<usize, String> {
    let mut grammars: HashMap<String, RunGrammar> = HashMap::new();
    let mut ended = 0;
    for pair in events.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(format!("seq {} follows seq {}", pair[1].seq, pair[0].seq));
        }
    }
    for e in events {
        let g = grammars.entry(e.event.run_id.to_string()).or_default();
        g.check(&e.event.kind)
            .map_err(|err| format!("seq {}: {err}", e.seq))?;
        if g.is_finished() {
            ended += 1;
        }
    }
    Ok(ended)
}

impl WebSocketSink for RecordingSink {
    fn send(&self, frame: Frame) -> Result<(), CoreError> {
        if !self.closes.lock().is_empty() {
            return Err(CoreError::SinkClosed);
        }
        self.frames.lock().push(frame);
        Ok(())
    }

    fn close(&self, code: CloseCode, reason: &str) {
        self.closes.lock().push((code, reason.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentwire_core::{
        AgentCompleted, AgentStarted, EventKind, RunEvent, RunId, ThreadId, ToolCompleted,
        ToolExecuting,
    };
    use serde_json::json;

    use super::*;

    fn frame(seq: u64, run: &RunId, kind: EventKind) -> Frame {
        let event = RunEvent::now(run.clone(), ThreadId::generate(), Arc::from("t"), kind);
        Frame::event(seq, event.to_envelope_json(seq))
    }

    fn started() -> EventKind {
        EventKind::AgentStarted(AgentStarted { input: None })
    }

    fn completed() -> EventKind {
        EventKind::AgentCompleted(AgentCompleted {
            result: json!("done"),
            duration_ms: 1,
            usage: None,
            model: None,
        })
    }

    #[test]
    fn a_valid_stream_passes_and_counts_finished_runs() {
        let sink = RecordingSink::default();
        let (a, b) = (RunId::generate(), RunId::generate());
        sink.send(Frame::control(&json!({"type": "pong", "id": "p"})))
            .unwrap();
        sink.send(frame(1, &a, started())).unwrap();
        sink.send(frame(2, &b, started())).unwrap();
        sink.send(frame(
            3,
            &a,
            EventKind::ToolExecuting(ToolExecuting {
                call_id: "c_1".into(),
                tool: "echo".into(),
                args: json!({}),
            }),
        ))
        .unwrap();
        sink.send(frame(
            4,
            &a,
            EventKind::ToolCompleted(ToolCompleted {
                call_id: "c_1".into(),
                tool: "echo".into(),
                ok: true,
                result: Some(json!("x")),
                error: None,
                duration_ms: 0,
            }),
        ))
        .unwrap();
        sink.send(frame(5, &a, completed())).unwrap();
        assert_eq!(sink.frames().len(), 6);
        assert_eq!(sink.events().len(), 5);
        assert_eq!(sink.check_stream(), Ok(1));
    }

    #[test]
    fn a_hole_in_the_seqs_is_reported() {
        let sink = RecordingSink::default();
        let run = RunId::generate();
        sink.send(frame(1, &run, started())).unwrap();
        sink.send(frame(3, &run, completed())).unwrap();
        let err = sink.check_stream().unwrap_err();
        assert!(err.contains("seq 3 follows seq 1"), "{err}");
    }

    #[test]
    fn an_out_of_grammar_event_is_reported() {
        let sink = RecordingSink::default();
        let run = RunId::generate();
        sink.send(frame(1, &run, completed())).unwrap();
        let err = sink.check_stream().unwrap_err();
        assert!(err.starts_with("seq 1:"), "{err}");
    }

    #[test]
    fn a_closed_sink_refuses_frames_and_records_the_close() {
        let sink = RecordingSink::default();
        sink.close(CloseCode::SLOW_CONSUMER, "slow");
        assert_eq!(
            sink.send(Frame::control(&json!({"type": "pong"}))),
            Err(CoreError::SinkClosed)
        );
        assert_eq!(
            sink.closes(),
            vec![(CloseCode::SLOW_CONSUMER, "slow".to_owned())]
        );
    }
}
