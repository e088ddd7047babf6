//! `GET /v1/events?after=<seq>`: a page of the user's history as JSON.

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::limits::ApiUser;
use crate::{ApiError, AppState};

/// The most events one page holds.
const MAX_PAGE: usize = 1000;

/// Query of `/v1/events`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: u64,
    epoch: Option<String>,
    limit: Option<usize>,
}

/// `{epoch, head, gap, events, next_after}`: the held events after `after` (at most `limit`,
/// default and maximum 1000), in seq order, each in the wire envelope of docs/protocol.md. `gap` names
/// events asked for that history no longer holds; `next_after` is the `after` of the next page.
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| super::error(agentwire_core::ErrorCode::InvalidField, e.body_text()))?;
    let limit = query.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let page = state
        .ready()
        .bridge()
        .history_after(&user, query.after, query.epoch.as_deref(), limit)
        .await
        .map_err(super::bridge_error)?;
    let next_after = page
        .frames
        .last()
        .map_or(query.after.min(page.head), |f| f.seq());
    // The stored frames are already the wire JSON: splice them into the body as they are
    // (no parse and re-serialize, and the same key order as on `/ws`).
    let head = json!({
        "epoch": page.epoch,
        "head": page.head,
        "gap": page.gap,
        "next_after": next_after,
    })
    .to_string();
    let mut body = Vec::with_capacity(
        head.len() + 16 + page.frames.iter().map(|f| f.len() + 1).sum::<usize>(),
    );
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"events\":[");
    for (i, frame) in page.frames.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(frame.bytes());
    }
    body.extend_from_slice(b"]}");
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}
