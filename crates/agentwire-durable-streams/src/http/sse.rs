//! `GET ?live=sse` (§5.8): `data` events each followed by a `control` event, until the stream
//! closes, the response's lifetime ends, or the caller's credentials expire.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::time::Instant;

use super::*;
use crate::model::{ReadChunk, ReadRequest};
use crate::offset::{ReadFrom, next_cursor};

struct Tail {
    ds: DurableStreams,
    path: String,
    read: ReadRequest,
    /// The first read, done before the response started (so errors are HTTP statuses).
    pending: Option<ReadChunk>,
    cursor: Option<String>,
    /// A control event with `upToDate` was sent for the current position.
    announced: bool,
    deadline: Instant,
    done: bool,
}

pub(super) fn respond(
    ds: DurableStreams,
    path: String,
    read: ReadRequest,
    first: ReadChunk,
    cursor: Option<String>,
    expires_at: Option<std::time::SystemTime>,
) -> Response {
    let binary = !first.info.config.is_text();
    let mut deadline = Instant::now() + ds.config.sse_lifetime;
    if let Some(at) = expires_at {
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        deadline = deadline.min(Instant::now() + left);
    }
    let tail = Tail {
        ds,
        path,
        read,
        pending: Some(first),
        cursor,
        announced: false,
        deadline,
        done: false,
    };
    let events = futures_util::stream::unfold(tail, move |mut tail| async move {
        let bytes = tail.next_events(binary).await?;
        Some((Ok::<_, std::convert::Infallible>(bytes), tail))
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    if binary {
        headers.insert(SSE_DATA_ENCODING, HeaderValue::from_static("base64"));
    }
    (StatusCode::OK, headers, Body::from_stream(events)).into_response()
}

impl Tail {
    /// The next events to send, or `None` when the response ends.
    async fn next_events(&mut self, binary: bool) -> Option<Bytes> {
        loop {
            // Checked before every read, not only while idle: a stream that keeps growing
            // ends at its deadline too (the credentials' expiry above all).
            if self.done || Instant::now() >= self.deadline {
                return None;
            }
            let chunk = match self.pending.take() {
                Some(chunk) => chunk,
                None => match self.ds.store.read(&self.path, self.read.clone()).await {
                    Ok(chunk) => chunk,
                    Err(_) => return None, // deleted or expired: end; the reconnect gets the status
                },
            };
            self.read.from = ReadFrom::At(chunk.next);
            let mut out = String::new();
            if !chunk.parts.is_empty() {
                data_event(&mut out, &chunk, binary);
                self.control_event(&mut out, &chunk);
                self.announced = chunk.up_to_date();
                self.done = chunk.at_eof();
                return Some(Bytes::from(out));
            }
            if chunk.info.closed || !self.announced {
                self.control_event(&mut out, &chunk);
                self.announced = true;
                self.done = chunk.info.closed;
                return Some(Bytes::from(out));
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if self
                .ds
                .store
                .wait(&self.path, &self.read.caller, chunk.next, left)
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    fn control_event(&mut self, out: &mut String, chunk: &ReadChunk) {
        let mut control = serde_json::Map::new();
        control.insert("streamNextOffset".into(), chunk.next.token().into());
        if chunk.at_eof() {
            control.insert("streamClosed".into(), true.into());
            control.insert("upToDate".into(), true.into());
        } else {
            let cursor = next_cursor(self.cursor.as_deref());
            control.insert("streamCursor".into(), cursor.clone().into());
            self.cursor = Some(cursor);
            if chunk.up_to_date() {
                control.insert("upToDate".into(), true.into());
            }
        }
        out.push_str("event: control\ndata:");
        out.push_str(&serde_json::Value::Object(control).to_string());
        out.push_str("\n\n");
    }
}

/// One `data` event. Every line of the payload gets its own `data:` line, so a payload can never
/// end the event or inject one (CR, LF and CRLF all split lines in SSE).
fn data_event(out: &mut String, chunk: &ReadChunk, binary: bool) {
    out.push_str("event: data\n");
    let payload = read::body(chunk);
    if binary {
        out.push_str("data:");
        out.push_str(&STANDARD.encode(&payload));
        out.push('\n');
    } else {
        let text = String::from_utf8_lossy(&payload);
        let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        for line in normalized.split('\n') {
            out.push_str("data:");
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
}
