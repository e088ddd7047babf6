//! The AG-UI protocol (<https://docs.ag-ui.com>) as a pure mapper: one run's agentwire events
//! in, AG-UI events out. No HTTP here: the server's `POST /agui/{agent}` route reads the
//! [`RunAgentInput`], starts the run, and writes what [`AguiRun`] returns as SSE `data:` lines.
//! `docs/ag-ui.md` has the mapping table.
//!
//! [`AiSdkMapper`] maps the same events to the Vercel AI SDK's UI message stream chunks, the
//! format the AI SDK's durable-streams transport reads (`docs/durable-streams.md`). The AG-UI
//! events are also what TanStack AI reads (its `StreamChunk`s are AG-UI events).
//!
//! ```
//! use agentwire_agui::{AguiMapper, AguiRun, RunAgentInput};
//! use agentwire_core::{EventKind, RunEvent, RunId, StreamEvent, ThreadId};
//! use serde_json::json;
//!
//! let input: RunAgentInput = serde_json::from_value(json!({
//!     "threadId": "t1", "runId": "r1",
//!     "messages": [{"id": "1", "role": "user", "content": "hello"}],
//! })).unwrap();
//! assert_eq!(input.user_text().as_deref(), Some("hello"));
//!
//! let run_id = RunId::new("r1").unwrap();
//! let mut run = AguiRun::new(run_id.clone(), AguiMapper::new(input.thread_id, input.run_id));
//! let event = |seq, kind, data| StreamEvent {
//!     seq,
//!     event: RunEvent::now(
//!         run_id.clone(),
//!         ThreadId::new("t1").unwrap(),
//!         "echo".into(),
//!         EventKind::from_parts(kind, data).unwrap(),
//!     ),
//! };
//! let started = run.event(&event(1, "agent_started", json!({"input": "hello"})));
//! assert_eq!(started[0]["type"], "RUN_STARTED");
//! let done = run.event(&event(2, "agent_completed", json!({"result": "hello"})));
//! assert_eq!(done[0]["type"], "RUN_FINISHED");
//! assert!(run.is_finished());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ai_sdk;
mod input;
mod mapper;
mod run;

pub use ai_sdk::AiSdkMapper;
pub use input::RunAgentInput;
pub use mapper::AguiMapper;
pub use run::AguiRun;
