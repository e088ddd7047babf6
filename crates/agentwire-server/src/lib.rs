//! The agentwire server: an axum [`router`] with `/ws`, `/health*` and the demo page, the
//! [`serve`] entry point with graceful shutdown, and the `agentwire` binary built on them.
//!
//! Embed it in your own axum service by nesting [`router`] — or call [`serve`] with a listener
//! you bound yourself (tests bind port 0):
//!
//! ```no_run
//! use agentwire_server::{AppState, serve, start};
//! use agentwire_startup::AgentwireConfig;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ready = start(AgentwireConfig::default(), Vec::new()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on {}", listener.local_addr()?);
//! serve(listener, AppState::new(ready), async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod debug;
mod demo;
mod error;
mod health;
mod shutdown;
mod state;
mod ws;

use std::future::Future;
use std::sync::Arc;

use agentwire_agent_registry::InMemoryAgentRegistry;
use agentwire_core::ErrorCode;
use agentwire_health_monitor::HealthCheck;
use agentwire_startup::{AgentwireConfig, Ready, Startup, StartupError};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

pub use auth::{AuthError, AuthRequest, Authenticate, Authenticator, user_id};
pub use error::ApiError;
pub use shutdown::shutdown_signal;
pub use state::AppState;

/// Runs every startup phase with the built-in agents and `extra_checks`.
///
/// # Errors
/// The [`StartupError`] of the first phase that fails.
pub async fn start(
    config: AgentwireConfig,
    extra_checks: Vec<Arc<dyn HealthCheck>>,
) -> Result<Ready, StartupError> {
    let registry = InMemoryAgentRegistry::with_builtins(config.agents.demo);
    start_with_registry(config, registry, extra_checks).await
}

/// Runs every startup phase with your own registry (it must have the `echo` agent, which the
/// critical-path check runs).
///
/// # Errors
/// The [`StartupError`] of the first phase that fails.
pub async fn start_with_registry<R: agentwire_agent_registry::AgentRegistry>(
    config: AgentwireConfig,
    registry: R,
    extra_checks: Vec<Arc<dyn HealthCheck>>,
) -> Result<Ready, StartupError> {
    Startup::new(config)?
        .connect_broker()
        .await?
        .build_bridge()?
        .register_agents(registry)?
        .register_health_checks(extra_checks)
        .finalize()
        .await
}

/// The HTTP routes: `/ws`, `/health/live`, `/health/ready`, `/health`, `/` and `/agentwire.js`.
/// Nest it in your own router to add agentwire to an existing service.
pub fn router(state: AppState) -> Router {
    let body_limit = state.ready().config().limits.max_body_bytes;
    let dev = state.ready().config().auth.mode == agentwire_startup::AuthMode::Dev;
    let router = Router::new();
    // Debug routes exist only with dev auth, which is refused off loopback.
    let router = if dev {
        router.route("/debug/disconnect", axum::routing::post(debug::disconnect))
    } else {
        router
    };
    router
        .route("/ws", get(ws::upgrade))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health", get(health::full))
        .route("/", get(demo::index))
        .route("/agentwire.js", get(demo::client_js))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

/// Serves `state` on `listener` until `shutdown` completes, then drains gracefully: readiness
/// turns 503, new connections are refused, runs get `shutdown.grace` to finish (then are
/// cancelled), queues flush, and sockets close with 1001. Also runs the background upkeep
/// (idle-stream sweeping, periodic health checks) while serving.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ready = state.ready();
    let maintenance = tokio::spawn(ready.bridge().clone().run_maintenance());
    let health = tokio::spawn(
        ready
            .monitor()
            .clone()
            .run_periodic(ready.config().health.interval),
    );
    let app = router(state.clone());
    let drain_state = state.clone();
    // Event frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm holds a
    // flush back until the client's delayed ACK (tens of ms; docs/benchmarks.md).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            shutdown::drain(&drain_state).await;
        })
        .await;
    maintenance.abort();
    health.abort();
    result
}
