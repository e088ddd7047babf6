//! agentwire's WebSocket transport (docs/protocol.md): the RFC 6455 upgrade on hyper ([`WsHandshake`]),
//! one session per connection (greeting, reader loop, client frames, rate limit, heartbeat), and
//! the writer task that encodes server frames itself, one buffer and one write per batch.
//!
//! The server crate only wires it: its `/ws` handler authenticates the user, extracts a
//! [`WsHandshake`], and calls [`WsTransport::accept`]. A connection whose [`Identity`] expires
//! is closed with 4001 at its expiry, unless the client sends a `refresh` frame with a new token
//! for the same user first (verified by the transport's [`Authenticate`], see
//! [`WsTransport::with_authenticator`]):
//!
//! ```no_run
//! use agentwire_core::UserId;
//! use agentwire_ws::{WsHandshake, WsTransport};
//! use axum::response::Response;
//!
//! async fn ws(transport: WsTransport, handshake: WsHandshake) -> Response {
//!     // Your own authentication decides the user.
//!     let user = UserId::new("ada").expect("a valid id");
//!     transport.accept(handshake, user, None)
//! }
//!
//! /// `ready` is a finished `agentwire_startup` chain.
//! fn routes(ready: agentwire_startup::Ready) -> axum::Router {
//!     let transport = WsTransport::new(ready);
//!     axum::Router::new().route(
//!         "/ws",
//!         axum::routing::get(move |handshake: WsHandshake| ws(transport.clone(), handshake)),
//!     )
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod handshake;
mod io;
mod rate;
mod session;
mod writer;
#[cfg(test)]
mod writer_decodes;

use std::sync::Arc;

use agentwire_auth::{Authenticate, Identity};
use agentwire_bridge::ResumeFrom;
use agentwire_core::{ErrorCode, FrameError};
use agentwire_startup::Ready;
use axum::response::Response;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::task::TaskTracker;

pub use handshake::{HandshakeError, WsHandshake};

/// The WebSocket transport of one server: the started components the sessions use, the
/// writers' metric handles, and the session tasks (so shutdown can wait for them). Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct WsTransport {
    inner: Arc<Inner>,
}

struct Inner {
    ready: Ready,
    delivery: Arc<writer::DeliveryMetrics>,
    sessions: TaskTracker,
    /// Verifies the tokens of `refresh` frames; without one they are refused.
    auth: Option<Arc<dyn Authenticate>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTransport")
            .field("ready", &self.ready)
            .field("refresh", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

impl WsTransport {
    /// The transport over a finished startup.
    ///
    /// The writers' metric handles bind to the `metrics` recorder installed when this is called:
    /// install yours (or `agentwire_server::install_metrics_recorder()`) first.
    ///
    /// Its sessions refuse `refresh` frames: use [`with_authenticator`](Self::with_authenticator)
    /// when connections are accepted with an expiring [`Identity`].
    pub fn new(ready: Ready) -> Self {
        Self::build(ready, None)
    }

    /// The transport over a finished startup, verifying the tokens of `refresh` frames with
    /// `auth` (the authenticator that proved the identities given to
    /// [`accept`](Self::accept)).
    pub fn with_authenticator(ready: Ready, auth: Arc<dyn Authenticate>) -> Self {
        Self::build(ready, Some(auth))
    }

    fn build(ready: Ready, auth: Option<Arc<dyn Authenticate>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                ready,
                delivery: Arc::new(writer::DeliveryMetrics::new()),
                sessions: TaskTracker::new(),
                auth,
            }),
        }
    }

    /// Answers the upgrade with 101 and runs the session of `identity`'s user on the
    /// connection, resuming from `resume` (the `last_seq`/`epoch` query) when given. The user
    /// must be authenticated. A [`UserId`](agentwire_core::UserId) is an identity that does not expire; one with
    /// [`Identity::expires_at`] is closed with 4001 then, unless refreshed.
    pub fn accept(
        &self,
        handshake: WsHandshake,
        identity: impl Into<Identity>,
        resume: Option<ResumeFrom>,
    ) -> Response {
        let identity = identity.into();
        let limits = &self.inner.ready.config().limits;
        let config = WebSocketConfig::default()
            .max_message_size(Some(limits.max_frame_bytes))
            .max_frame_size(Some(limits.max_frame_bytes))
            // Client frames are small JSON; a larger frame still arrives, in more reads. A
            // larger read buffer is held by every idle connection.
            .read_buffer_size(1024)
            // tungstenite writes only its pongs, into the writer's control bytes (io.rs): at
            // once, unbuffered.
            .write_buffer_size(0);
        let transport = self.clone();
        let sessions = self.inner.sessions.clone();
        handshake.on_upgrade(move |io| {
            sessions.track_future(session::run(io, config, transport, identity, resume))
        })
    }

    /// The session tasks: shutdown closes the tracker and waits for them.
    pub fn sessions(&self) -> &TaskTracker {
        &self.inner.sessions
    }

    pub(crate) fn ready(&self) -> &Ready {
        &self.inner.ready
    }

    pub(crate) fn delivery_metrics(&self) -> &Arc<writer::DeliveryMetrics> {
        &self.inner.delivery
    }

    pub(crate) fn authenticator(&self) -> Option<&dyn Authenticate> {
        self.inner.auth.as_deref()
    }
}

/// The error frame a client gets when its resume point is ahead of the stream head (it holds
/// seqs of a stream the broker no longer has): the connection starts live instead. `/ws` and
/// `/v1/stream` both send it.
pub fn resume_ahead_warning(e: agentwire_bridge::BridgeError) -> FrameError {
    FrameError::new(
        ErrorCode::InvalidField,
        format!("{e}; starting live without replay"),
        None,
    )
}
