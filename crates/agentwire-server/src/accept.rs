//! The accept loop: bounds that hold before a request is read, let alone authenticated.
//!
//! - A global connection cap and a per-IP cap (`limits.max_connections`,
//!   `limits.max_connections_per_ip`). Over either, the socket gets a fixed 503 written without
//!   waiting and is closed at once, and `agentwire_connections_refused_total{reason}` counts it.
//! - A few connections above the global cap ([`HEALTH_RESERVE`]) are still accepted but answer
//!   only the health routes, so a probe gets through while the node is full.
//! - The global cap is clamped below the process's file-descriptor limit, so `accept` does not
//!   reach `EMFILE` in the first place; if it does anyway, a reserve fd is released to accept
//!   and close the waiting connection, and the loop backs off instead of spinning.
//! - `limits.header_read_timeout` bounds a connection that sends nothing, or a request head
//!   slowly (slowloris), and the idle time between keep-alive requests.
//! - `limits.write_timeout` bounds how long a write to the socket may make no progress: a client
//!   that stops reading loses its socket, whatever it was being sent (an SSE stream, a WebSocket,
//!   the tail of a response after its stream ended).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentwire_startup::LimitsConfig;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_io_timeout::TimeoutWriter;
use tower::ServiceExt as _;

use agentwire_core::ErrorCode;

use crate::ApiError;

/// Connections accepted above `limits.max_connections` that answer only the health routes.
pub(crate) const HEALTH_RESERVE: usize = 16;

/// File descriptors kept free below the process limit for everything that is not a client
/// socket (Redis, log files, the reserve fd, the health reserve).
const FD_HEADROOM: u64 = 128;

/// What [`Gate::admit`] decided for one new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Served normally.
    Full,
    /// Above the global cap, inside the health reserve: health routes only.
    HealthOnly,
}

/// Counts open connections, in total and per peer IP.
#[derive(Debug)]
struct Gate {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<GateCounts>,
}

#[derive(Debug, Default)]
struct GateCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Held by a connection's socket; releases its slot when dropped.
#[derive(Debug)]
struct Slot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
        metrics::gauge!("agentwire_tcp_connections").set(open.total as f64);
    }
}

impl Gate {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Slot, Admission), &'static str> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err("per_ip");
        }
        let admission = if open.total < self.max_total {
            Admission::Full
        } else if open.total < self.max_total + HEALTH_RESERVE {
            Admission::HealthOnly
        } else {
            return Err("global");
        };
        open.total += 1;
        *open.per_ip.entry(ip).or_insert(0) += 1;
        metrics::gauge!("agentwire_tcp_connections").set(open.total as f64);
        Ok((
            Slot {
                gate: Arc::clone(self),
                ip,
            },
            admission,
        ))
    }
}

/// A client socket that holds its [`Slot`]: a WebSocket keeps the socket after hyper's
/// connection future ends (the upgrade), so the slot lives exactly as long as the fd. Its writes
/// fail with `TimedOut` after `limits.write_timeout` without progress (reads are not timed: an
/// idle WebSocket is fine, and hyper bounds request heads itself).
#[derive(Debug)]
struct CountedTcp {
    tcp: Pin<Box<TimeoutWriter<TcpStream>>>,
    _slot: Slot,
}

impl CountedTcp {
    fn new(tcp: TcpStream, slot: Slot, write_timeout: Duration) -> Self {
        let mut tcp = TimeoutWriter::new(tcp);
        tcp.set_timeout(Some(write_timeout));
        Self {
            tcp: Box::pin(tcp),
            _slot: slot,
        }
    }
}

impl tokio::io::AsyncRead for CountedTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.tcp.as_mut().poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.tcp.as_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        self.tcp.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.get_ref().is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.tcp.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.tcp.as_mut().poll_shutdown(cx)
    }
}

/// The global cap actually enforced: `configured`, lowered to stay [`FD_HEADROOM`] below the
/// process's open-file limit (raised to its hard limit first).
fn effective_max_connections(configured: usize) -> usize {
    match fd_limit() {
        Some(limit) => {
            let room = limit.saturating_sub(FD_HEADROOM + HEALTH_RESERVE as u64);
            let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
            if room < configured {
                tracing::info!(
                    configured,
                    enforced = room,
                    fd_limit = limit,
                    "limits.max_connections lowered to fit the open-file limit (raise `ulimit -n` for more)"
                );
            }
            configured.min(room)
        }
        None => configured,
    }
}

#[cfg(target_os = "linux")]
fn fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        // Best effort: a container may refuse; the current limit then stays in force.
        let _ = setrlimit(Resource::Nofile, limit);
        limit = getrlimit(Resource::Nofile);
    }
    limit.current
}

#[cfg(not(target_os = "linux"))]
fn fd_limit() -> Option<u64> {
    None
}

/// The fixed answers written to a refused socket: written with `try_write`, never awaited.
const REFUSED_GLOBAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 81\r\nretry-after: 1\r\nconnection: close\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"this server has too many connections\"}}";
const REFUSED_PER_IP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 87\r\nretry-after: 1\r\nconnection: close\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"your address has too many open connections\"}}";

