//! `DsError`: every way a Durable Streams request fails, and the HTTP answer it gets.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::offset::Offset;

/// Why a stream operation failed. Each variant is one HTTP status of PROTOCOL.md; the body is a
/// JSON error `{"error":{"code":…,"message":…}}` whose message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DsError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or invalid ones (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The stream belongs to someone else (403).
    #[error("this stream belongs to another user")]
    Forbidden,
    /// An idempotent producer's epoch is older than the stream's (403, zombie fencing).
    #[error("stale producer epoch: the stream is at epoch {current}")]
    StaleEpoch {
        /// The epoch the stream holds for this producer.
        current: u64,
    },
    /// No stream at this path (404).
    #[error("no stream at this path")]
    NotFound,
    /// The stream does not accept this method (405), e.g. a read-only agentwire stream.
    #[error("{0}")]
    MethodNotAllowed(&'static str),
    /// The request conflicts with the stream's state or configuration (409).
    #[error("{0}")]
    Conflict(String),
    /// Append to a closed stream (409 with `Stream-Closed: true`).
    #[error("the stream is closed")]
    Closed {
        /// The closed stream's final offset.
        tail: Offset,
    },
    /// An idempotent producer skipped sequence numbers (409).
    #[error("producer sequence gap: expected {expected}, received {received}")]
    SequenceGap {
        /// The next sequence number the stream expects.
        expected: u64,
        /// The sequence number the request carried.
        received: u64,
    },
    /// The stream was deleted but forks still read it (410).
    #[error("the stream was deleted")]
    Gone,
    /// The body exceeds a limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// A per-user bound (stream count, bytes, append rate) is exhausted (429).
    #[error("{0}")]
    TooMany(String),
    /// The store failed (500/503); the message names the store.
    #[error("stream store unavailable: {0}")]
    Store(String),
    /// A part of the protocol this server does not implement (501).
    #[error("{0}")]
    NotImplemented(&'static str),
}

impl DsError {
    /// The status code PROTOCOL.md gives this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::StaleEpoch { .. } => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::Closed { .. } | Self::SequenceGap { .. } => {
                StatusCode::CONFLICT
            }
            Self::Gone => StatusCode::GONE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The machine-readable code in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::StaleEpoch { .. } => "stale_epoch",
            Self::NotFound => "stream_not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::Closed { .. } => "stream_closed",
            Self::SequenceGap { .. } => "sequence_gap",
            Self::Gone => "stream_gone",
            Self::TooLarge(_) => "payload_too_large",
            Self::TooMany(_) => "rate_limited",
            Self::Store(_) => "store_unavailable",
            Self::NotImplemented(_) => "not_implemented",
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
}

impl IntoResponse for DsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Closed { tail } => {
                headers.insert(crate::http::STREAM_CLOSED, HeaderValue::from_static("true"));
                headers.insert(crate::http::STREAM_NEXT_OFFSET, tail.header_value());
            }
            Self::StaleEpoch { current } => {
                headers.insert(crate::http::PRODUCER_EPOCH, HeaderValue::from(*current));
            }
            Self::SequenceGap { expected, received } => {
                headers.insert(
                    crate::http::PRODUCER_EXPECTED_SEQ,
                    HeaderValue::from(*expected),
                );
                headers.insert(
                    crate::http::PRODUCER_RECEIVED_SEQ,
                    HeaderValue::from(*received),
                );
            }
            Self::TooMany(_) => {
                headers.insert("retry-after", HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
