//! `TurnBuilder`: assembles one model turn from its streamed chunks — text, reasoning, tool calls
//! whose id, name and argument fragments arrive in pieces by `index`, the finish reason, usage.

use std::collections::BTreeMap;

use crate::LlmError;
use crate::wire::{ChatChunk, ChunkUsage, FunctionCall, ToolCall};

/// A piece of a turn to publish as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Answer text (`agent_message_delta`).
    Text(String),
    /// Reasoning text (`agent_thinking`).
    Reasoning(String),
}

/// How a complete turn ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TurnEnd {
    /// The model answered; the run is done.
    Answer(String),
    /// The model called tools (and maybe said something first).
    ToolCalls {
        text: Option<String>,
        calls: Vec<ToolCall>,
    },
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// The state of one turn while its chunks stream in.
#[derive(Debug, Default)]
pub(crate) struct TurnBuilder {
    text: String,
    calls: BTreeMap<usize, PartialCall>,
    finish_reason: Option<String>,
    usage: Option<ChunkUsage>,
    model: Option<String>,
}

/// Servers differ: most send a call's id and name once, some repeat them in every fragment,
/// a few split them. A piece that extends what we have replaces it; any other is appended.
fn merge(field: &mut String, piece: &str) {
    if piece.starts_with(field.as_str()) {
        field.clear();
    }
    field.push_str(piece);
}

impl TurnBuilder {
    /// Takes one chunk in; returns what to publish now.
    pub(crate) fn absorb(&mut self, chunk: ChatChunk) -> Vec<Piece> {
        let mut pieces = Vec::new();
        if chunk.model.as_deref().is_some_and(|m| !m.is_empty()) {
            self.model = chunk.model;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        // `n` is never above 1 in our requests: every choice is the one choice.
        for choice in chunk.choices {
            let delta = choice.delta;
            if let Some(reasoning) = delta.reasoning_content.or(delta.reasoning)
                && !reasoning.is_empty()
            {
                pieces.push(Piece::Reasoning(reasoning));
            }
            if let Some(text) = delta.content
                && !text.is_empty()
            {
                self.text.push_str(&text);
                pieces.push(Piece::Text(text));
            }
            for fragment in delta.tool_calls {
                let call = self.calls.entry(fragment.index).or_default();
                if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
                    merge(&mut call.id, &id);
                }
                if let Some(function) = fragment.function {
                    if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                        merge(&mut call.name, &name);
                    }
                    if let Some(arguments) = function.arguments {
                        call.arguments.push_str(&arguments);
                    }
                }
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.finish_reason = Some(reason);
            }
        }
        pieces
    }

    /// The model that answered, when the server said.
    pub(crate) fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Token usage, when the server sent it (`stream_options.include_usage`).
    pub(crate) fn usage(&self) -> Option<ChunkUsage> {
        self.usage
    }

    /// The turn once its stream ended.
    ///
    /// # Errors
    /// [`LlmError::Protocol`] when no chunk carried a `finish_reason`, or a tool call has no name.
    pub(crate) fn finish(self, chunks: usize) -> Result<TurnEnd, LlmError> {
        if self.finish_reason.is_none() {
            return Err(LlmError::Protocol(format!(
                "the stream ended without a finish_reason after {chunks} chunk(s) and {} byte(s) of text",
                self.text.len()
            )));
        }
        if self.calls.is_empty() {
            return Ok(TurnEnd::Answer(self.text));
        }
        let mut calls = Vec::with_capacity(self.calls.len());
        for (index, call) in self.calls {
            if call.name.is_empty() {
                return Err(LlmError::Protocol(format!(
                    "tool call at index {index} has no function name"
                )));
            }
            calls.push(ToolCall {
                id: call.id,
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name,
                    arguments: call.arguments,
                },
            });
        }
        Ok(TurnEnd::ToolCalls {
            text: (!self.text.is_empty()).then_some(self.text),
            calls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(json: serde_json::Value) -> ChatChunk {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn assembles_interleaved_tool_call_fragments_by_index() {
        let mut turn = TurnBuilder::default();
        let parts = [
            serde_json::json!({"choices":[{"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"calculator","arguments":""}}]}}]}),
            serde_json::json!({"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"clock","arguments":"{"}}]}}]}),
            serde_json::json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"expr"}}]}}]}),
            serde_json::json!({"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"}"}}]}}]}),
            serde_json::json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ession\":\"2+2\"}"}}]}}]}),
            serde_json::json!({"choices":[{"delta":{},"finish_reason":"tool_calls"}]}),
            serde_json::json!({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}),
        ];
        for p in parts {
            assert!(turn.absorb(chunk(p)).is_empty());
        }
        assert_eq!(turn.usage().unwrap().prompt_tokens, 7);
        let TurnEnd::ToolCalls { text, calls } = turn.finish(7).unwrap() else {
            panic!("tool calls expected")
        };
        assert_eq!(text, None);
        assert_eq!(calls[0].id, "call_a");
        assert_eq!(calls[0].function.arguments, r#"{"expression":"2+2"}"#);
        assert_eq!(calls[1].function.name, "clock");
        assert_eq!(calls[1].function.arguments, "{}");
    }

    #[test]
    fn reasoning_and_text_are_pieces_and_extra_fields_are_ignored() {
        let mut turn = TurnBuilder::default();
        let pieces = turn.absorb(chunk(serde_json::json!({
            "id": "x", "system_fingerprint": "fp", "model": "m1",
            "choices":[{"index":0,"logprobs":null,"delta":{"reasoning_content":"hmm","content":"Hi"}}]
        })));
        assert_eq!(
            pieces,
            vec![Piece::Reasoning("hmm".into()), Piece::Text("Hi".into())]
        );
        let pieces = turn.absorb(chunk(serde_json::json!({
            "choices":[{"delta":{"reasoning":"so"},"finish_reason":"stop"}]
        })));
        assert_eq!(pieces, vec![Piece::Reasoning("so".into())]);
        assert_eq!(turn.model(), Some("m1"));
        assert_eq!(turn.finish(2).unwrap(), TurnEnd::Answer("Hi".into()));
    }

    #[test]
    fn a_stream_without_finish_reason_is_a_protocol_error() {
        let mut turn = TurnBuilder::default();
        turn.absorb(chunk(
            serde_json::json!({"choices":[{"delta":{"content":"Hel"}}]}),
        ));
        let e = turn.finish(1).unwrap_err();
        assert_eq!(e.code(), "llm_protocol");
        assert!(e.to_string().contains("without a finish_reason"), "{e}");
    }

    #[test]
    fn repeated_ids_are_not_doubled() {
        let mut turn = TurnBuilder::default();
        for args in ["{\"a\"", ":1}"] {
            turn.absorb(chunk(
                serde_json::json!({"choices":[{"delta":{"tool_calls":[
                {"index":0,"id":"c1","function":{"name":"echo","arguments":args}}]}}]}),
            ));
        }
        turn.absorb(chunk(
            serde_json::json!({"choices":[{"delta":{},"finish_reason":"stop"}]}),
        ));
        let TurnEnd::ToolCalls { calls, .. } = turn.finish(3).unwrap() else {
            panic!()
        };
        assert_eq!(
            (calls[0].id.as_str(), calls[0].function.name.as_str()),
            ("c1", "echo")
        );
        assert_eq!(calls[0].function.arguments, "{\"a\":1}");
    }
}
