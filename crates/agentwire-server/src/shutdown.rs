//! Graceful shutdown.

use std::time::Duration;

use agentwire_core::CloseCode;
use tokio::time::Instant;

use crate::AppState;

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Drains the node within `shutdown.timeout`.
pub(crate) async fn drain(state: &AppState) {
    let config = state.ready().config().shutdown.clone();
    let deadline = Instant::now() + config.timeout;
    let ready = state.ready();
    let factory = ready.executor().factory();
    state.set_draining();
    ready.bridge().begin_shutdown();
    factory.stop_accepting();
    tracing::info!(active_runs = factory.active_runs(), grace = ?config.grace, "shutting down");
    let grace = config.grace.min(config.timeout);
    if !factory.wait_idle(grace).await {
        tracing::info!(
            active_runs = factory.active_runs(),
            "grace period over; cancelling runs"
        );
        factory.cancel_all();
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(2));
        factory.wait_idle(left).await;
    }
    ready.bridge().close_all(
        CloseCode::GOING_AWAY,
        "server shutting down; resume on another node",
    );
    state.ws_transport().sessions().close();
    if tokio::time::timeout_at(deadline, state.ws_transport().sessions().wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at the shutdown timeout");
    }
    tracing::info!("drained");
}