/// Serves `app` on `listener` with the bounds of `limits` until `signal` completes; then stops
/// accepting, asks every connection to finish gracefully, and waits for them.
pub(crate) async fn serve_bounded(
    listener: TcpListener,
    app: Router,
    limits: &LimitsConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let gate = Arc::new(Gate {
        max_total: effective_max_connections(limits.max_connections),
        max_per_ip: limits.max_connections_per_ip,
        open: Mutex::new(GateCounts::default()),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        signal.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    let mut accept_errors = AcceptErrors::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = signal_tx.closed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => {
                accept_errors.reset();
                conn
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                accept_errors.back_off(&e, &listener).await;
                continue;
            }
        };
        let (slot, admission) = match gate.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(reason) => {
                tracing::debug!(%peer, reason, "connection refused");
                refuse(&tcp, reason);
                continue;
            }
        };
        tracing::debug!(%peer, ?admission, "connection admitted");
        let _ = tcp.set_nodelay(true);
        let conn = builder.serve_connection(
            TokioIo::new(CountedTcp::new(tcp, slot, limits.write_timeout)),
            connection_service(app.clone(), peer, admission),
        );
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn.with_upgrades());
            let mut signal_closed = std::pin::pin!(signal_tx.closed().fuse());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = &mut signal_closed => conn.as_mut().graceful_shutdown(),
                }
            }
            // Shutdown waits until every connection task has dropped its receiver.
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
    Ok(())
}

const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// What the accept loop does after an error that is not one connection's: count and log it,
/// back off (5 ms doubling to 1 s), and when the process is out of file descriptors, spend the
/// reserve descriptor to take the waiting connection off the backlog and refuse it, so the kernel
/// does not keep reporting it while the loop backs off.
struct AcceptErrors {
    reserve_fd: Option<std::fs::File>,
    backoff: Duration,
}

impl AcceptErrors {
    fn new() -> Self {
        Self {
            reserve_fd: open_reserve_fd(),
            backoff: Duration::from_millis(5),
        }
    }

    /// A connection was accepted: the next error starts from the shortest backoff.
    fn reset(&mut self) {
        self.backoff = Duration::from_millis(5);
    }

    async fn back_off(&mut self, e: &io::Error, listener: &TcpListener) {
        metrics::counter!("agentwire_accept_errors_total").increment(1);
        tracing::error!(error = %e, backoff_ms = self.backoff.as_millis() as u64, "accept error");
        if e.raw_os_error() == Some(EMFILE) || e.raw_os_error() == Some(ENFILE) {
            drop(self.reserve_fd.take());
            if let Ok(Ok((tcp, _))) = tokio::time::timeout(Duration::ZERO, listener.accept()).await
            {
                refuse(&tcp, "fd_limit");
            }
            self.reserve_fd = open_reserve_fd();
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
    }
}

fn open_reserve_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers 503 without waiting (a full send buffer just drops it) and closes the socket.
fn refuse(tcp: &TcpStream, reason: &'static str) {
    metrics::counter!("agentwire_connections_refused_total", "reason" => reason).increment(1);
    let answer = if reason == "per_ip" {
        REFUSED_PER_IP
    } else {
        REFUSED_GLOBAL
    };
    let _ = tcp.try_write(answer);
}

/// The hyper service of one connection: the app with [`ConnectInfo`] set, or only the health
/// routes for a connection in the health reserve.
fn connection_service(
    app: Router,
    peer: SocketAddr,
    admission: Admission,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        async move {
            let mut req = req.map(Body::new);
            if admission == Admission::HealthOnly && !is_health_route(req.uri().path()) {
                return Ok(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "too many connections; retry later",
                )
                .into_response());
            }
            req.extensions_mut().insert(ConnectInfo(peer));
            app.oneshot(req).await
        }
    })
}

fn is_health_route(path: &str) -> bool {
    ["/health/live", "/health/ready", "/health", "/metrics"]
        .iter()
        .any(|route| path.ends_with(route))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max_total: usize, max_per_ip: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max_total,
            max_per_ip,
            open: Mutex::new(GateCounts::default()),
        })
    }

    #[test]
    fn the_per_ip_cap_refuses_one_address_and_not_another() {
        let gate = gate(100, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let _one = gate.admit(a).unwrap();
        let two = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), "per_ip");
        assert!(gate.admit(b).is_ok());
        drop(two);
        assert!(gate.admit(a).is_ok(), "a closed connection frees its slot");
    }

    #[test]
    fn above_the_global_cap_only_the_health_reserve_is_admitted() {
        let gate = gate(2, usize::MAX);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let mut held = Vec::new();
        for _ in 0..2 {
            let (slot, admission) = gate.admit(ip).unwrap();
            assert_eq!(admission, Admission::Full);
            held.push(slot);
        }
        for _ in 0..HEALTH_RESERVE {
            let (slot, admission) = gate.admit(ip).unwrap();
            assert_eq!(admission, Admission::HealthOnly);
            held.push(slot);
        }
        assert_eq!(gate.admit(ip).unwrap_err(), "global");
        held.clear();
        assert_eq!(gate.open.lock().unwrap().total, 0);
        assert!(gate.open.lock().unwrap().per_ip.is_empty());
    }

    #[test]
    fn the_refusal_bodies_have_their_declared_length() {
        for answer in [REFUSED_GLOBAL, REFUSED_PER_IP] {
            let text = std::str::from_utf8(answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("content-length: {}", body.len())));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"]["code"], "unavailable");
        }
    }
}
