//! `GET /ws`: the native WebSocket protocol v1 (docs/protocol.md).

use agentwire_bridge::ResumeFrom;
use agentwire_core::ErrorCode;
use agentwire_ws::WsHandshake;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::{ApiError, AppState, AuthenticatedIdentity};

/// Query parameters of `/ws` (besides the credentials [`AuthenticatedIdentity`] reads).
#[derive(Debug, Deserialize, Default)]
pub(crate) struct WsQuery {
    last_seq: Option<u64>,
    epoch: Option<String>,
}

/// `GET /ws`: the handshake is checked first (a plain GET gets 400/426), then the user.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    ws: WsHandshake,
    AuthenticatedIdentity(identity): AuthenticatedIdentity,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidField,
                e.body_text(),
            )
            .into_response();
        }
    };
    if state.is_draining() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "this node is shutting down; connect to another one",
        )
        .into_response();
    }
    let resume = query.last_seq.map(|last_seq| ResumeFrom {
        last_seq,
        epoch: query.epoch.clone(),
    });
    state.ws_transport().accept(ws, identity, resume)
}
