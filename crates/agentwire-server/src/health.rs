//! `/health/live`, `/health/ready`, `/health`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

pub(crate) async fn live() -> Response {
    Json(json!({ "status": "live" })).into_response()
}

pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": "shutting down" })),
        )
            .into_response();
    }
    let config = state.ready().config();
    let report = state.ready().monitor().report(config.health.cache).await;
    if report.is_ready() {
        Json(json!({ "ready": true })).into_response()
    } else {
        let failing: Vec<_> = report
            .checks
            .iter()
            .filter(|c| c.critical && !c.ok)
            .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": report.summary, "failing": failing })),
        )
            .into_response()
    }
}

pub(crate) async fn full(State(state): State<AppState>) -> Response {
    let ready = state.ready();
    let report = ready.monitor().report(ready.config().health.cache).await;
    let stats = ready.bridge().stats();
    let status = if state.is_draining() {
        "unhealthy"
    } else {
        status_str(&report)
    };
    let body = json!({
        "status": status,
        "summary": if state.is_draining() { "Shutting down".to_owned() } else { report.summary.clone() },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.uptime_secs(),
        "startup": ready.report().as_ref(),
        "checks": report.checks,
        "checked_at": report.checked_at,
        "connections": stats.connections,
        "users": stats.users,
        "active_runs": ready.executor().factory().active_runs(),
    });
    let code = if status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body)).into_response()
}

fn status_str(report: &agentwire_health_monitor::HealthReport) -> &'static str {
    match report.status {
        agentwire_health_monitor::HealthStatus::Healthy => "healthy",
        agentwire_health_monitor::HealthStatus::Degraded => "degraded",
        agentwire_health_monitor::HealthStatus::Unhealthy => "unhealthy",
    }
}
