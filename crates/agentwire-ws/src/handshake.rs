//! The WebSocket upgrade on tokio-tungstenite itself (RFC 6455 §4.2), instead of axum's
//! `WebSocketUpgrade`.
//!
//! Why not axum's: its socket only sends `Message::Text(Utf8Bytes)`, which re-validates every
//! frame's UTF-8 on every connection. agentwire's frames are serde_json output, valid by
//! construction, so the writer sends their bytes as they are, once per connection, unchecked.
//! The upgraded socket is split for the reader and the writer task (`io.rs`).

use agentwire_core::ErrorCode;
use axum::extract::FromRequestParts;
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::io::Io;

/// A checked upgrade request: `GET` with `Connection: upgrade`, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13` and a key. Extract it in the `/ws` handler, then hand it to
/// [`WsTransport::accept`](crate::WsTransport::accept).
#[derive(Debug)]
pub struct WsHandshake {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
    /// `agentwire.v1` when the client offered it (docs/protocol.md), selected in the 101 response.
    protocol: Option<&'static str>,
}

/// Why an upgrade request was refused: answered with agentwire's JSON error body
/// (`{"error": {"code", "message"}}`, docs/protocol.md), and with `Sec-WebSocket-Version: 13` when the
/// client asked for another version (RFC 6455 §4.2.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct HandshakeError {
    /// 400, or 426 for a missing or wrong version.
    pub status: StatusCode,
    /// The wire code (`invalid_field`).
    pub code: ErrorCode,
    /// What is wrong, for a person.
    pub message: String,
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UPGRADE_REQUIRED {
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WsHandshake {
    type Rejection = HandshakeError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HandshakeError> {
        let bad = |message: &str| HandshakeError {
            status: StatusCode::BAD_REQUEST,
            code: ErrorCode::InvalidField,
            message: format!("{message}; /ws expects a WebSocket upgrade (RFC 6455)"),
        };
        let h = &parts.headers;
        if !header_has_token(h, CONNECTION, "upgrade") {
            return Err(bad("`Connection: upgrade` is missing"));
        }
        if !header_has_token(h, UPGRADE, "websocket") {
            return Err(bad("`Upgrade: websocket` is missing"));
        }
        if h.get(SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            // RFC 6455 §4.2.2: 426 with the versions the server speaks.
            return Err(HandshakeError {
                status: StatusCode::UPGRADE_REQUIRED,
                code: ErrorCode::InvalidField,
                message: "`Sec-WebSocket-Version: 13` is missing; /ws speaks WebSocket version 13"
                    .into(),
            });
        }
        let key = h
            .get(SEC_WEBSOCKET_KEY)
            .ok_or_else(|| bad("`Sec-WebSocket-Key` is missing"))?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| bad("`Sec-WebSocket-Key` is not a header value"))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(|| bad("this connection cannot be upgraded"))?;
        // Subprotocol names are case-sensitive (RFC 6455 §4.1).
        let protocol = h
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == agentwire_core::SUBPROTOCOL)
            .then_some(agentwire_core::SUBPROTOCOL);
        Ok(Self {
            accept,
            on_upgrade,
            protocol,
        })
    }
}

impl WsHandshake {
    /// Answers 101 and runs `session` on the connection once the upgrade completes.
    pub(crate) fn on_upgrade<F, Fut>(self, session: F) -> Response
    where
        F: FnOnce(Io) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "websocket upgrade failed");
                    return;
                }
            };
            session(TokioIo::new(upgraded)).await;
        });
        let mut response = (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (CONNECTION, HeaderValue::from_static("upgrade")),
                (UPGRADE, HeaderValue::from_static("websocket")),
                (SEC_WEBSOCKET_ACCEPT, self.accept),
            ],
        )
            .into_response();
        if let Some(p) = self.protocol {
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        response
    }
}

/// Whether a comma-separated header (any of its lines) holds `token`, case-insensitively.
fn header_has_token(headers: &HeaderMap, name: axum::http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens_are_matched_case_insensitively_in_lists() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(header_has_token(&h, CONNECTION, "upgrade"));
        assert!(!header_has_token(&h, CONNECTION, "close"));
    }
}
