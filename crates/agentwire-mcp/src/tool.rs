//! `McpTool`: one tool of an MCP server as an agentwire [`Tool`].

use std::sync::Arc;

use agentwire_agent_registry::{Tool, ToolCall, async_trait};
use futures_util::{FutureExt, StreamExt};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, CancelledNotificationParam, ClientRequest,
    ProgressNotificationParam, Request, RequestId, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use rmcp::{Peer, RoleClient, ServiceError};
use serde_json::{Map, Value, json};

use crate::McpToolSpec;
use crate::server::Shared;

/// A tool of an MCP server, called `mcp:<server>/<tool>`.
///
/// A call is one `tools/call` request:
/// - the result's text, structured content and other content goes into the call's result (see
///   [`describe_result`]); `isError` makes the call fail with the tool's text;
/// - the server's `timeout` ends the call with an error and sends `notifications/cancelled`;
///   so does dropping the call's future (the run was cancelled or timed out);
/// - progress notifications become `agent_thinking` lines of the call (through
///   [`ToolCall::progress`], when called by a run);
/// - a server that is down fails the call at once, and a call in flight when the server's
///   connection ends fails.
#[derive(Clone)]
pub struct McpTool {
    shared: Arc<Shared>,
    spec: Arc<McpToolSpec>,
}

impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTool")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl McpTool {
    pub(crate) fn new(shared: Arc<Shared>, spec: Arc<McpToolSpec>) -> Self {
        Self { shared, spec }
    }

    /// Its name, description and input schema as the server listed them.
    pub fn spec(&self) -> &McpToolSpec {
        &self.spec
    }

    /// The JSON Schema of its arguments.
    pub fn input_schema(&self) -> &Value {
        &self.spec.input_schema
    }

    async fn invoke(&self, args: Value, call: Option<&ToolCall<'_>>) -> Result<Value, String> {
        let arguments = match args {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(format!(
                    "the arguments of {} must be a JSON object, got {other}",
                    self.spec.name
                ));
            }
        };
        let peer = self.shared.peer()?;
        let request = ClientRequest::CallToolRequest(Request::new(
            CallToolRequestParams::new(self.spec.remote_name.clone()).with_arguments(arguments),
        ));
        let timeout = self.shared.config.timeout;
        let handle = peer
            .send_cancellable_request(request, PeerRequestOptions::with_timeout(timeout))
            .await
            .map_err(|e| self.failure(e))?;
        let mut progress = self
            .shared
            .progress
            .subscribe(handle.progress_token.clone())
            .await;
        let mut abandoned = CancelOnDrop {
            peer: Some(peer),
            id: handle.id.clone(),
        };
        // On its own timeout `await_response` sends notifications/cancelled itself.
        let response = handle.await_response();
        tokio::pin!(response);
        let mut progress_open = true;
        let outcome = loop {
            tokio::select! {
                outcome = &mut response => break outcome,
                // Always drained: an unread subscription would stall the connection's loop.
                update = progress.next(), if progress_open => match update {
                    Some(update) => {
                        if let Some(call) = call {
                            // A progress line the run cannot publish any more is not the call's failure.
                            let _ = call.progress(progress_line(call, &update)).await;
                        }
                    }
                    None => progress_open = false,
                },
            }
        };
        abandoned.peer = None;
        // rmcp hands each notification to a task of its own, so the last progress report, sent
        // just before the result, may still be on its way: give those tasks a few turns and
        // publish what arrived. Best effort — a report later than that is dropped, never
        // published after the call's tool_completed.
        for _ in 0..4 {
            tokio::task::yield_now().await;
            while let Some(Some(update)) = progress.next().now_or_never() {
                if let Some(call) = call {
                    let _ = call.progress(progress_line(call, &update)).await;
                }
            }
        }
        match outcome.map_err(|e| self.failure(e))? {
            ServerResult::CallToolResult(result) => self.outcome(result),
            other => Err(format!(
                "{} answered tools/call with something else than a result: {}",
                self.spec.name,
                serde_json::to_string(&other).unwrap_or_default()
            )),
        }
    }

    fn outcome(&self, result: CallToolResult) -> Result<Value, String> {
        let failed = result.is_error == Some(true);
        let described = describe_result(&result);
        if failed {
            let text = described["text"].as_str().unwrap_or_default();
            Err(if text.is_empty() {
                format!("{} reported an error without a message", self.spec.name)
            } else {
                text.to_owned()
            })
        } else {
            Ok(described)
        }
    }

    fn failure(&self, e: ServiceError) -> String {
        let name = &self.spec.name;
        match e {
            ServiceError::Timeout { timeout } => {
                format!("{name} did not answer within {timeout:?}; the call was cancelled")
            }
            ServiceError::TransportClosed => format!(
                "MCP server {} closed the connection during the call; it is being restarted",
                self.shared.name
            ),
            ServiceError::TransportSend(e) => {
                format!("MCP server {} could not be reached: {e}", self.shared.name)
            }
            ServiceError::McpError(e) => format!("{name} failed: {}", e.message),
            other => format!("{name} failed: {other}"),
        }
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn description(&self) -> &str {
        &self.spec.description
    }

    fn parameters(&self) -> Value {
        self.input_schema().clone()
    }

    async fn call(&self, args: Value) -> Result<Value, String> {
        self.invoke(args, None).await
    }

    async fn call_in_run(&self, args: Value, call: &ToolCall<'_>) -> Result<Value, String> {
        self.invoke(args, Some(call)).await
    }
}

