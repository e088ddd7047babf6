//! `GET /v1/agents`: the agents a user can run, for pickers such as the demo page's.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::limits::ApiUser;

/// `{agents: [{name, description}], default}`, sorted by name; `default` is `demo` when it is
/// registered, else the first agent. Any authenticated user may list them.
pub(crate) async fn list(State(state): State<AppState>, ApiUser(_): ApiUser) -> Json<Value> {
    let agents = state.ready().executor().registry().agents();
    let default = agents
        .iter()
        .find(|a| a.name == "demo")
        .or_else(|| agents.first())
        .map(|a| a.name.clone());
    Json(json!({ "agents": agents, "default": default }))
}
