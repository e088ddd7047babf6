//! `GET /v1/events?after=<seq>`: a page of the user's history as JSON, written to the client as
//! it is read from the broker.

use std::convert::Infallible;

use agentwire_bridge::{AgentWebSocketBridge, ReadLimit};
use agentwire_core::{Frame, UserId};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::limits::ApiUser;
use crate::{ApiError, AppState};
use agentwire_auth::Identity;

/// The most events one page holds.
const MAX_PAGE: usize = 1000;
/// What one read from the broker takes while a page is written: the memory a request holds at a
/// time (with hyper's write buffer), whatever the page's size.
const CHUNK_EVENTS: usize = 64;
const CHUNK_BYTES: usize = 64 * 1024;

/// Query of `/v1/events`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: u64,
    epoch: Option<String>,
    limit: Option<usize>,
}

/// `{epoch, head, gap, events, next_after}`: the held events after `after` — at most `limit`
/// (default and maximum 1000) and at most `limits.events_page_bytes` bytes of them (the first
/// event always comes) — in seq order, each in the wire envelope of docs/protocol.md. `gap` names
/// events asked for that history no longer holds; `next_after` is the `after` of the next page.
///
/// The body is streamed: the first read answers errors with a status, then the events are read
/// from the broker a chunk at a time and written as they come, so a page is never held whole and
/// a client that does not read holds at most a chunk. A page ends early, at a consistent point,
/// when what follows cannot join it (history trimmed or the stream reset meanwhile, the broker
/// unavailable): `next_after` says where the next page starts.
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiUser(Identity { user, .. }): ApiUser,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| super::error(agentwire_core::ErrorCode::InvalidField, e.body_text()))?;
    let limit = query.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let page_bytes = state.ready().config().limits.events_page_bytes;
    let bridge = state.ready().bridge().clone();
    let first = bridge
        .history_after(
            &user,
            query.after,
            query.epoch.as_deref(),
            chunk(limit, page_bytes),
        )
        .await
        .map_err(super::bridge_error)?;
    // The stored frames are already the wire JSON: they are spliced into the body as they are
    // (no parse and re-serialize, and the same key order as on `/ws`).
    let opening = json!({ "epoch": first.epoch, "head": first.head, "gap": first.gap }).to_string();
    let next_after = first.gap.map_or(query.after.min(first.head), |g| g.to_seq);
    let page = Page {
        bridge,
        user,
        cursor: next_after,
        next_after,
        epoch: first.epoch,
        head: first.head,
        events_left: limit,
        bytes_left: page_bytes,
        written: 0,
        opening: Some(format!("{},\"events\":[", &opening[..opening.len() - 1])),
        pending: Some(first.frames),
        finished: false,
    };
    let body = futures_util::stream::unfold(page, |mut page| async move {
        let bytes = page.step().await?;
        Some((Ok::<_, Infallible>(bytes), page))
    });
    Ok((
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// One broker read of at most a chunk within what is left of the page.
fn chunk(events_left: usize, bytes_left: usize) -> ReadLimit {
    ReadLimit::events(events_left.min(CHUNK_EVENTS)).bytes(bytes_left.min(CHUNK_BYTES))
}

/// A page being written.
struct Page {
    bridge: AgentWebSocketBridge,
    user: UserId,
    /// The epoch and head of the first read: the page holds only events of that epoch, up to
    /// that head.
    epoch: String,
    head: u64,
    /// The seq the next read starts after.
    cursor: u64,
    next_after: u64,
    events_left: usize,
    bytes_left: usize,
    written: usize,
    /// `{"epoch":…,"head":…,"gap":…,"events":[`, until written.
    opening: Option<String>,
    /// The frames of the first read, until written.
    pending: Option<Vec<Frame>>,
    finished: bool,
}

impl Page {
    /// The next piece of the body: the opening with the first frames, frames of one more read,
    /// or the closing `],"next_after":…}`; `None` once that is written.
    async fn step(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let frames = match self.pending.take() {
            Some(frames) => Some(frames),
            None => self.read().await,
        };
        let mut out = self.opening.take().unwrap_or_default().into_bytes();
        let goes_on =
            frames.is_some_and(|frames| !frames.is_empty() && self.push(&mut out, frames));
        if !goes_on {
            out.extend_from_slice(format!("],\"next_after\":{}}}", self.next_after).as_bytes());
            self.finished = true;
        }
        Some(Bytes::from(out))
    }

    /// The next chunk of the page, or `None` when the page ends here.
    async fn read(&mut self) -> Option<Vec<Frame>> {
        if self.events_left == 0 || self.cursor >= self.head {
            return None;
        }
        let limit = chunk(self.events_left, self.bytes_left);
        let slice = self
            .bridge
            .history_after(&self.user, self.cursor, Some(&self.epoch), limit)
            .await
            .ok()?;
        // Trimmed meanwhile (a gap) or reset (another epoch): the next page says so.
        (slice.epoch == self.epoch && slice.gap.is_none()).then_some(slice.frames)
    }

    /// Writes the frames that fit the page; returns whether more may follow.
    fn push(&mut self, out: &mut Vec<u8>, frames: Vec<Frame>) -> bool {
        for frame in frames {
            let over = self.written > 0 && frame.len() > self.bytes_left;
            if frame.seq() > self.head || self.events_left == 0 || over {
                return false;
            }
            if self.written > 0 {
                out.push(b',');
            }
            out.extend_from_slice(frame.bytes());
            self.written += 1;
            self.events_left -= 1;
            self.bytes_left = self.bytes_left.saturating_sub(frame.len());
            self.cursor = frame.seq();
            self.next_after = frame.seq();
        }
        true
    }
}
