//! `GET /v1/events?after=<seq>`: a page of the user's history as JSON.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Credentials, authenticate};
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
/// default and maximum 1000), in seq order, each in the wire envelope of SPEC §4. `gap` names
/// events asked for that history no longer holds; `next_after` is the `after` of the next page.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(credentials): Query<Credentials>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| super::error(agentwire_core::ErrorCode::InvalidField, e.body_text()))?;
    let user = authenticate(&state, &headers, &credentials)?;
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
    let events: Vec<Value> = page
        .frames
        .iter()
        .filter_map(|f| serde_json::from_slice(f.bytes()).ok())
        .collect();
    Ok(Json(json!({
        "epoch": page.epoch,
        "head": page.head,
        "gap": page.gap,
        "events": events,
        "next_after": next_after,
    })))
}
