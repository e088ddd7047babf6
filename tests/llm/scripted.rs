//! A scripted OpenAI-compatible server: a real HTTP server on a loopback port that answers
//! `POST /v1/chat/completions` with the next scripted reply, streamed as the real API streams
//! (a role chunk, content chunks, `tool_calls` deltas with `index`/`id`/`name`/`arguments`
//! fragments, a finish chunk, a usage chunk, `data: [DONE]`, `: keep-alive` comments), with the
//! bytes of the body cut at arbitrary positions. It records every request and notices when a
//! client drops a stream.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The model name the server reports in its chunks.
pub(crate) const MODEL: &str = "scripted-1";

/// How a streamed reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// `data: [DONE]` and the end of the body.
    Done,
    /// The connection is dropped in the middle of the body.
    Cut,
    /// The body ends cleanly (no `[DONE]`) after the chunks given.
    Truncated,
    /// The body stays open (keep-alive comments) until the client goes away.
    Hang,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// A streamed completion.
    Stream(Vec<Value>, Ending),
    /// An error status with an optional `Retry-After` and a JSON body.
    Status(u16, Option<&'static str>),
}

#[derive(Default)]
struct Inner {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    disconnected: Notify,
}

/// A running scripted server.
#[derive(Clone)]
pub(crate) struct ScriptedModel {
    /// `http://addr/v1`, the agent's `base_url`.
    pub(crate) base_url: String,
    inner: Arc<Inner>,
}

impl ScriptedModel {
    /// Starts the server with these replies, in order.
    pub(crate) async fn start(replies: Vec<Reply>) -> Self {
        let inner = Arc::new(Inner::default());
        inner.replies.lock().extend(replies);
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/v1/models", get(models))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url: format!("http://{addr}/v1"),
            inner,
        }
    }

    /// Every request body received so far.
    pub(crate) fn requests(&self) -> Vec<Value> {
        self.inner
            .requests
            .lock()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The headers of request `n`.
    pub(crate) fn headers(&self, n: usize) -> HeaderMap {
        self.inner.requests.lock()[n].0.clone()
    }

    /// Replies not used yet.
    pub(crate) fn remaining(&self) -> usize {
        self.inner.replies.lock().len()
    }

    /// Waits until a client dropped a hanging stream.
    pub(crate) async fn disconnected(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.inner.disconnected.notified())
            .await
            .is_ok()
    }
}

async fn models() -> impl IntoResponse {
    axum::Json(json!({"object": "list", "data": [{"id": MODEL, "object": "model"}]}))
}

async fn complete(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.requests.lock().push((headers, request));
    let Some(reply) = inner.replies.lock().pop_front() else {
        return (StatusCode::IM_A_TEAPOT, "the script has no more replies").into_response();
    };
    match reply {
        Reply::Status(status, retry_after) => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                axum::Json(
                    json!({"error": {"message": format!("scripted {status}"), "type": "scripted"}}),
                ),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.parse().unwrap());
            }
            response
        }
        Reply::Stream(chunks, ending) => stream(inner, chunks, ending),
    }
}

/// The SSE body, in pieces cut at arbitrary byte positions.
fn stream(inner: Arc<Inner>, chunks: Vec<Value>, ending: Ending) -> Response {
    let mut text = String::from(": keep-alive\n\n");
    for (i, chunk) in chunks.iter().enumerate() {
        text.push_str(&format!("data: {chunk}\n\n"));
        if i % 3 == 1 {
            text.push_str(": keep-alive\n\n");
        }
    }
    if ending == Ending::Done {
        text.push_str("data: [DONE]\n\n");
    }
    let bytes = text.into_bytes();
    let mut pieces: VecDeque<Result<Bytes, std::io::Error>> = VecDeque::new();
    let (mut at, mut step) = (0, 1);
    while at < bytes.len() {
        let end = (at + step).min(bytes.len());
        pieces.push_back(Ok(Bytes::copy_from_slice(&bytes[at..end])));
        at = end;
        step = step % 17 + 4;
    }
    if ending == Ending::Cut {
        pieces.push_back(Err(std::io::Error::other("scripted cut")));
    }
    let guard = DropGuard(inner);
    let body = futures_util::stream::unfold(
        (pieces, guard, ending),
        |(mut pieces, guard, ending)| async move {
            match pieces.pop_front() {
                Some(piece) => {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    Some((piece, (pieces, guard, ending)))
                }
                None if ending == Ending::Hang => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    pieces.push_back(Ok(Bytes::from_static(b": keep-alive\n\n")));
                    let piece = pieces.pop_front().unwrap();
                    Some((piece, (pieces, guard, ending)))
                }
                None => None,
            }
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

/// Notifies when the body stream is dropped: the client went away (or the body ended).
struct DropGuard(Arc<Inner>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.disconnected.notify_one();
    }
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1,
        "model": MODEL, "system_fingerprint": "fp_scripted",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]
    })
}

fn role() -> Value {
    chunk(json!({"role": "assistant", "content": ""}), None)
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
           "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                    "total_tokens": prompt + completion}})
}

/// `text` in pieces of a few characters (never splitting a character).
pub(crate) fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Content chunks of an answer, with reasoning first.
pub(crate) fn answer_chunks(text: &str, reasoning: Option<&str>) -> Vec<Value> {
    let mut chunks = vec![role()];
    if let Some(r) = reasoning {
        chunks.push(chunk(json!({"reasoning_content": r}), None));
    }
    for p in pieces(text, 3) {
        chunks.push(chunk(json!({"content": p}), None));
    }
    chunks
}

/// A complete streamed answer.
pub(crate) fn answer(text: &str) -> Reply {
    let mut chunks = answer_chunks(text, Some("Let me answer."));
    chunks.push(chunk(json!({}), Some("stop")));
    chunks.push(usage(11, 7));
    Reply::Stream(chunks, Ending::Done)
}

/// A turn that calls tools: `(id, name, arguments)`; the argument text is split at arbitrary
/// character positions and the calls' fragments interleave.
pub(crate) fn tool_calls(calls: &[(&str, &str, &str)]) -> Reply {
    let mut chunks = vec![role()];
    for (index, (id, name, _)) in calls.iter().enumerate() {
        chunks.push(chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
            None,
        ));
    }
    let split: Vec<Vec<String>> = calls
        .iter()
        .enumerate()
        .map(|(i, (_, _, args))| pieces(args, 2 + i * 3))
        .collect();
    let longest = split.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..longest {
        for (index, parts) in split.iter().enumerate() {
            if let Some(part) = parts.get(round) {
                chunks.push(chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}),
                    None,
                ));
            }
        }
    }
    chunks.push(chunk(json!({}), Some("tool_calls")));
    chunks.push(usage(20, 5));
    Reply::Stream(chunks, Ending::Done)
}
