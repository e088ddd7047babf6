//! Subscriptions (PROTOCOL.md §6, §7): durable cursors over a pattern of streams and/or an
//! explicit list, that wake a worker by signed webhook or by a wake event on a pull-wake stream.
//!
//! A subscription belongs to the owner who created it: its pattern matches only that owner's
//! streams, and only that owner reads, changes or claims it. Callbacks, acks and releases
//! authenticate with the wake token the server signed instead (it names the owner).

mod deliver;
mod engine;
mod signing;
mod ssrf;
pub(crate) mod state;
mod store;

pub(crate) use deliver::Finish;
pub(crate) use engine::Engine;
#[cfg(feature = "redis")]
pub(crate) use signing::random_seed;
pub use state::{Delivery, Link, Spec, Subscription, Wake};
pub use store::{MemorySubscriptions, SubscriptionStore};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::DsError;

/// A failed subscription request: `{"error":{"code":…,"message":…, …}}` with the protocol's
/// upper-case codes (`FENCED`, `ALREADY_CLAIMED`, …).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// More fields of the error object (`current_holder`, `generation`).
    pub extra: Map<String, Value>,
}

impl SubError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            404,
            "SUBSCRIPTION_NOT_FOUND",
            "no subscription with this id",
        )
    }

    pub(crate) fn fenced() -> Self {
        Self::new(409, "FENCED", "the wake generation is stale")
    }
}

impl From<DsError> for SubError {
    fn from(e: DsError) -> Self {
        let code = match &e {
            DsError::Unauthorized(_) => "UNAUTHORIZED",
            DsError::TooMany(_) => "RATE_LIMITED",
            DsError::Store(_) => "STORE_UNAVAILABLE",
            _ => "INVALID_REQUEST",
        };
        Self::new(e.status().as_u16(), code, e.to_string())
    }
}

impl IntoResponse for SubError {
    fn into_response(self) -> Response {
        let mut error = self.extra;
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.into());
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": error }))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            // As the stream routes' 429: the rates refill within a second.
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
