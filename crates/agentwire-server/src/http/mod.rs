//! The HTTP API of docs/protocol.md: `/v1/runs`, `/v1/events`, `/v1/stream` (SSE), `/v1/publish`,
//! `/v1/agents` and the AG-UI endpoint `/agui/{agent}`.

mod agents;
mod agui;
mod events;
mod extract;
mod publish;
mod runs;
mod stream;

use crate::{ApiError, AppState};
use agentwire_core::ErrorCode;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

pub(crate) use extract::JsonBody;

/// The HTTP API routes (merged into [`crate::router`]).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", post(runs::start))
        .route("/v1/runs/{run_id}/cancel", post(runs::cancel))
        .route("/v1/events", get(events::list))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/publish", post(publish::publish))
        .route("/agui/{agent}", post(agui::run))
        .route("/v1/agents", get(agents::list))
}

/// The HTTP status that fits a wire code.
pub(crate) fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadJson => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownType | ErrorCode::InvalidField => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnknownAgent | ErrorCode::RunNotFound | ErrorCode::NotFound => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::RateLimited | ErrorCode::TooManyRuns | ErrorCode::TooManyStreams => {
            StatusCode::TOO_MANY_REQUESTS
        }
        ErrorCode::OutOfGrammar => StatusCode::CONFLICT,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::ShuttingDown | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An [`ApiError`] with the status that fits `code`.
pub(crate) fn error(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(status_for(code), code, message)
}

/// A bridge or broker failure as an HTTP error (503 `unavailable` while the broker is down).
pub(crate) fn bridge_error(e: agentwire_bridge::BridgeError) -> ApiError {
    error(e.code(), e.to_string())
}

/// 503 while the node drains: new work goes to another node.
pub(crate) fn refuse_if_draining(state: &AppState) -> Result<(), ApiError> {
    if state.is_draining() {
        return Err(error(
            ErrorCode::ShuttingDown,
            "this node is shutting down; retry on another one",
        ));
    }
    Ok(())
}
