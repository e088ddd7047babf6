//! `llm`: many runs of an LLM agent stream tokens from a scripted OpenAI-compatible model server
//! that this generator serves itself, at a set rate. Each token's text is the time the model
//! server sent it (µs on the generator's clock), so the latency of an `agent_message_delta` is
//! the time agentwire added between the chunk leaving the model and its frame reaching the
//! client (plus two loopback hops).
//!
//! The agentwire server under test needs an agent pointing at the model server, e.g.
//! `AGENTWIRE_AGENTS__BENCH__KIND=openai AGENTWIRE_AGENTS__BENCH__BASE_URL=http://127.0.0.1:8090/v1
//! AGENTWIRE_AGENTS__BENCH__MODEL=bench AGENTWIRE_LIMITS__MAX_RUNS_PER_USER=2`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{Ws, connect, now_us};
use crate::scenario::cpu_ticks;
use crate::{BenchArgs, Report, Timing};

/// The `llm` scenario's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LlmLoad {
    pub(crate) streams: usize,
    pub(crate) tokens_per_s: f64,
    pub(crate) tokens_per_run: usize,
    pub(crate) model_listen: SocketAddr,
    pub(crate) timing: Timing,
}

#[derive(Debug, Default)]
struct Counters {
    tokens: AtomicU64,
    runs: AtomicU64,
    errors: AtomicU64,
}

/// Serves the scripted model, drives `streams` connections (one run in flight each) on `agent`,
/// and reports the delta latency and the server's CPU per token.
pub(crate) async fn run(args: &BenchArgs, agent: &str, load: LlmLoad) -> Result<Report, String> {
    let listener = tokio::net::TcpListener::bind(load.model_listen)
        .await
        .map_err(|e| format!("model server: bind {}: {e}", load.model_listen))?;
    let gap = Duration::from_secs_f64(1.0 / load.tokens_per_s.max(0.001));
    let tokens = load.tokens_per_run;
    let app = Router::new()
        .route(
            "/v1/models",
            get(|| async { r#"{"data":[{"id":"bench"}]}"# }),
        )
        .route(
            "/v1/chat/completions",
            post(move || async move { stream(gap, tokens) }),
        );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let counters = Arc::new(Counters::default());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let tag = std::process::id();
    let mut tasks = Vec::new();
    for i in 0..load.streams {
        let ws = connect(args.addr, &format!("llm-{tag}-{i}"), None).await?;
        let driver = Driver {
            agent: agent.to_owned(),
            counters: counters.clone(),
            measuring: measuring.clone(),
            stop: stop.clone(),
        };
        tasks.push(tokio::spawn(driver.run(ws)));
    }
    tokio::time::sleep(load.timing.warmup).await;
    measuring.store(true, Relaxed);
    let began = Instant::now();
    let cpu0 = args.server_pid.and_then(cpu_ticks);
    let (tokens0, runs0) = (counters.tokens.load(Relaxed), counters.runs.load(Relaxed));
    tokio::time::sleep(load.timing.duration).await;
    let measured = began.elapsed().as_secs_f64();
    let (tokens1, runs1) = (counters.tokens.load(Relaxed), counters.runs.load(Relaxed));
    let cpu1 = args.server_pid.and_then(cpu_ticks);
    measuring.store(false, Relaxed);
    stop.store(true, Relaxed);

    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut failures = 0u64;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(30), t).await {
            Ok(Ok(Ok(h))) => latency.add(&h).map_err(|e| e.to_string())?,
            _ => failures += 1,
        }
    }
    server.abort();
    let tokens = tokens1 - tokens0;
    let mut report = Report::new(&args.label, "llm");
    report
        .param("streams", load.streams as u64)
        .param("tokens_per_s_per_stream", load.tokens_per_s)
        .param("tokens_per_run", load.tokens_per_run as u64)
        .param("seconds", load.timing.duration.as_secs_f64());
    report
        .metric("tokens_per_s", tokens as f64 / measured)
        .metric("runs_per_s", (runs1 - runs0) as f64 / measured)
        .latency("delta_latency", &latency)
        .metric("error_frames", counters.errors.load(Relaxed))
        .metric("failed_connections", failures);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        // USER_HZ = 100: ticks of 10 ms.
        let cpu_s = b.saturating_sub(a) as f64 / 100.0;
        report
            .metric("server_cpu_pct", 100.0 * cpu_s / measured)
            .metric(
                "server_cpu_us_per_token",
                cpu_s * 1e6 / (tokens.max(1) as f64),
            );
    }
    Ok(report)
}

/// One streamed completion: a role chunk, `tokens` content chunks `gap` apart whose text is
/// the send time, a finish chunk, usage, `[DONE]`.
fn stream(gap: Duration, tokens: usize) -> Response {
    let body = futures_util::stream::unfold(0usize, move |n| async move {
        let chunk = match n {
            0 => r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
                .to_owned(),
            n if n <= tokens => {
                tokio::time::sleep(gap).await;
                format!(
                    r#"data: {{"choices":[{{"index":0,"delta":{{"content":"{} "}}}}]}}"#,
                    now_us()
                )
            }
            n if n == tokens + 1 => concat!(
                r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
                "\n\n",
                r#"data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
                "\n\ndata: [DONE]"
            )
            .to_owned(),
            _ => return None,
        };
        Some((Ok::<_, Infallible>(Bytes::from(chunk + "\n\n")), n + 1))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

struct Driver {
    agent: String,
    counters: Arc<Counters>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Driver {
    /// Keeps one run in flight until told to stop; returns the latencies it measured.
    async fn run(self, mut ws: Ws) -> Result<Histogram<u64>, String> {
        let mut latency =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
        let mut n = 0u64;
        let send = |n: u64| {
            Message::text(format!(
                r#"{{"type":"user_message","id":"l{n}","agent":"{}","content":"go"}}"#,
                self.agent
            ))
        };
        ws.send(send(n)).await.map_err(|e| e.to_string())?;
        while let Some(frame) = ws.next().await {
            let Ok(Message::Text(text)) = frame else {
                continue;
            };
            if text.starts_with(r#"{"type":"agent_message_delta""#) {
                let sent = text
                    .find(r#""delta":""#)
                    .and_then(|i| text[i + 9..].split(' ').next())
                    .and_then(|d| d.parse::<u64>().ok());
                if let Some(sent) = sent
                    && self.measuring.load(Relaxed)
                {
                    let _ = latency.record(now_us().saturating_sub(sent).max(1));
                    self.counters.tokens.fetch_add(1, Relaxed);
                }
            } else if text.starts_with(r#"{"type":"agent_completed""#)
                || text.starts_with(r#"{"type":"agent_error""#)
            {
                if text.starts_with(r#"{"type":"agent_error""#) {
                    self.counters.errors.fetch_add(1, Relaxed);
                }
                self.counters.runs.fetch_add(1, Relaxed);
                if self.stop.load(Relaxed) {
                    break;
                }
                n += 1;
                ws.send(send(n)).await.map_err(|e| e.to_string())?;
            } else if text.starts_with(r#"{"type":"error""#) {
                self.counters.errors.fetch_add(1, Relaxed);
                return Err(text.to_string());
            }
        }
        Ok(latency)
    }
}
