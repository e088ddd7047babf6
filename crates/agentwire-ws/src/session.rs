//! One WebSocket session: greeting, reader loop, dispatch of client frames.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentwire_auth::{AuthError, Identity};
use agentwire_bridge::{ConnectionQueue, ResumeFrom};
use agentwire_core::{
    ClientFrame, CloseCode, ConnectionEstablished, ConnectionId, ControlFrame, ErrorCode,
    FrameError, UserContext, UserId, WebSocketSink,
};
use futures_util::StreamExt;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::Instrument;

use crate::WsTransport;
use crate::io::{Halves, Io, Socket};
use crate::rate::TokenBucket;
use crate::writer::write_loop;

/// How long the writer may take to flush and send its close frame once the session ends.
const WRITER_GRACE: Duration = Duration::from_secs(2);

/// A session's future lives as long as its connection, so what it holds while it waits for the
/// client is kept small: attaching, greeting and the teardown run in boxed futures that are
/// freed when they finish, and the read loop holds only the socket and its timers: an idle
/// connection's task holds nothing it does not need for reading.
pub(crate) async fn run(
    io: Io,
    config: WebSocketConfig,
    state: WsTransport,
    identity: Identity,
    resume: Option<ResumeFrom>,
) {
    let Identity {
        user, expires_at, ..
    } = identity;
    let Some(open) = Box::pin(open(io, config, &state, &user, expires_at, resume)).await else {
        return;
    };
    let Open {
        rx,
        queue,
        writer,
        connection_id,
        span,
    } = open;
    let config = state.ready().config();
    let mut session = Session {
        rx,
        state: &state,
        user: &user,
        connection_id,
        queue: &queue,
        bucket: TokenBucket::new(config.limits.messages_per_second, config.limits.burst),
        expiry: expires_at.map(|at| Box::pin(tokio::time::sleep_until(instant_of(at)))),
    };
    session
        .read_loop(config.heartbeat.timeout)
        .instrument(span.clone())
        .await;
    Box::pin(close(&state, &user, connection_id, &queue, writer).instrument(span)).await;
}

/// An attached connection whose writer runs.
struct Open {
    rx: Socket,
    queue: Arc<ConnectionQueue>,
    writer: tokio::task::JoinHandle<()>,
    connection_id: ConnectionId,
    span: tracing::Span,
}

/// Attaches the connection to its user's stream, queues the greeting and starts the writer;
/// `None` when the bridge refused it (the writer has sent the close frame).
async fn open(
    io: Io,
    config: WebSocketConfig,
    state: &WsTransport,
    user: &UserId,
    expires_at: Option<SystemTime>,
    resume: Option<ResumeFrom>,
) -> Option<Open> {
    let Halves {
        read: rx,
        write: tx,
        control,
    } = Halves::new(io, config).await;
    let config = state.ready().config();
    let queue = Arc::new(
        state
            .ready()
            .bridge()
            .connection_queue(config.limits.queue_bytes),
    );
    let heartbeat = config.heartbeat.interval;
    let metrics = state.delivery_metrics().clone();
    let attached = state
        .ready()
        .bridge()
        .attach_or_live(user, queue.clone(), resume)
        .await;
    let (attachment, resume_error) = match attached {
        Ok((a, ahead)) => (a, ahead.map(crate::resume_ahead_warning)),
        Err(e) => {
            let code = match e {
                agentwire_bridge::BridgeError::ShuttingDown => CloseCode::GOING_AWAY,
                agentwire_bridge::BridgeError::BrokerUnavailable { .. } => CloseCode::INTERNAL,
                _ => CloseCode::POLICY,
            };
            tracing::info!(user_id = %user, error = %e, "connection refused");
            count_close(match code {
                CloseCode::GOING_AWAY => "shutting_down",
                CloseCode::INTERNAL => "broker_unavailable",
                _ => "limit",
            });
            queue.close(code, &e.to_string());
            write_loop(tx, control, queue, heartbeat, metrics).await;
            return None;
        }
    };
    let connection_id = attachment.connection_id;
    let span = tracing::info_span!("ws", user_id = %user, connection_id = %connection_id);
    let mut hello = ConnectionEstablished::new(
        connection_id,
        user.clone(),
        attachment.epoch.clone(),
        attachment.last_seq,
        heartbeat.as_millis() as u64,
    );
    hello.resumed = attachment.resumed;
    hello.expires_in_ms = expires_at.map(|at| millis(remaining(at)));
    if let Some(e) = resume_error {
        queue.prepend(e.to_frame());
    }
    queue.prepend(ControlFrame::ConnectionEstablished { data: &hello }.to_frame());
    span.in_scope(|| tracing::debug!(resumed = ?attachment.resumed, "connected"));
    let writer = tokio::spawn(write_loop(tx, control, queue.clone(), heartbeat, metrics));
    Some(Open {
        rx,
        queue,
        writer,
        connection_id,
        span,
    })
}

