//! `GET /metrics`: agentwire's Prometheus recorder, installed only on request, and its text
//! rendering.
//!
//! The component crates record through the `metrics` facade where things happen (the bridge,
//! the executor, startup, the WebSocket session). The library never installs a global recorder
//! by itself: the `agentwire` binary calls [`install_metrics_recorder`] first thing, and an
//! embedding application either does the same or keeps its own recorder (agentwire's metrics
//! then go to it, and `/metrics` answers 404). `docs/operations.md` lists every metric.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{ApiError, AppState, MetricsScraper};

/// Buckets of every `*_seconds` histogram: 100 µs to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs agentwire's Prometheus recorder as the process's global `metrics` recorder, once per
/// process, and returns the handle that renders it; `/metrics` serves that rendering. Later
/// calls return the same handle.
///
/// Nothing in the library calls it: the `agentwire` binary does, before [`start`](crate::start)
/// (so the startup phases are measured). An application that embeds agentwire calls it once,
/// before `start` and [`AppState::new`](crate::AppState::new) (the WebSocket writers bind their
/// metric handles then) — or installs its own recorder instead, which then receives agentwire's
/// metrics, while `/metrics` answers 404. If another recorder is already installed, this logs a
/// warning and the returned handle renders an empty, detached registry.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let metrics = agentwire_server::install_metrics_recorder();
/// let ready = agentwire_server::start(Default::default(), Vec::new()).await?;
/// let app = agentwire_server::router(agentwire_server::AppState::new(ready));
/// println!("{}", metrics.render()); // what GET /metrics serves
/// # let _ = app; Ok(()) }
/// ```
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

/// What kind of metric a `# HELP` line describes.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric agentwire records: kind, name, unit, help (`docs/operations.md` lists them too).
const METRICS: &[(Kind, &str, Option<Unit>, &str)] = &[
    (
        Kind::Gauge,
        "agentwire_connections",
        None,
        "Live WebSocket connections on this node.",
    ),
    (
        Kind::Gauge,
        "agentwire_tcp_connections",
        None,
        "Open TCP connections on this node, counted against limits.max_connections.",
    ),
    (
        Kind::Counter,
        "agentwire_connections_refused_total",
        None,
        "Connections refused before a request was read, by reason (global, per_ip, fd_limit).",
    ),
    (
        Kind::Counter,
        "agentwire_accept_errors_total",
        None,
        "accept() failures other than a reset by the peer (e.g. EMFILE); each backs off.",
    ),
    (
        Kind::Gauge,
        "agentwire_users_online",
        None,
        "Users with at least one live connection on this node.",
    ),
    (
        Kind::Gauge,
        "agentwire_streams",
        None,
        "User streams the broker holds (memory broker only).",
    ),
    (
        Kind::Gauge,
        "agentwire_queued_bytes",
        Some(Unit::Bytes),
        "Bytes waiting in the outgoing queues of all connections.",
    ),
    (
        Kind::Counter,
        "agentwire_events_accepted_total",
        None,
        "Events accepted into a user's stream (given a seq), by type.",
    ),
    (
        Kind::Counter,
        "agentwire_events_delivered_total",
        None,
        "Event frames written to a WebSocket, live or replayed, by type.",
    ),
    (
        Kind::Histogram,
        "agentwire_delivery_latency_seconds",
        Some(Unit::Seconds),
        "Live events: from acceptance by the broker to the socket flush.",
    ),
    (
        Kind::Counter,
        "agentwire_connection_closes_total",
        None,
        "Connections closed by agentwire for a policy reason, by reason.",
    ),
    (
        Kind::Counter,
        "agentwire_frame_errors_total",
        None,
        "Error frames sent in answer to a client frame, by code.",
    ),
    (
        Kind::Counter,
        "agentwire_auth_failures_total",
        None,
        "Requests refused with 401, by route.",
    ),
    (
        Kind::Counter,
        "agentwire_http_limited_total",
        None,
        "HTTP requests refused with 429 by a per-user bound, by reason (rate, publish_rate, streams).",
    ),
    (
        Kind::Counter,
        "agentwire_replays_total",
        None,
        "Replays from history started (resume or a hole in live delivery).",
    ),
    (
        Kind::Counter,
        "agentwire_replayed_events_total",
        None,
        "Events sent from history by replays.",
    ),
    (
        Kind::Counter,
        "agentwire_replay_gaps_total",
        None,
        "replay_gap frames sent: events a client asked for that history no longer held.",
    ),
    (
        Kind::Counter,
        "agentwire_runs_started_total",
        None,
        "Runs started, by agent.",
    ),
    (
        Kind::Counter,
        "agentwire_runs_finished_total",
        None,
        "Runs ended, by agent and outcome (completed, failed, cancelled, timeout).",
    ),
    (
        Kind::Histogram,
        "agentwire_run_duration_seconds",
        Some(Unit::Seconds),
        "Run duration, by agent and outcome.",
    ),
    (
        Kind::Histogram,
        "agentwire_tool_call_duration_seconds",
        Some(Unit::Seconds),
        "Tool call duration, by tool and ok.",
    ),
    (
        Kind::Counter,
        "agentwire_broker_operations_total",
        None,
        "Broker operations, by broker and op.",
    ),
    (
        Kind::Counter,
        "agentwire_broker_errors_total",
        None,
        "Failed broker operations, by broker and op.",
    ),
    (
        Kind::Histogram,
        "agentwire_broker_operation_duration_seconds",
        Some(Unit::Seconds),
        "Broker operation duration, by broker and op.",
    ),
    (
        Kind::Gauge,
        "agentwire_startup_phase_duration_seconds",
        Some(Unit::Seconds),
        "Duration of each startup phase of the last startup.",
    ),
    (
        Kind::Counter,
        "agentwire_startup_failures_total",
        None,
        "Startups that failed, by phase.",
    ),
    (
        Kind::Gauge,
        "agentwire_health_check_up",
        None,
        "1 when the health check passed in the last report, 0 when it failed, by check.",
    ),
];

/// `# HELP` lines for every metric.
fn describe() {
    for &(kind, name, unit, help) in METRICS {
        match (kind, unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>, _: MetricsScraper) -> Response {
    let Some(handle) = HANDLE.get().cloned() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            agentwire_core::ErrorCode::NotFound,
            "no agentwire metrics recorder: the application did not call \
             agentwire_server::install_metrics_recorder() (its own recorder has the metrics)",
        )
        .into_response();
    };
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
/// The drain runs on the blocking pool: five seconds of samples (one per run and one per written
/// batch) can take milliseconds to bucket, and a runtime worker must never pause that long.
pub(crate) async fn run_upkeep() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        // An application may install the recorder after serving began; without it there is
        // nothing of agentwire's to drain.
        let Some(handle) = HANDLE.get().cloned() else {
            continue;
        };
        let _ = tokio::task::spawn_blocking(move || handle.run_upkeep()).await;
    }
}
