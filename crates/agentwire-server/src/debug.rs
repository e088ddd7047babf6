//! Dev-only debug routes (registered only with dev auth, which is loopback-only).

use agentwire_core::{CloseCode, ErrorCode};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub(crate) struct DisconnectQuery {
    user: String,
}

/// `POST /debug/disconnect?user=<id>`: drops every connection of the user (close 1012, "service
/// restart"), as a network failure or a node restart would. Clients should reconnect and
/// resume; the browser test uses it to prove nothing is lost.
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    Query(q): Query<DisconnectQuery>,
) -> Response {
    let user = match crate::user_id(&q.user) {
        Ok(u) => u,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidField,
                e.to_string(),
            )
            .into_response();
        }
    };
    let closed = state.ready().bridge().close_user(
        &user,
        CloseCode::SERVICE_RESTART,
        "debug disconnect: reconnect and resume",
    );
    Json(serde_json::json!({ "closed": closed })).into_response()
}
