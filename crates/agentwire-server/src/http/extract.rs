//! `JsonBody`: a JSON body extractor whose rejections are agentwire's JSON error bodies.

use agentwire_core::ErrorCode;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error;
use crate::ApiError;

/// A JSON request body. Malformed JSON is 400 `bad_json`, a missing or mistyped field is 422
/// `invalid_field`, a body over `limits.max_body_bytes` is 413 `payload_too_large`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                error(
                    ErrorCode::PayloadTooLarge,
                    "the request body is over the limit (limits.max_body_bytes)",
                )
            } else {
                error(ErrorCode::BadJson, e.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, naming what is wrong.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => error(ErrorCode::InvalidField, e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => error(
                ErrorCode::BadJson,
                format!("the body is not valid JSON: {e}"),
            ),
        }
    })
}
