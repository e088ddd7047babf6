//! `GET /v1/stream`: the user's stream as server-sent events, resumable with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentwire_bridge::{AgentWebSocketBridge, Batch, ConnectionQueue, ResumeFrom};
use agentwire_core::{
    CloseCode, ConnectionEstablished, ConnectionId, ControlFrame, ErrorCode, Frame, FrameError,
    UserId, WebSocketSink,
};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;

use super::{error, refuse_if_draining};
use crate::limits::{ApiUser, StreamSlot};
use crate::{ApiError, AppState};

/// How often an idle SSE stream gets a keepalive comment.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);

/// Frames taken from the queue at once.
const BATCH: usize = 256;

/// Query of `/v1/stream`.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    last_seq: Option<u64>,
    epoch: Option<String>,
}

/// Detaches the connection and drops its queue when the response stream is dropped (the client
/// went away, or the stream ended).
pub(crate) struct Attached {
    pub(crate) bridge: AgentWebSocketBridge,
    pub(crate) user: UserId,
    pub(crate) connection_id: ConnectionId,
    pub(crate) queue: Arc<ConnectionQueue>,
    /// The user's slot of `limits.max_http_streams_per_user`.
    pub(crate) _slot: StreamSlot,
    /// Fires when the request's credentials expire; `None` when they do not.
    expiry: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Attached {
    /// Ends the stream when `expires_at` passes (see [`Self::next_batch`]).
    pub(crate) fn expire_at(&mut self, expires_at: Option<SystemTime>) {
        self.expiry = expires_at.map(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            Box::pin(tokio::time::sleep(left))
        });
    }

    /// The queue's next frames, or its close; when the credentials expire first, the queue is
    /// closed with 4001 (dropping the events still queued: they stay in history for the
    /// reconnect) and that close is returned.
    pub(crate) async fn next_batch(&mut self, batch: &mut Vec<Frame>, max: usize) -> Batch {
        if let Some(timer) = &mut self.expiry {
            tokio::select! {
                biased;
                () = timer.as_mut() => {
                    self.expiry = None;
                    metrics::counter!("agentwire_connection_closes_total", "reason" => "token_expired")
                        .increment(1);
                    self.queue.close(
                        CloseCode::TOKEN_EXPIRED,
                        "token expired: reconnect with a fresh token and Last-Event-ID",
                    );
                }
                batch = self.queue.next_batch(batch, max) => return batch,
            }
        }
        self.queue.next_batch(batch, max).await
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.queue.mark_gone();
        // Detaching ends the broker subscription, which is async; the guard may be dropped
        // outside a task, so it is done on the runtime.
        let (bridge, user, id) = (self.bridge.clone(), self.user.clone(), self.connection_id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { bridge.detach(&user, id).await });
        }
    }
}

/// The resume point of a request: `Last-Event-ID` (as an SSE client sends it on reconnect) or
/// `?last_seq=`, with `?epoch=`.
pub(crate) fn resume_point(
    headers: &HeaderMap,
    last_seq: Option<u64>,
    epoch: Option<String>,
) -> Result<Option<ResumeFrom>, ApiError> {
    let header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    error(
                        ErrorCode::InvalidField,
                        "Last-Event-ID must be a seq (an unsigned integer)",
                    )
                })
        })
        .transpose()?;
    Ok(header
        .or(last_seq)
        .map(|last_seq| ResumeFrom { last_seq, epoch }))
}

/// Attaches a queue for `user`, resuming from `resume`; a resume point ahead of the stream head
/// starts live and returns the error to tell the client. The stream takes one of the user's
/// `limits.max_http_streams_per_user` (429 `too_many_streams` when none is left).
pub(crate) async fn attach(
    state: &AppState,
    user: &UserId,
    resume: Option<ResumeFrom>,
) -> Result<(Attached, agentwire_bridge::Attachment, Option<FrameError>), ApiError> {
    let slot = state.http_limits().open_stream(user)?;
    let queue = Arc::new(
        state
            .ready()
            .bridge()
            .connection_queue(state.ready().config().limits.queue_bytes),
    );
    let bridge = state.ready().bridge().clone();
    let (attachment, ahead) = bridge
        .attach_or_live(user, queue.clone(), resume)
        .await
        .map_err(|e| error(e.code(), e.to_string()))?;
    let warning = ahead.map(agentwire_ws::resume_ahead_warning);
    let guard = Attached {
        bridge,
        user: user.clone(),
        connection_id: attachment.connection_id,
        queue,
        expiry: None,
        _slot: slot,
    };
    Ok((guard, attachment, warning))
}

/// The SSE stream: first `connection_established` (as on `/ws`), then the user's events with
/// `id:` = seq (`replay_gap` and other control frames have no id), a keepalive comment every
/// 15 s. When the server closes the stream (slow consumer, shutdown, the token's expiry) a last
/// event named `close` says why; reconnect with `Last-Event-ID` to resume.
pub(crate) async fn stream(
    State(state): State<AppState>,
    ApiUser(identity): ApiUser,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| error(ErrorCode::InvalidField, e.body_text()))?;
    refuse_if_draining(&state)?;
    let resume = resume_point(&headers, query.last_seq, query.epoch)?;
    let user = identity.user;
    let (mut guard, attachment, warning) = attach(&state, &user, resume).await?;
    guard.expire_at(identity.expires_at);
    let heartbeat = state.ready().config().heartbeat.interval;
    let mut hello = ConnectionEstablished::new(
        attachment.connection_id,
        user.clone(),
        attachment.epoch.clone(),
        attachment.last_seq,
        heartbeat.as_millis() as u64,
    );
    hello.resumed = attachment.resumed;
    hello.expires_in_ms = identity.expires_at.map(|at| {
        at.duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_millis() as u64
    });
    let mut first = VecDeque::new();
    first.push_back(frame_event(
        &ControlFrame::ConnectionEstablished { data: &hello }.to_frame(),
    ));
    if let Some(w) = warning {
        first.push_back(frame_event(&w.to_frame()));
    }
    let events = sse_frames(guard, first);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive"))
        .into_response())
}

/// One frame as an SSE event: `id:` = seq for events, none for control frames.
fn frame_event(frame: &Frame) -> Event {
    let event = Event::default().data(frame.as_str());
    if frame.seq() > 0 {
        event.id(frame.seq().to_string())
    } else {
        event
    }
}

struct Pump {
    guard: Attached,
    pending: VecDeque<Event>,
    batch: Vec<Frame>,
    done: bool,
}

fn sse_frames(
    guard: Attached,
    first: VecDeque<Event>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let pump = Pump {
        guard,
        pending: first,
        batch: Vec::with_capacity(BATCH),
        done: false,
    };
    futures_util::stream::unfold(pump, |mut p| async move {
        loop {
            if let Some(event) = p.pending.pop_front() {
                return Some((Ok(event), p));
            }
            if p.done {
                return None;
            }
            match p.guard.next_batch(&mut p.batch, BATCH).await {
                Batch::Frames => p.pending.extend(p.batch.drain(..).map(|f| frame_event(&f))),
                Batch::Close(code, reason) => {
                    let data = serde_json::json!({ "code": code.0, "reason": reason });
                    p.pending
                        .push_back(Event::default().event("close").data(data.to_string()));
                    p.done = true;
                }
            }
        }
    })
}