/// Detaches the connection and lets the writer send what is queued and the close frame.
async fn close(
    state: &WsTransport,
    user: &UserId,
    connection_id: ConnectionId,
    queue: &ConnectionQueue,
    mut writer: tokio::task::JoinHandle<()>,
) {
    state.ready().bridge().detach(user, connection_id).await;
    queue.close(CloseCode::NORMAL, "");
    if tokio::time::timeout(WRITER_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    queue.mark_gone();
    tracing::debug!("disconnected");
}

struct Session<'a> {
    rx: Socket,
    state: &'a WsTransport,
    user: &'a UserId,
    connection_id: ConnectionId,
    queue: &'a Arc<ConnectionQueue>,
    bucket: TokenBucket,
    /// Fires when the connection's credentials expire; `None` when they do not (no timer).
    expiry: Option<Pin<Box<Sleep>>>,
}

/// Ready when `timer` fires; never without one.
async fn expired(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// How long from now until `at` (zero once it passed).
fn remaining(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// The monotonic instant of the wall-clock time `at`.
fn instant_of(at: SystemTime) -> Instant {
    Instant::now() + remaining(at)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the frame rate limit says of one text frame.
enum Admission {
    /// Handle the frame.
    Admitted,
    /// Over the rate: the client got a `rate_limited` error frame; the frame is dropped.
    Refused,
    /// Over the rate too often: the connection is closing.
    Closed,
}

impl Session<'_> {
    /// Charges one text frame to the connection's rate limit.
    fn admit(&mut self) -> Admission {
        if self.bucket.take() {
            return Admission::Admitted;
        }
        let limits = &self.state.ready().config().limits;
        if self.bucket.strikes > limits.burst {
            count_close("rate_limited");
            tracing::info!("closed: rate limit exceeded repeatedly");
            self.queue
                .close(CloseCode::RATE_LIMITED, "rate limit exceeded repeatedly");
            return Admission::Closed;
        }
        self.reply_error(FrameError::new(
            ErrorCode::RateLimited,
            format!(
                "more than {} frames per second; slow down",
                limits.messages_per_second
            ),
            None,
        ));
        Admission::Refused
    }

    /// Closes with the code a read error calls for (1009, 1002/1007), or just ends on I/O errors.
    fn close_on_read_error(&self, e: &WsError) {
        if is_too_big(e) {
            count_close("frame_too_big");
            self.queue.close(CloseCode::TOO_BIG, "frame too large");
        } else if let Some((code, reason)) = protocol_violation(e) {
            count_close("protocol_error");
            self.queue.close(code, reason);
        }
        tracing::debug!(error = %e, "read error");
    }

    async fn read_loop(&mut self, timeout: Duration) {
        // One timer for the connection's life, moved on only when it fires: re-arming it for
        // every frame put a timer-wheel insert and removal on the per-message path.
        let mut last_seen = Instant::now();
        let silence = tokio::time::sleep_until(last_seen + timeout);
        let queue = self.queue;
        let closed = queue.closed();
        tokio::pin!(silence, closed);
        loop {
            // Biased: a connection whose credentials expired, or that is closed, reads nothing
            // more, even when frames are waiting.
            let msg = tokio::select! {
                biased;
                () = expired(&mut self.expiry) => {
                    tracing::debug!("credentials expired");
                    count_close("token_expired");
                    self.queue.close(
                        CloseCode::TOKEN_EXPIRED,
                        "token expired: reconnect with a fresh token",
                    );
                    return;
                }
                () = &mut closed => return,
                () = &mut silence => {
                    let deadline = last_seen + timeout;
                    if Instant::now() < deadline {
                        silence.as_mut().reset(deadline);
                        continue;
                    }
                    tracing::debug!("heartbeat timeout");
                    count_close("heartbeat_timeout");
                    self.queue.close(CloseCode::GOING_AWAY, "heartbeat timeout: no pong received");
                    return;
                }
                msg = self.rx.next() => msg,
            };
            last_seen = Instant::now();
            match msg {
                None => return,
                Some(Err(e)) => {
                    self.close_on_read_error(&e);
                    return;
                }
                Some(Ok(Message::Text(text))) => match self.admit() {
                    Admission::Admitted => {
                        if let Some(from) = self.handle(&text) {
                            self.resume(from).await;
                        }
                    }
                    Admission::Refused => {}
                    Admission::Closed => return,
                },
                Some(Ok(Message::Binary(_))) => self.reply_error(FrameError::new(
                    ErrorCode::BadJson,
                    "binary frames are not supported; send JSON text frames",
                    None,
                )),
                Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    }

    fn reply_error(&self, e: FrameError) {
        metrics::counter!("agentwire_frame_errors_total", "code" => e.code.as_str()).increment(1);
        tracing::debug!(code = e.code.as_str(), message = %e.message, "error frame");
        let _ = self.queue.send_control(e.to_frame());
    }

    fn reply(&self, frame: ControlFrame<'_>) {
        let _ = self.queue.send_control(frame.to_frame());
    }

    /// Answers one client frame; a `resume` is returned for the caller to await.
    fn handle(&mut self, text: &str) -> Option<ResumeFrom> {
        let frame = match ClientFrame::decode(text) {
            Ok(f) => f,
            Err(e) => {
                self.reply_error(e);
                return None;
            }
        };
        let ready = self.state.ready();
        match frame {
            ClientFrame::UserMessage(m) => {
                let ctx = UserContext::new_run(self.user.clone(), m.thread_id, Some(m.id.clone()));
                match ready.executor().prepare(ctx, &m.agent, m.content) {
                    Ok(prepared) => {
                        let h = prepared.handle();
                        self.reply(ControlFrame::Ack {
                            id: &m.id,
                            run_id: Some(&h.run_id),
                            thread_id: Some(&h.thread_id),
                        });
                        tracing::debug!(run_id = %h.run_id, agent = %m.agent, "run started");
                        prepared.spawn();
                    }
                    Err(e) => {
                        self.reply_error(FrameError::new(e.code(), e.to_string(), Some(m.id)))
                    }
                }
            }
            ClientFrame::Cancel { id, run_id } => {
                match ready.executor().factory().cancel(self.user, &run_id) {
                    Ok(()) => self.reply(ControlFrame::Ack {
                        id: &id,
                        run_id: Some(&run_id),
                        thread_id: None,
                    }),
                    Err(e) => self.reply_error(FrameError::new(e.code(), e.to_string(), Some(id))),
                }
            }
            ClientFrame::Resume { last_seq, epoch } => return Some(ResumeFrom { last_seq, epoch }),
            ClientFrame::Ping { id } => self.reply(ControlFrame::Pong { id: &id }),
            ClientFrame::Refresh { id, token } => self.refresh(id, &token),
            _ => self.reply_error(FrameError::new(
                ErrorCode::UnknownType,
                "unsupported frame",
                None,
            )),
        }
        None
    }

    /// A `refresh` frame: a valid token for this connection's user moves its expiry to the
    /// token's, and is acknowledged; anything else is an `unauthorized` error and changes
    /// nothing.
    fn refresh(&mut self, id: String, token: &str) {
        let verified = match self.state.authenticator() {
            Some(auth) => auth.refresh(token).and_then(|identity| {
                if identity.user == *self.user {
                    Ok(identity)
                } else {
                    Err(AuthError::OtherUser)
                }
            }),
            None => Err(AuthError::CannotRefresh(
                "this server verifies no tokens on an open connection",
            )),
        };
        let identity = match verified {
            Ok(identity) => identity,
            Err(e) => {
                tracing::info!(error = %e, "refresh refused");
                self.reply_error(FrameError::new(
                    ErrorCode::Unauthorized,
                    e.to_string(),
                    Some(id),
                ));
                return;
            }
        };
        match (identity.expires_at, &mut self.expiry) {
            (Some(at), Some(timer)) => timer.as_mut().reset(instant_of(at)),
            (at, timer) => *timer = at.map(|at| Box::pin(tokio::time::sleep_until(instant_of(at)))),
        }
        tracing::debug!(expires_at = ?identity.expires_at, "refreshed");
        self.reply(ControlFrame::Refreshed {
            id: &id,
            expires_in_ms: identity.expires_at.map(|at| millis(remaining(at))),
        });
    }

    /// Replays from `from` (a `resume` frame). Boxed: the bridge's replay future is large and
    /// rare, and the read loop's future is held for the connection's whole life.
    async fn resume(&mut self, from: ResumeFrom) {
        let bridge = self.state.ready().bridge();
        if let Err(e) = Box::pin(bridge.resume(self.user, self.connection_id, &from)).await {
            self.reply_error(FrameError::new(e.code(), e.to_string(), None));
        }
    }
}

/// Counts a close decided by the session (`agentwire_connection_closes_total`).
fn count_close(reason: &'static str) {
    metrics::counter!("agentwire_connection_closes_total", "reason" => reason).increment(1);
}

/// The close RFC 6455 §7.4.1 names for a peer's violation: 1007 for a text message that is not
/// UTF-8, 1002 for any other protocol error (RSV bits, a fragmented or oversized control
/// frame, an unmasked frame, a bad opcode).
fn protocol_violation(e: &WsError) -> Option<(CloseCode, &'static str)> {
    match e {
        WsError::Utf8(_) => Some((CloseCode(1007), "text frame is not valid UTF-8")),
        WsError::Protocol(_) => Some((CloseCode(1002), "WebSocket protocol violation")),
        _ => None,
    }
}

fn is_too_big(e: &WsError) -> bool {
    matches!(e, WsError::Capacity(_))
}
