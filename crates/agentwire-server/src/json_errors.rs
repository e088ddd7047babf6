//! Every error response has a JSON body: `{"error": {"code", "message"}}`.
//!
//! agentwire's own handlers answer with [`ApiError`]; this layer catches the rest — axum's
//! extractor rejections (a duplicated or malformed query parameter, a wrong content type), a
//! 405, a body-read timeout — and rewrites their plain-text body into the same shape, keeping
//! the status and the text as the message.

use agentwire_core::ErrorCode;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// The longest plain-text error body kept as the message.
const MAX_MESSAGE_BYTES: usize = 4096;

/// The middleware: passes successes and JSON errors through, rewrites other error bodies.
pub(crate) async fn as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut json = ApiError::new(status, code_for(status), message).into_response();
    // Keep headers the client needs (`allow` on a 405, `retry-after`, `www-authenticate`).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorCode::Unauthorized,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => ErrorCode::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::InvalidField,
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[tokio::test]
    async fn a_plain_text_rejection_becomes_json_with_its_status_and_text() {
        let plain = (
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string: duplicate field `user`",
        )
            .into_response();
        let json = as_json(plain).await;
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(json.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "invalid_field");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("duplicate field")
        );
    }

    #[tokio::test]
    async fn successes_and_json_errors_pass_unchanged() {
        let ok = as_json((StatusCode::OK, "fine").into_response()).await;
        let body = axum::body::to_bytes(ok.into_body(), 64).await.unwrap();
        assert_eq!(&body[..], b"fine");
        let api = ApiError::new(StatusCode::CONFLICT, ErrorCode::TooManyRuns, "busy");
        let passed = as_json(api.into_response()).await;
        let body = axum::body::to_bytes(passed.into_body(), 4096)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_runs");
    }

    #[tokio::test]
    async fn an_empty_405_gets_its_reason_and_keeps_allow() {
        let mut empty = Response::new(Body::empty());
        *empty.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        empty
            .headers_mut()
            .insert(header::ALLOW, "GET".parse().unwrap());
        let json = as_json(empty).await;
        assert_eq!(json.headers()[header::ALLOW], "GET");
        let body = axum::body::to_bytes(json.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "Method Not Allowed");
    }
}
