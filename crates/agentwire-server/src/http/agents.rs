//! `GET /v1/agents`: the agents a user can run, for pickers such as the demo page's.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{Credentials, authenticate};
use crate::{ApiError, AppState};

/// `{agents: [{name, description}], default}`, sorted by name; `default` is `demo` when it is
/// registered, else the first agent.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(credentials): Query<Credentials>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &credentials)?;
    let agents = state.ready().executor().registry().agents();
    let default = agents
        .iter()
        .find(|a| a.name == "demo")
        .or_else(|| agents.first())
        .map(|a| a.name.clone());
    Ok(Json(json!({ "agents": agents, "default": default })))
}
