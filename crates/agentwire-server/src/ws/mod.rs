//! `GET /ws`: the native WebSocket protocol v1 (SPEC §4).

mod handshake;
mod io;
mod rate;
mod session;
mod writer;

pub(crate) use writer::DeliveryMetrics;

use agentwire_bridge::ResumeFrom;
use agentwire_core::ErrorCode;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::{ApiError, AppState, AuthRequest};

/// The error frame a client gets when its resume point is ahead of the stream head (it holds
/// seqs of a stream the broker no longer has): the connection starts live instead.
pub(crate) fn resume_ahead_warning(e: agentwire_bridge::BridgeError) -> agentwire_core::FrameError {
    agentwire_core::FrameError::new(
        ErrorCode::InvalidField,
        format!("{e}; starting live without replay"),
        None,
    )
}

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
    ws: Result<handshake::WsHandshake, handshake::HandshakeError>,
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
    let limits = &state.ready().config().limits;
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
        // Client frames are small JSON; a larger frame still arrives, in more reads. 4096 here
        // cost ~3 KB of RSS per idle connection (docs/benchmarks.md).
        .read_buffer_size(1024)
        // tungstenite writes only its pongs, into the writer's control bytes (io.rs): at
        // once, unbuffered.
        .write_buffer_size(0);
    let ws = if crate::auth::offers_v1(&headers) {
        ws.protocol(agentwire_core::SUBPROTOCOL)
    } else {
        ws
    };
    let sessions = state.sessions().clone();
    ws.on_upgrade(move |io| sessions.track_future(session::run(io, config, state, user, resume)))
}
