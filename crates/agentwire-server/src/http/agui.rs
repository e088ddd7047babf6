//! `POST /agui/{agent}`: the AG-UI protocol, wired. Takes a `RunAgentInput`, runs the agent for
//! the authenticated user and answers `text/event-stream` with what `agentwire-agui` maps the
//! run to (see `docs/ag-ui.md`).

use std::collections::VecDeque;
use std::convert::Infallible;

use agentwire_agui::{AguiMapper, AguiRun, RunAgentInput};
use agentwire_bridge::{Batch, ResumeFrom};
use agentwire_core::{CloseCode, ErrorCode, Frame, RunId, ThreadId, UserContext, UserId};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::Value;

use super::stream::{Attached, KEEPALIVE, attach, resume_point};
use super::{JsonBody, error, refuse_if_draining};
use crate::limits::ApiUser;
use crate::{ApiError, AppState};

/// Starts `agent` for the user with the last user message and streams the run as AG-UI events.
pub(crate) async fn run(
    State(state): State<AppState>,
    ApiUser(identity): ApiUser,
    headers: HeaderMap,
    Path(agent): Path<String>,
    body: Result<JsonBody<RunAgentInput>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(input) = body?;
    refuse_if_draining(&state)?;
    let (user, expires_at) = (identity.user, identity.expires_at);
    let content = input.user_text().ok_or_else(|| {
        error(
            ErrorCode::InvalidField,
            "messages must hold a user message with text content",
        )
    })?;
    let resume = resume_point(&headers, None, None)?;
    if let Some(from) = resume {
        return resume_run(&state, &user, expires_at, input, from.last_seq).await;
    }
    // The AG-UI ids are kept for the AG-UI events; agentwire uses them too when they are valid
    // agentwire ids, so `/ws` and `/v1/events` show the same run (and a resume can find it).
    let thread_id =
        ThreadId::new(input.thread_id.as_str()).unwrap_or_else(|_| ThreadId::generate());
    let factory = state.ready().executor().factory();
    let run_id = RunId::new(input.run_id.as_str())
        .ok()
        .filter(|r| !factory.owns_run(&user, r))
        .unwrap_or_else(RunId::generate);
    let ctx = UserContext {
        user_id: user.clone(),
        thread_id,
        run_id: run_id.clone(),
        request_id: None,
    };
    // Attach before the run is registered: a stream that cannot open (the user's stream cap,
    // `limits.max_users`) refuses the request before any run exists, and no event of the run
    // is missed.
    let (mut guard, _, _) = attach(&state, &user, None).await?;
    guard.expire_at(expires_at);
    let prepared = state
        .ready()
        .executor()
        .prepare(ctx, &agent, content)
        .map_err(|e| error(e.code(), e.to_string()))?;
    prepared.spawn();
    let run = AguiRun::new(run_id, AguiMapper::new(input.thread_id, input.run_id));
    Ok(sse(agui_events(guard, run)))
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive"))
        .into_response()
}

/// A reconnect (`Last-Event-ID: <seq>` with the same `RunAgentInput`): no new run starts; the
/// AG-UI events of the run after that seq follow, then live ones. The mapper's state is rebuilt
/// from the run's events up to the seq, so open steps and messages continue correctly.
async fn resume_run(
    state: &AppState,
    user: &UserId,
    expires_at: Option<std::time::SystemTime>,
    input: RunAgentInput,
    last_seq: u64,
) -> Result<Response, ApiError> {
    let not_found = || {
        error(
            ErrorCode::RunNotFound,
            format!(
                "no run {} of yours is in the stream's history to resume",
                input.run_id
            ),
        )
    };
    let run_id = RunId::new(input.run_id.as_str()).map_err(|_| not_found())?;
    let limit = usize::try_from(last_seq).unwrap_or(usize::MAX);
    let page = state
        .ready()
        .bridge()
        .history_after(user, 0, None, limit)
        .await
        .map_err(super::bridge_error)?;
    let mut run = AguiRun::new(
        run_id,
        AguiMapper::new(input.thread_id.clone(), input.run_id.clone()),
    );
    for frame in page.frames.iter().filter(|f| f.seq() <= last_seq) {
        run.frame(frame); // what the client already has: rebuilds the mapper's state
    }
    if !run.has_started() {
        return Err(not_found());
    }
    if run.is_finished() {
        // The client saw the whole run: an empty stream that ends at once.
        return Ok(sse(futures_util::stream::empty()));
    }
    let from = ResumeFrom {
        last_seq,
        epoch: None,
    };
    let (mut guard, _, _) = attach(state, user, Some(from)).await?;
    guard.expire_at(expires_at);
    Ok(sse(agui_events(guard, run)))
}

/// The SSE side of one AG-UI run: the user's queue in, the run's AG-UI events out.
struct Pump {
    guard: Attached,
    run: AguiRun,
    pending: VecDeque<Event>,
    batch: Vec<Frame>,
    done: bool,
}

fn agui_events(
    guard: Attached,
    run: AguiRun,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let pump = Pump {
        guard,
        run,
        pending: VecDeque::new(),
        batch: Vec::with_capacity(64),
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
            match p.guard.next_batch(&mut p.batch, 64).await {
                Batch::Frames => {
                    for frame in p.batch.drain(..) {
                        let mapped = p.run.frame(&frame);
                        push_group(&mut p.pending, mapped, frame.seq());
                    }
                    p.done = p.run.is_finished();
                }
                // The run goes on: the stream just ends, without a terminal event, and the
                // client resumes it with a fresh token and `Last-Event-ID`.
                Batch::Close(CloseCode::TOKEN_EXPIRED, _) => p.done = true,
                Batch::Close(_, reason) => {
                    let mapped = p.run.interrupted(&format!(
                        "the event stream was closed before the run ended: {reason}"
                    ));
                    push_group(&mut p.pending, mapped, 0);
                    p.done = true;
                }
            }
        }
    })
}

/// Queues the AG-UI events made from one agentwire event; the last carries `id:` = its seq, so a
/// client that reconnects with `Last-Event-ID` never skips part of a group.
fn push_group(pending: &mut VecDeque<Event>, mapped: Vec<Value>, seq: u64) {
    let n = mapped.len();
    for (i, value) in mapped.into_iter().enumerate() {
        let event = Event::default().data(value.to_string());
        pending.push_back(if i + 1 == n && seq > 0 {
            event.id(seq.to_string())
        } else {
            event
        });
    }
}
