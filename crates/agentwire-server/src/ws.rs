//! `GET /ws`: the native WebSocket protocol v1 (SPEC §4).

use agentwire_bridge::ResumeFrom;
use agentwire_core::ErrorCode;
use agentwire_ws::{HandshakeError, WsHandshake};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::{ApiError, AppState, AuthRequest};

/// Query parameters of `/ws`.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct WsQuery {
    last_seq: Option<u64>,
    epoch: Option<String>,
    token: Option<String>,
    user: Option<String>,
}

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    ws: Result<WsHandshake, HandshakeError>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
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
    let credentials = AuthRequest {
        headers: &headers,
        token: query.token.as_deref(),
        user: query.user.as_deref(),
    };
    let user = match state.auth().authenticate(&credentials) {
        Ok(user) => user,
        Err(e) => {
            metrics::counter!("agentwire_auth_failures_total", "route" => "ws").increment(1);
            tracing::info!(error = %e, "websocket authentication failed");
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                e.to_string(),
            )
            .into_response();
        }
    };
    let resume = query.last_seq.map(|last_seq| ResumeFrom {
        last_seq,
        epoch: query.epoch.clone(),
    });
    state.ws_transport().accept(ws, user, resume)
}
