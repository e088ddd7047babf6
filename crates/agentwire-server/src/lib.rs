//! The agentwire server: an axum [`router`] with `/ws`, `/health*`, `/metrics` and the demo page, the
//! [`serve`] entry point with graceful shutdown, and the `agentwire` binary built on them.
//!
//! Embed it in your own axum service: merge or nest [`router`] (or a [`RouterBuilder`] without
//! the demo page, for a router with your own state), decide the user id with your own
//! [`Authenticate`] via [`AppState::with_authenticator`], and serve the whole app with
//! [`serve_router`] — see `examples/embed_in_axum.rs` and `docs/extending.md`. Or call [`serve`]
//! with a listener you bound yourself (tests bind port 0); the `agentwire` binary does exactly
//! that:
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

mod accept;
mod auth;
mod debug;
mod demo;
mod durable;
mod durable_events;
mod durable_views;
mod error;
mod health;
mod http;
mod json_errors;
mod limits;
mod origin;
mod shutdown;
mod state;
mod telemetry;
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

pub use agentwire_auth::{AuthError, AuthRequest, Authenticate, Authenticator, Identity, user_id};
pub use auth::{
    AuthRejection, AuthenticatedIdentity, AuthenticatedUser, MetricsScraper, Publisher,
};
pub use error::ApiError;
pub use shutdown::shutdown_signal;
pub use state::AppState;
pub use telemetry::install_metrics_recorder;

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
        .register_agents(registry)
        .await?
        .register_health_checks(extra_checks)
        .finalize()
        .await
}

/// The HTTP routes: `/ws`, the HTTP API (`/v1/runs`, `/v1/runs/{run_id}/cancel`, `/v1/events`,
/// `/v1/stream`, `/v1/publish`, `/agui/{agent}`), `/health/live`, `/health/ready`, `/health`,
/// `/metrics`, the demo page (`/`, `/agentwire.js` — the browser client — and `/demo.js`), with
/// a JSON 404 fallback. Merge or nest it in your own router to add agentwire to an existing
/// service; use [`RouterBuilder`] to leave out the demo page or the fallback, or to attach the
/// routes to a router that has its own state.
///
/// ```no_run
/// use agentwire_server::{AppState, router, start};
/// use agentwire_startup::AgentwireConfig;
/// use axum::{Router, routing::get};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let ready = start(AgentwireConfig::default(), Vec::new()).await?;
/// // agentwire's routes under `/realtime`, next to your own routes.
/// let app: Router = Router::new()
///     .route("/hello", get(|| async { "hello" }))
///     .nest("/realtime", router(AppState::new(ready)));
/// # let _ = app; Ok(()) }
/// ```
pub fn router(state: AppState) -> Router {
    RouterBuilder::new(state).build()
}

/// Builds agentwire's routes for an existing axum application.
///
/// [`router`] is `RouterBuilder::new(state).build()`. The builder lets you
/// - leave out the demo page (`/`, `/agentwire.js`, `/demo.js`) when your app serves its own `/`
///   ([`Self::demo_page`]),
/// - leave out agentwire's JSON 404 fallback when your app has its own
///   ([`Self::fallback`]; axum refuses to merge two routers that both have one),
/// - attach the routes to a router with your own state type: [`Self::build`] returns
///   `Router<S>` for any `S`, so you can merge before your own `.with_state(…)`.
///
/// The `/ws` route authenticates with the [`Authenticate`] of the [`AppState`] — see
/// [`AppState::with_authenticator`] to decide the user id with your own auth.
///
/// ```no_run
/// use agentwire_server::{AppState, RouterBuilder, start};
/// use agentwire_startup::AgentwireConfig;
/// use axum::{Router, extract::State, routing::get};
///
/// #[derive(Clone)]
/// struct MyState { greeting: &'static str }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let ready = start(AgentwireConfig::default(), Vec::new()).await?;
/// let agentwire = RouterBuilder::new(AppState::new(ready))
///     .demo_page(false)
///     .fallback(false)
///     .build::<MyState>();
/// let app: Router = Router::new()
///     .route("/", get(|State(s): State<MyState>| async move { s.greeting }))
///     .merge(agentwire)
///     .with_state(MyState { greeting: "my own home page" });
/// # let _ = app; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RouterBuilder {
    state: AppState,
    demo_page: bool,
    fallback: bool,
}

