//! Dev-only debug routes (registered only with dev auth, which is loopback-only).

use agentwire_core::CloseCode;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::{AppState, AuthenticatedUser};

/// `POST /debug/disconnect?user=<id>`: drops every connection of the (dev-authenticated) user
/// with close 1012, "service restart", as a network failure or a node restart would. Clients
/// should reconnect and resume; the browser test uses it to prove nothing is lost.
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
) -> Response {
    let closed = state.ready().bridge().close_user(
        &user,
        CloseCode::SERVICE_RESTART,
        "debug disconnect: reconnect and resume",
    );
    Json(serde_json::json!({ "closed": closed })).into_response()
}
