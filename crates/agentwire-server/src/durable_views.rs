//! How a run's stream under `/ds/agentwire/runs/{run_id}` shows its events: as agentwire's event
//! frames, or mapped for a front end — `…/ai-sdk` (the Vercel AI SDK's UI message stream
//! chunks) and `…/ag-ui` (AG-UI events, which TanStack AI reads). A mapped view keeps the
//! offsets of the frames view: the chunks of one event come (and are skipped) together, after
//! the seq of the event before it, so a reader resumes at an event boundary.

use agentwire_agui::{AguiMapper, AiSdkMapper};
use agentwire_core::{Frame, StreamEvent};
use axum::body::Bytes;
use serde_json::Value;

/// A run stream's view, named by the path's last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// `/runs/{run_id}`: the event frames as `/ws` sends them.
    Frames,
    /// `/runs/{run_id}/ai-sdk`: AI SDK `UIMessageChunk`s.
    AiSdk,
    /// `/runs/{run_id}/ag-ui`: AG-UI events.
    AgUi,
}

impl View {
    /// The view a path suffix names (`None` for an unknown one).
    pub(crate) fn named(suffix: &str) -> Option<Self> {
        match suffix {
            "ai-sdk" => Some(Self::AiSdk),
            "ag-ui" => Some(Self::AgUi),
            _ => None,
        }
    }

    /// The messages of each of `frames` (one run's frames, in order, from its first one held):
    /// `(seq, messages)`, one entry per frame, possibly with no message.
    pub(crate) fn render(self, run: &str, frames: &[Frame]) -> Vec<(u64, Vec<Bytes>)> {
        let mut mapper = Mapper::None;
        frames
            .iter()
            .map(|frame| {
                let parts = match self {
                    Self::Frames => vec![frame.bytes().clone()],
                    _ => match serde_json::from_slice::<StreamEvent>(frame.bytes()) {
                        Ok(event) => mapper
                            .map(self, run, &event)
                            .iter()
                            .map(|chunk| Bytes::from(chunk.to_string()))
                            .collect(),
                        Err(_) => Vec::new(),
                    },
                };
                (frame.seq(), parts)
            })
            .collect()
    }
}

/// The mapper of a view, made at the run's first event (AG-UI needs its thread id).
enum Mapper {
    None,
    AiSdk(AiSdkMapper),
    AgUi(AguiMapper),
}

impl Mapper {
    fn map(&mut self, view: View, run: &str, event: &StreamEvent) -> Vec<Value> {
        if let Self::None = self {
            *self = match view {
                View::AiSdk => Self::AiSdk(AiSdkMapper::new(run)),
                _ => Self::AgUi(AguiMapper::new(event.event.thread_id.as_str(), run)),
            };
        }
        match self {
            Self::AiSdk(m) => m.map(event),
            Self::AgUi(m) => m.map(event),
            Self::None => Vec::new(),
        }
    }
}