impl RouterBuilder {
    /// All routes, the demo page and the fallback, over `state`.
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            demo_page: true,
            fallback: true,
        }
    }

    /// Whether to serve the demo page at `/` and `/agentwire.js` (default: yes).
    pub fn demo_page(mut self, on: bool) -> Self {
        self.demo_page = on;
        self
    }

    /// Whether unmatched paths get agentwire's JSON 404 (default: yes). Turn it off to merge into
    /// a router that has its own fallback.
    pub fn fallback(mut self, on: bool) -> Self {
        self.fallback = on;
        self
    }

    /// The routes, ready to merge into or nest in a `Router<S>`.
    pub fn build<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let state = self.state;
        let body_limit = state.ready().config().limits.max_body_bytes;
        let dev = state.debug_routes_enabled();
        let mut router = Router::new()
            .route("/ws", get(ws::upgrade))
            .merge(http::routes())
            .route("/health/live", get(health::live))
            .route("/health/ready", get(health::ready))
            .route("/health", get(health::full))
            .route("/metrics", get(telemetry::metrics));
        // Debug routes exist only with agentwire's own dev auth, which is refused off loopback.
        if dev {
            router = router.route("/debug/disconnect", axum::routing::post(debug::disconnect));
        }
        if let Some(ds) = state.durable_streams() {
            let mount = state.ready().config().durable_streams.mount.clone();
            let ds = ds
                .clone()
                .router()
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    durable::stream_cap,
                ));
            router = router.nest(&mount, ds);
        }
        if self.demo_page {
            router = router
                .route("/", get(demo::index))
                .route("/agentwire.js", get(demo::client_js))
                .route("/demo.js", get(demo::demo_js));
        }
        if self.fallback {
            router = router.fallback(not_found);
        }
        let config = state.ready().config();
        // `allow_insecure_dev` serves dev auth to other machines on purpose: no Host check then.
        let origins =
            origin::OriginPolicy::new(dev && !config.allow_insecure_dev, &config.allowed_origins);
        router
            .layer(DefaultBodyLimit::max(body_limit))
            .layer(axum::middleware::map_response(json_errors::as_json))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(origins),
                origin::guard,
            ))
            .with_state(state)
    }
}

async fn not_found() -> impl IntoResponse {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

/// Serves `state` on `listener` until `shutdown` completes, then drains gracefully: readiness
/// turns 503, new connections are refused, runs get `shutdown.grace` to finish (then are
/// cancelled), queues flush, and sockets close with 1001. Also runs the background upkeep
/// (idle-stream sweeping, periodic health checks) while serving.
///
/// The `agentwire` binary calls exactly this; tests bind port 0 and pass their own shutdown
/// future. It is [`serve_router`] with [`router`]`(state)`.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    serve_router(listener, state, app, shutdown).await
}

/// Serves your own `app` — a router that contains agentwire's routes (see [`RouterBuilder`]) —
/// with agentwire's background upkeep and graceful drain, exactly as [`serve`] does.
///
/// It also enforces the bounds that hold before a request is read (docs/security.md): the
/// connection caps of `limits.max_connections` and `limits.max_connections_per_ip`, the
/// header and body read timeouts. It serves HTTP/1.1 (with WebSocket upgrades); put a
/// TLS-terminating proxy in front for HTTP/2.
///
/// ```no_run
/// use agentwire_server::{AppState, router, serve_router, shutdown_signal, start};
/// use agentwire_startup::AgentwireConfig;
/// use axum::{Router, routing::get};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let state = AppState::new(start(AgentwireConfig::default(), Vec::new()).await?);
/// let app = Router::new()
///     .route("/hello", get(|| async { "hello" }))
///     .merge(router(state.clone()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// serve_router(listener, state, app, shutdown_signal()).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve_router(
    listener: TcpListener,
    state: AppState,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let background = spawn_background(&state);
    let limits = state.ready().config().limits.clone();
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_read_timeout,
    ));
    let result = accept::serve_bounded(listener, app, &limits, async move {
        shutdown.await;
        drain(&state).await;
    })
    .await;
    drop(background);
    result
}

/// The background upkeep of a running node — idle-stream sweeping and periodic health checks —
/// started by [`spawn_background`]. Dropping it stops both.
///
/// Only needed when you drive your own server loop instead of [`serve`] / [`serve_router`].
#[derive(Debug)]
#[must_use = "the background tasks stop when this is dropped"]
pub struct BackgroundTasks {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the background upkeep for `state` on the current tokio runtime. Keep the returned
/// value alive while serving.
pub fn spawn_background(state: &AppState) -> BackgroundTasks {
    let ready = state.ready();
    BackgroundTasks {
        tasks: vec![
            tokio::spawn(ready.bridge().clone().run_maintenance()),
            tokio::spawn(
                ready
                    .monitor()
                    .clone()
                    .run_periodic(ready.config().health.interval),
            ),
            tokio::spawn(telemetry::run_upkeep()),
        ],
    }
}

/// Drains the node within `shutdown.timeout`: readiness turns 503, new connections are refused,
/// runs get `shutdown.grace` to finish (then are cancelled), queues flush, and sockets close with
/// 1001. [`serve`] and [`serve_router`] call it when their shutdown future completes; call it
/// yourself from your own graceful-shutdown hook when you drive your own server loop.
pub async fn drain(state: &AppState) {
    shutdown::drain(state).await;
}
