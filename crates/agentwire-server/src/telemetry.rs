//! `GET /metrics`: the process-wide Prometheus recorder and its text rendering.
//!
//! The component crates record through the `metrics` facade where things happen (the bridge,
//! the executor, startup, the WebSocket session); this module installs the one global
//! Prometheus recorder they record into and renders it. `docs/operations.md` lists every metric.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{ApiError, AppState};

/// Buckets of every `*_seconds` histogram: 100 µs to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs agentwire's Prometheus recorder as the process's global `metrics` recorder, once per
/// process, and returns the handle that renders it. Later calls return the same handle.
///
/// [`start`](crate::start), [`start_with_registry`](crate::start_with_registry) and the routers
/// call it, so startup phases are measured too. If the process already has another global
/// recorder (your application installed its own before agentwire), agentwire's metrics go to
/// that recorder and `/metrics` renders only an empty, detached registry.
pub fn install_metrics_recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("the bucket list is not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
            } else {
                describe();
            }
            handle
        })
        .clone()
}

/// `# HELP` lines for every metric.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "agentwire_connections",
        "Live WebSocket connections on this node."
    );
    describe_gauge!(
        "agentwire_users_online",
        "Users with at least one live connection on this node."
    );
    describe_gauge!(
        "agentwire_streams",
        "User streams the broker holds (memory broker only)."
    );
    describe_gauge!(
        "agentwire_queued_bytes",
        Unit::Bytes,
        "Bytes waiting in the outgoing queues of all connections."
    );
    describe_counter!(
        "agentwire_events_accepted_total",
        "Events accepted into a user's stream (given a seq), by type."
    );
    describe_counter!(
        "agentwire_events_delivered_total",
        "Event frames written to a WebSocket, live or replayed, by type."
    );
    describe_histogram!(
        "agentwire_delivery_latency_seconds",
        Unit::Seconds,
        "Live events: from acceptance by the broker to the socket flush."
    );
    describe_counter!(
        "agentwire_connection_closes_total",
        "Connections closed by agentwire for a policy reason, by reason."
    );
    describe_counter!(
        "agentwire_frame_errors_total",
        "Error frames sent in answer to a client frame, by code."
    );
    describe_counter!(
        "agentwire_auth_failures_total",
        "Requests refused with 401, by route."
    );
    describe_counter!(
        "agentwire_replays_total",
        "Replays from history started (resume or a hole in live delivery)."
    );
    describe_counter!(
        "agentwire_replayed_events_total",
        "Events sent from history by replays."
    );
    describe_counter!(
        "agentwire_replay_gaps_total",
        "replay_gap frames sent: events a client asked for that history no longer held."
    );
    describe_counter!("agentwire_runs_started_total", "Runs started, by agent.");
    describe_counter!(
        "agentwire_runs_finished_total",
        "Runs ended, by agent and outcome (completed, failed, cancelled, timeout)."
    );
    describe_histogram!(
        "agentwire_run_duration_seconds",
        Unit::Seconds,
        "Run duration, by agent and outcome."
    );
    describe_histogram!(
        "agentwire_tool_call_duration_seconds",
        Unit::Seconds,
        "Tool call duration, by tool and ok."
    );
    describe_counter!(
        "agentwire_broker_operations_total",
        "Broker operations, by broker and op."
    );
    describe_counter!(
        "agentwire_broker_errors_total",
        "Failed broker operations, by broker and op."
    );
    describe_histogram!(
        "agentwire_broker_operation_duration_seconds",
        Unit::Seconds,
        "Broker operation duration, by broker and op."
    );
    describe_gauge!(
        "agentwire_startup_phase_duration_seconds",
        Unit::Seconds,
        "Duration of each startup phase of the last startup."
    );
    describe_counter!(
        "agentwire_startup_failures_total",
        "Startups that failed, by phase."
    );
    describe_gauge!(
        "agentwire_health_check_up",
        "1 when the health check passed in the last report, 0 when it failed, by check."
    );
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.ready().config().metrics.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            metrics::counter!("agentwire_auth_failures_total", "route" => "metrics").increment(1);
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                agentwire_core::ErrorCode::Unauthorized,
                "GET /metrics needs `Authorization: Bearer <metrics.token>`",
            )
            .into_response();
        }
    }
    let handle = install_metrics_recorder();
    // Gauges read at scrape time from this node's state.
    let stats = state.ready().bridge().stats();
    metrics::gauge!("agentwire_connections").set(stats.connections as f64);
    metrics::gauge!("agentwire_users_online").set(stats.users as f64);
    metrics::gauge!("agentwire_queued_bytes").set(stats.queued_bytes as f64);
    if let Some(streams) = stats.streams {
        metrics::gauge!("agentwire_streams").set(streams as f64);
    }
    if let Some(report) = state.ready().monitor().last_report() {
        for check in &report.checks {
            metrics::gauge!("agentwire_health_check_up", "check" => check.name.clone())
                .set(if check.ok { 1.0 } else { 0.0 });
        }
    }
    // Rendering drains every histogram's pending samples: off the runtime's workers (see
    // `run_upkeep`).
    let body = tokio::task::spawn_blocking(move || handle.render())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Drains histogram samples into their buckets every few seconds, so memory stays bounded even
/// when nothing scrapes. Runs forever; [`spawn_background`](crate::spawn_background) starts it.
///
/// The drain runs on the blocking pool: under load five seconds of samples (one per run and one
/// per written batch) take milliseconds to bucket, and on a worker thread that was a pause for
/// every connection of the node — it showed as the open-loop p99 (docs/benchmarks.md).
pub(crate) async fn run_upkeep() {
    let handle = install_metrics_recorder();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        let handle = handle.clone();
        let _ = tokio::task::spawn_blocking(move || handle.run_upkeep()).await;
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
