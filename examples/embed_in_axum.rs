//! Run with: cargo run --example embed_in_axum
//!
//! An existing axum application — its own routes, its own state, its own authentication — gains
//! agentwire's `/ws` and `/health*` routes.
//!
//! What it shows:
//! - `RouterBuilder::build::<MyState>()` gives agentwire's routes as a `Router<MyState>`, so they
//!   merge into the app *before* the app's own `.with_state(…)`; the demo page is left out because
//!   the app serves its own `/`.
//! - `AppState::with_authenticator` plugs the app's own auth into `/ws`: here a `X-Demo-User`
//!   header or a `demo_user` cookie names the user (a real app would check a session).
//! - `serve_router` serves the merged app with agentwire's background upkeep and graceful drain —
//!   the same entry the `agentwire` binary uses.
//!
//! Try it (in another terminal):
//!
//! ```text
//! curl http://127.0.0.1:3000/hello
//! curl http://127.0.0.1:3000/health
//! echo 'what is 6*7?' | agentwire chat --url http://127.0.0.1:3000 --header 'X-Demo-User: ada'
//! ```
//!
//! With `AGENTWIRE_EXAMPLE_SMOKE=1` it binds port 0, checks the routes, runs an agent over a real
//! WebSocket, prints `smoke ok: embed_in_axum` and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agentwire_core::UserId;
use agentwire_server::{
    AppState, AuthError, AuthRequest, Authenticate, RouterBuilder, serve_router, shutdown_signal,
    start,
};
use agentwire_startup::AgentwireConfig;
use axum::Router;
use axum::extract::State;
use axum::http::header::COOKIE;
use axum::routing::get;

/// The application's own state; agentwire's state lives beside it.
#[derive(Clone)]
struct MyState {
    name: &'static str,
    hellos: Arc<AtomicU64>,
}

/// The application's own route.
async fn hello(State(app): State<MyState>) -> String {
    let n = app.hellos.fetch_add(1, Ordering::Relaxed) + 1;
    format!("hello from {} (#{n})", app.name)
}

/// The application's own authentication decides who connects to `/ws`.
struct DemoAuth;

impl Authenticate for DemoAuth {
    fn authenticate(&self, request: &AuthRequest<'_>) -> Result<UserId, AuthError> {
        let header = request
            .headers
            .get("x-demo-user")
            .and_then(|v| v.to_str().ok());
        let cookie = request
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("demo_user="));
        match header.or(cookie) {
            // `user_id` validates the id and refuses agentwire's reserved ids.
            Some(user) => agentwire_server::user_id(user),
            None => Err(AuthError::Missing(
                " (this app wants an X-Demo-User header or a demo_user cookie)",
            )),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::var_os("AGENTWIRE_EXAMPLE_SMOKE").is_some();

    let mut config = AgentwireConfig::default();
    if smoke {
        config.agents.demo = agentwire_agent_registry::DemoSettings::instant();
    }
    // agentwire installs no global state by itself: this app has no metrics recorder of its own,
    // so it installs agentwire's (served at /metrics), before startup so the phases are measured.
    agentwire_server::install_metrics_recorder();
    // Every startup phase, including the critical-path round trip, before anything is served.
    let ready = start(config, Vec::new()).await?;
    let agentwire = AppState::with_authenticator(ready, DemoAuth);

    let app = Router::new()
        .route(
            "/",
            get(|| async { "my app's home page; agentwire lives at /ws" }),
        )
        .route("/hello", get(hello))
        .merge(
            RouterBuilder::new(agentwire.clone())
                .demo_page(false) // the app serves its own `/`
                .build::<MyState>(),
        )
        .with_state(MyState {
            name: "embed_in_axum",
            hellos: Arc::default(),
        });

    let addr = if smoke {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;

    if !smoke {
        println!(
            "listening on http://{addr} — try /hello, /health and ws://{addr}/ws with X-Demo-User"
        );
        serve_router(listener, agentwire, app, shutdown_signal()).await?;
        return Ok(());
    }

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_router(listener, agentwire, app, async move {
        let _ = stopped.await;
    }));
    smoke_check(addr).await?;
    let _ = stop.send(());
    server.await??;
    println!("smoke ok: embed_in_axum");
    Ok(())
}

/// Exercises the running app for real: its route, agentwire's routes, its auth, one run.
async fn smoke_check(addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use agentwire_test::WsClient;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let hello = reqwest::get(format!("http://{addr}/hello"))
        .await?
        .text()
        .await?;
    assert_eq!(hello, "hello from embed_in_axum (#1)");
    let ready = reqwest::get(format!("http://{addr}/health/ready")).await?;
    assert_eq!(ready.status(), 200);

    // No credentials the app accepts: 401 before the upgrade.
    let url = format!("ws://{addr}/ws");
    assert!(
        WsClient::connect(&url).await.is_err(),
        "unauthenticated /ws must fail"
    );

    // The app's cookie decides the user.
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert(COOKIE, "theme=dark; demo_user=ada".parse()?);
    let mut ada = WsClient::connect_request(request).await?;
    assert_eq!(ada.hello["data"]["user_id"], "ada");

    let (ack, events) = ada.run("c1", "demo", "what is 6*7?").await;
    assert_eq!(ack["id"], "c1");
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some("agent_completed".into())
    );
    let answer = &events.last().unwrap()["data"]["result"]["answer"];
    assert!(
        answer.as_str().unwrap_or_default().contains("42"),
        "{answer}"
    );
    ada.close().await;
    Ok(())
}
