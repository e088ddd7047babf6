//! `POST /v1/publish`: external agents (any language) publish run events for a user.

use agentwire_core::{ErrorCode, EventKind, RunEvent, RunId, ThreadId};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, error};
use crate::{ApiError, AppState, Publisher};

/// The longest accepted agent name, in bytes.
const MAX_AGENT_LEN: usize = 64;

/// The event types `/v1/publish` accepts (docs/protocol.md).
const EVENT_TYPES: [&str; 7] = [
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_message_delta",
    "agent_completed",
    "agent_error",
];

/// The body of `POST /v1/publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Publish {
    user_id: String,
    run_id: String,
    thread_id: String,
    agent: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "empty_object")]
    data: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// Publishes one event of an external run to `user_id`'s stream: `{seq}`. The server API key
/// (`api_key`) authenticates the caller; the run grammar is enforced per `(user_id, run_id)`
/// (409 `out_of_grammar` otherwise). Each target user's stream takes at most
/// `limits.publish_per_second` events (429 `rate_limited` with `Retry-After` over it). Without a
/// configured key the route does not exist (404).
pub(crate) async fn publish(
    State(state): State<AppState>,
    _: Publisher,
    body: Result<JsonBody<Publish>, ApiError>,
) -> Result<Response, ApiError> {
    let JsonBody(body) = body?;
    let user = crate::user_id(&body.user_id)
        .map_err(|e| error(ErrorCode::InvalidField, format!("user_id: {e}")))?;
    let run_id = RunId::new(body.run_id)
        .map_err(|e| error(ErrorCode::InvalidField, format!("run_id: {e}")))?;
    let thread_id = ThreadId::new(body.thread_id)
        .map_err(|e| error(ErrorCode::InvalidField, format!("thread_id: {e}")))?;
    if body.agent.trim().is_empty() || body.agent.len() > MAX_AGENT_LEN {
        return Err(error(
            ErrorCode::InvalidField,
            format!("agent must be 1 to {MAX_AGENT_LEN} bytes"),
        ));
    }
    if !EVENT_TYPES.contains(&body.kind.as_str()) {
        return Err(error(
            ErrorCode::UnknownType,
            format!(
                "unknown event type {:?}; use one of {}",
                body.kind.chars().take(64).collect::<String>(),
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    let kind = EventKind::from_parts(&body.kind, body.data).map_err(|e| {
        error(
            ErrorCode::InvalidField,
            format!("data of {}: {e}", body.kind),
        )
    })?;
    if state.ready().executor().factory().owns_run(&user, &run_id) {
        return Err(error(
            ErrorCode::OutOfGrammar,
            format!("run {run_id} is driven by an agent of this server; publish with a new run_id"),
        ));
    }
    if let Err(limited) = state.http_limits().publish(&user) {
        return Ok(limited.into_response());
    }
    let event = RunEvent::now(run_id, thread_id, body.agent.into(), kind);
    let seq = state
        .external_runs()
        .publish(&user, event)
        .await
        .map_err(|e| error(e.code(), e.to_string()))?;
    Ok(Json(json!({ "seq": seq })).into_response())
}