/// Sends `notifications/cancelled` for a request whose caller stopped waiting (its future was
/// dropped) before the answer came.
struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    id: RequestId,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(peer) = self.peer.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let notice = CancelledNotificationParam::new(
            Some(self.id.clone()),
            Some("the agentwire run was cancelled".into()),
        );
        runtime.spawn(async move {
            let _ = peer.notify_cancelled(notice).await;
        });
    }
}

/// `mcp:files/index (c_2): 3/10 indexing docs/`
fn progress_line(call: &ToolCall<'_>, update: &ProgressNotificationParam) -> String {
    let mut line = format!("{} ({}): {}", call.tool(), call.call_id(), update.progress);
    if let Some(total) = update.total {
        line.push_str(&format!("/{total}"));
    }
    if let Some(message) = update.message.as_deref().filter(|m| !m.is_empty()) {
        line.push(' ');
        line.push_str(message);
    }
    line
}

/// A `tools/call` result as the call's JSON result:
///
/// ```json
/// {"text": "all text blocks, joined by newlines",
///  "content": [{"type": "text", "text": "…"}, {"type": "image", "mimeType": "image/png", "bytes": 1432}],
///  "structured": {"…": "the structuredContent, when the server gave one"}}
/// ```
///
/// Every content block is kept in `content`, in order. Binary data (images, audio, blob
/// resources) is described by its type, MIME type and size instead of carried in base64, so a
/// screenshot does not fill the user's event history; text and links are kept whole.
pub fn describe_result(result: &CallToolResult) -> Value {
    let mut texts = Vec::new();
    let content: Vec<Value> = result
        .content
        .iter()
        .map(|block| {
            let mut block = serde_json::to_value(block).unwrap_or(Value::Null);
            if block["type"] == "text"
                && let Some(text) = block["text"].as_str()
            {
                texts.push(text.to_owned());
            }
            describe_binary(&mut block);
            if let Some(resource) = block.get_mut("resource") {
                describe_binary(resource);
            }
            block
        })
        .collect();
    let mut out = Map::new();
    out.insert("text".into(), json!(texts.join("\n")));
    out.insert("content".into(), Value::Array(content));
    if let Some(structured) = &result.structured_content {
        out.insert("structured".into(), structured.clone());
    }
    Value::Object(out)
}

/// Replaces base64 `data` / `blob` with its decoded size in `bytes`.
fn describe_binary(block: &mut Value) {
    let Some(object) = block.as_object_mut() else {
        return;
    };
    for key in ["data", "blob"] {
        if let Some(Value::String(encoded)) = object.remove(key) {
            let padding = encoded.bytes().rev().take_while(|b| *b == b'=').count();
            let bytes = (encoded.len() / 4 * 3).saturating_sub(padding);
            object.insert("bytes".into(), json!(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::ContentBlock;

    use super::*;

    #[test]
    fn text_structured_and_binary_content_are_all_described() {
        let mut result = CallToolResult::success(vec![
            ContentBlock::text("first"),
            ContentBlock::image("aGVsbG8=", "image/png"),
            ContentBlock::text("second"),
        ]);
        result.structured_content = Some(json!({"sum": 3}));
        let described = describe_result(&result);
        assert_eq!(described["text"], "first\nsecond");
        assert_eq!(described["structured"], json!({"sum": 3}));
        let image = &described["content"][1];
        assert_eq!(image["type"], "image");
        assert_eq!(image["mimeType"], "image/png");
        assert_eq!(image["bytes"], 5);
        assert!(image.get("data").is_none());
    }
}
