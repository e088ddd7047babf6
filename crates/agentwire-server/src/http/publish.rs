//! `POST /v1/publish`: external agents (any language) publish run events for a user.

use agentwire_core::{ErrorCode, EventKind, RunEvent, RunId, ThreadId};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, error};
use crate::{ApiError, AppState};

/// The longest accepted agent name, in bytes.
const MAX_AGENT_LEN: usize = 64;

/// The event types `/v1/publish` accepts (SPEC §3).
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
/// (409 `out_of_grammar` otherwise). Without a configured key the route does not exist (404).
pub(crate) async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<JsonBody<Publish>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let Some(key) = state.ready().config().api_key.as_deref() else {
        return Err(error(
            ErrorCode::NotFound,
            "no such route: /v1/publish is disabled until api_key (AGENTWIRE_API_KEY) is set",
        ));
    };
    if !bearer_matches(&headers, key) {
        return Err(error(
            ErrorCode::Unauthorized,
            "send the server API key as `Authorization: Bearer <api_key>`",
        ));
    }
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
    let event = RunEvent::now(run_id, thread_id, body.agent.into(), kind);
    let seq = state
        .external_runs()
        .publish(&user, event)
        .await
        .map_err(|e| error(e.code(), e.to_string()))?;
    Ok(Json(json!({ "seq": seq })))
}

/// Whether the `Authorization: Bearer` token equals `key`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, key: &str) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && constant_time_eq(token.trim().as_bytes(), key.as_bytes())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"secret-key", b"secret-key"));
        assert!(!constant_time_eq(b"secret-kez", b"secret-key"));
        assert!(!constant_time_eq(b"secret", b"secret-key"));
        assert!(!constant_time_eq(b"", b"k"));
        assert!(constant_time_eq(b"", b""));
    }
}
