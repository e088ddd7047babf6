//! AG-UI's `RunAgentInput`, the body of a run request.

use serde::Deserialize;
use serde_json::Value;

/// The parts of AG-UI's `RunAgentInput` agentwire uses; other fields (`tools`, `state`,
/// `context`, `forwardedProps`) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunAgentInput {
    /// The client's thread id, echoed in `RUN_STARTED` / `RUN_FINISHED`.
    pub thread_id: String,
    /// The client's run id, echoed in `RUN_STARTED` / `RUN_FINISHED`.
    pub run_id: String,
    /// The conversation; the last `user` message is the run's input.
    #[serde(default)]
    pub messages: Vec<Value>,
}

impl RunAgentInput {
    /// The text of the last `user` message: its string content, or its `text` parts joined
    /// with newlines. `None` when there is no user message or its text is blank.
    pub fn user_text(&self) -> Option<String> {
        let message = self.messages.iter().rev().find(|m| m["role"] == "user")?;
        match &message["content"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => Some(
                parts
                    .iter()
                    .filter(|p| p["type"] == "text")
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        }
        .filter(|s| !s.trim().is_empty())
    }
}
