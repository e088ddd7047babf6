//! `POST /v1/runs` and `POST /v1/runs/{run_id}/cancel`.

use agentwire_core::{ErrorCode, RunId, ThreadId, UserContext};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{JsonBody, error, refuse_if_draining};
use crate::limits::ApiUser;
use crate::{ApiError, AppState};
use agentwire_auth::Identity;

/// The body of `POST /v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRun {
    /// Like `user_message.agent` on `/ws`: `demo` when absent.
    #[serde(default = "default_agent")]
    agent: String,
    content: String,
    #[serde(default)]
    thread_id: Option<ThreadId>,
}

fn default_agent() -> String {
    agentwire_core::DEFAULT_AGENT.to_owned()
}

/// Starts a run for the authenticated user: 202 `{run_id, thread_id}`; its events follow on the
/// user's stream (`/ws`, `/v1/stream`, `/v1/events`). 202 means the run was accepted: the
/// user's stream exists (503 `unavailable` when `limits.max_users` streams are held) and the run
/// is registered (429 `too_many_runs` over `limits.max_runs_per_user`).
pub(crate) async fn start(
    State(state): State<AppState>,
    ApiUser(Identity { user, .. }): ApiUser,
    body: Result<JsonBody<StartRun>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(body) = body?;
    refuse_if_draining(&state)?;
    if body.content.trim().is_empty() {
        return Err(error(ErrorCode::InvalidField, "content must not be empty"));
    }
    // The stream first: a run whose events would be refused is never answered 202. Content
    // too large for one event (its `agent_started`) is 413 `payload_too_large`.
    state
        .ready()
        .bridge()
        .open_stream(&user)
        .await
        .map_err(super::bridge_error)?;
    let ctx = UserContext::new_run(user, body.thread_id, None);
    let prepared = state
        .ready()
        .executor()
        .prepare(ctx, &body.agent, body.content)
        .map_err(|e| error(e.code(), e.to_string()))?;
    let handle = prepared.handle().clone();
    prepared.spawn();
    let reply = json!({ "run_id": handle.run_id, "thread_id": handle.thread_id });
    Ok((StatusCode::ACCEPTED, Json(reply)).into_response())
}

/// Cancels one of the user's runs: 202 `{run_id}`; the run ends with
/// `agent_error {code:"cancelled"}`. Another user's run is 404 `run_not_found`, like no run.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    ApiUser(Identity { user, .. }): ApiUser,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || {
        error(
            ErrorCode::RunNotFound,
            format!("no run {run_id} of yours is in progress"),
        )
    };
    let run = RunId::new(run_id.as_str()).map_err(|_| not_found())?;
    state
        .ready()
        .executor()
        .factory()
        .cancel(&user, &run)
        .map_err(|e| match e.code() {
            ErrorCode::RunNotFound => not_found(),
            code => error(code, e.to_string()),
        })?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "run_id": run }))).into_response())
}
