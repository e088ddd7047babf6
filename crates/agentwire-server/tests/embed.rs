//! Embedding: agentwire's routes merged into and nested in someone else's axum app, served with
//! `serve_router`, with the app's own state, routes, fallback, auth and metrics recorder.

use std::time::Duration;

use agentwire_agent_registry::DemoSettings;
use agentwire_core::UserId;
use agentwire_server::{
    AppState, AuthError, AuthRequest, Authenticate, RouterBuilder, router, serve_router, start,
};
use agentwire_startup::AgentwireConfig;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Clone)]
struct MyState {
    home: &'static str,
}

/// The app's own auth: the `X-Demo-User` header is the user.
struct HeaderAuth;

impl Authenticate for HeaderAuth {
    fn authenticate(&self, request: &AuthRequest<'_>) -> Result<UserId, AuthError> {
        let user = request
            .headers
            .get("x-demo-user")
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Missing(" (send X-Demo-User)"))?;
        agentwire_server::user_id(user)
    }
}

async fn state(auth: impl Authenticate) -> AppState {
    let mut config = AgentwireConfig::default();
    config.agents.demo = DemoSettings::instant();
    let ready = start(config, Vec::new()).await.expect("startup");
    AppState::with_authenticator(ready, auth)
}

async fn spawn(
    app: Router,
    state: AppState,
) -> (
    String,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_router(listener, state, app, async move {
        let _ = rx.await;
    }));
    (addr, tx, task)
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn merged_into_an_app_with_its_own_state_fallback_and_auth() {
    let state = state(HeaderAuth).await;
    let agentwire = RouterBuilder::new(state.clone())
        .demo_page(false)
        .fallback(false)
        .build::<MyState>();
    let app = Router::new()
        .route("/", get(|State(s): State<MyState>| async move { s.home }))
        .route("/hello", get(|| async { "hello" }))
        .merge(agentwire)
        .fallback(|| async { "my own 404" })
        .with_state(MyState { home: "my home" });
    let (addr, stop, task) = spawn(app, state).await;

    assert_eq!(
        get_text(&format!("http://{addr}/")).await,
        (200, "my home".into())
    );
    assert_eq!(get_text(&format!("http://{addr}/hello")).await.1, "hello");
    assert_eq!(
        get_text(&format!("http://{addr}/nope")).await.1,
        "my own 404"
    );
    assert_eq!(get_text(&format!("http://{addr}/health/live")).await.0, 200);
    assert_eq!(
        get_text(&format!("http://{addr}/health/ready")).await.0,
        200
    );

    // /ws without the app's header: 401 before the upgrade; with it: the user it names.
    let url = format!("ws://{addr}/ws");
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err()
    );
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-demo-user", "grace".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str::<serde_json::Value>(&t).unwrap(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(hello["type"], "connection_established");
    assert_eq!(hello["data"]["user_id"], "grace");

    // Graceful shutdown closes the socket with 1001 and serve_router returns.
    let _ = stop.send(());
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close, Some(1001));
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn nested_under_a_prefix() {
    let state = state(HeaderAuth).await;
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .nest("/realtime", router(state.clone()));
    let (addr, stop, task) = spawn(app, state).await;

    assert_eq!(get_text(&format!("http://{addr}/hello")).await.1, "hello");
    assert_eq!(
        get_text(&format!("http://{addr}/realtime/health/live"))
            .await
            .0,
        200
    );
    let (code, body) = get_text(&format!("http://{addr}/realtime/nope")).await;
    assert_eq!(code, 404);
    assert!(body.contains("not_found"), "{body}");
    assert_eq!(get_text(&format!("http://{addr}/health/live")).await.0, 404);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_embedding_app_with_its_own_auth_gets_no_debug_routes() {
    let state = state(HeaderAuth).await;
    assert!(
        !state.debug_routes_enabled(),
        "dev mode, but not agentwire's own authenticator"
    );
    let app = agentwire_server::router(state.clone());
    let (addr, stop, task) = spawn(app, state).await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/debug/disconnect?user=anyone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// The library installs no global state: after `start`, `AppState` and `router`, the app's own
/// recorder still takes the process's slot, and receives agentwire's metrics; agentwire's own
/// `/metrics` has nothing to render (404). (The only test here that installs a recorder.)
#[tokio::test]
async fn an_embedding_app_keeps_its_own_metrics_recorder() {
    let state = state(HeaderAuth).await;
    // Under its own prefix, so the other tests' refused upgrades (`ws`) are not counted here.
    let app = Router::new().nest("/mine", router(state.clone()));
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let app_metrics = recorder.handle();
    metrics::set_global_recorder(recorder)
        .expect("agentwire left the global recorder to the application");
    let (addr, stop, task) = spawn(app, state).await;

    metrics::counter!("my_app_logins_total").increment(1);
    // A refused upgrade: agentwire counts it, in the app's recorder.
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/mine/ws")).await;
    assert!(refused.is_err());
    let rendered = app_metrics.render();
    assert!(rendered.contains("my_app_logins_total 1"), "{rendered}");
    assert!(
        rendered.contains("agentwire_auth_failures_total{route=\"mine/ws\"} 1"),
        "{rendered}"
    );

    let (code, body) = get_text(&format!("http://{addr}/mine/metrics")).await;
    assert_eq!(code, 404);
    assert!(body.contains("install_metrics_recorder"), "{body}");

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
