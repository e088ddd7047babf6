//! `agentwire-bench`: agentwire's load generator, run as its own binary `agentwire-bench`.
//!
//! Use it to measure an agentwire server — or the bare baseline in `benches/baseline`, which
//! speaks the same frames — over real WebSocket connections on 127.0.0.1. Scenarios:
//!
//! - `runs`: C connections (one user each), W `echo` runs in flight on each; runs/s, events/s,
//!   and the latency from sending `user_message` to receiving its `agent_completed`;
//! - `fanout`: U users × K connections; connection 0 of each user keeps W runs in flight, all K
//!   count the event frames they receive; delivery latency = `user_message` sent → its
//!   `agent_completed` received on each of the K connections;
//! - `idle`: N idle connections from rotating 127.0.0.x source addresses, and the server's RSS
//!   per connection when given its PID;
//! - `startup`: spawns a server command and times until it accepts a WebSocket and greets;
//! - `llm`: S connections each keep one run of an LLM agent in flight while this generator serves
//!   the agent's OpenAI-compatible model, streaming tokens at a set rate; the latency agentwire
//!   adds per streamed token, and the server's CPU per token;
//! - `ds`: a Durable Streams server (agentwire's `/ds`, or the reference Node server) under S
//!   producers appending to their own streams and T live tailers per stream: appends/s, the
//!   append latency and the append → tail latency (`benches/ds.sh`).
//!
//! With `--redis host:port[,…]` (the Redis servers behind a Redis broker), `runs` also reports
//! Redis CPU and Redis commands per event, from `INFO cpu` and `INFO commandstats`.
//!
//! Latency needs no bookkeeping: the message `content` is the send time (µs since the generator
//! started) and the `echo` agent returns it as the `agent_completed` result.
//!
//! `docs/benchmarks.md` has the method and the figures; `benches/run.sh` reproduces them.

mod conn;
mod ds;
mod ds_http;
mod idle;
mod llm;
mod redis_stats;
mod report;
mod scenario;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use ds::Live;
pub use report::Report;

/// `agentwire-bench …`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
    /// The server's address (its `/ws` endpoint is used).
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// A label for the report, e.g. `agentwire` or `baseline`.
    #[arg(long, global = true, default_value = "server")]
    pub label: String,
    /// Print the report as one JSON object instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// The server's PID: adds its CPU time (runs, fanout) and RSS (idle) from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Redis servers behind the server's broker (`host:port`, comma-separated: one Redis or a
    /// cluster's primaries): adds Redis CPU and commands per event (`runs`) from `INFO`.
    #[arg(long, global = true, value_delimiter = ',')]
    pub redis: Vec<String>,
}

/// One benchmark scenario.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// C connections, W echo runs in flight each: runs/s, events/s, run latency.
    Runs {
        /// Connections (one user each).
        #[arg(short = 'c', long, default_value_t = 100)]
        connections: usize,
        /// Runs in flight per connection (closed loop); ignored with --rate.
        #[arg(short = 'w', long, default_value_t = 4)]
        inflight: usize,
        /// Open loop: this many user_messages per second in total, spread over the connections.
        #[arg(long)]
        rate: Option<f64>,
        /// Warm-up and measured time.
        #[command(flatten)]
        timing: Timing,
    },
    /// U users × K connections; one connection per user keeps W runs in flight.
    Fanout {
        /// Users.
        #[arg(short = 'u', long, default_value_t = 50)]
        users: usize,
        /// Connections per user.
        #[arg(short = 'k', long, default_value_t = 4)]
        per_user: usize,
        /// Runs in flight per user.
        #[arg(short = 'w', long, default_value_t = 4)]
        inflight: usize,
        /// Warm-up and measured time.
        #[command(flatten)]
        timing: Timing,
    },
    /// N idle connections; server RSS per connection with --server-pid.
    Idle {
        /// Connections to open and hold.
        #[arg(short = 'n', long, default_value_t = 10_000)]
        connections: usize,
        /// Connections opened at once.
        #[arg(long, default_value_t = 256)]
        parallel: usize,
        /// How long to hold the connections after the last one is open.
        #[arg(long, default_value = "1", value_parser = secs)]
        hold: Duration,
    },
    /// S streams of an LLM agent whose model (served here) sends tokens at a set rate: the
    /// latency per streamed token and the server's CPU per token. The server needs an agent
    /// `--agent` with `base_url = http://<model-listen>/v1` (docs/benchmarks.md).
    Llm {
        /// Concurrent streams (one connection and one run in flight each).
        #[arg(short = 's', long, default_value_t = 100)]
        streams: usize,
        /// Tokens per second of each stream.
        #[arg(long, default_value_t = 20.0)]
        tokens_per_s: f64,
        /// Tokens per run.
        #[arg(long, default_value_t = 40)]
        tokens_per_run: usize,
        /// Where the scripted model server listens.
        #[arg(long, default_value = "127.0.0.1:8090")]
        model_listen: SocketAddr,
        /// The agent to run.
        #[arg(long, default_value = "bench")]
        agent: String,
        /// Warm-up and measured time.
        #[command(flatten)]
        timing: Timing,
    },
    /// S streams with one producer each (closed loop, or --rate in total) and T live tailers
    /// per stream, through the Durable Streams protocol alone: appends/s, append latency,
    /// append → tail latency. Ignores --addr.
    Ds {
        /// The Durable Streams base URL: `http://127.0.0.1:8080/ds` (agentwire),
        /// `http://127.0.0.1:4437` (the reference server).
        #[arg(long)]
        url: String,
        /// A query added to every request, e.g. `user=bench` for agentwire's dev auth.
        #[arg(long, default_value = "")]
        query: String,
        /// Streams, each with one producer (its own connection, one append in flight).
        #[arg(short = 's', long, default_value_t = 50)]
        streams: usize,
        /// Live tailers per stream (each its own connection).
        #[arg(short = 't', long, default_value_t = 1)]
        tailers: usize,
        /// How the tailers read.
        #[arg(long, value_enum, default_value = "sse")]
        live: Live,
        /// Open loop: this many appends per second in total, spread over the producers.
        #[arg(long)]
        rate: Option<f64>,
        /// Bytes per message (one JSON object per append).
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Warm-up and measured time.
        #[command(flatten)]
        timing: Timing,
    },
    /// Spawn `CMD…`, time until it greets a WebSocket client at --addr, kill it; repeat.
    Startup {
        /// Times to start the server.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// The server command and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

/// How long a throughput scenario warms up and measures.
#[derive(Debug, Clone, Copy, Args)]
pub struct Timing {
    /// Seconds measured (after the warm-up).
    #[arg(short = 'd', long, default_value = "3", value_parser = secs)]
    pub duration: Duration,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value = "0.5", value_parser = secs)]
    pub warmup: Duration,
}

fn secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

/// Runs one scenario and returns its report.
///
/// # Errors
/// A message when the server cannot be reached or the scenario cannot run.
pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    if args.redis.is_empty() || !matches!(args.scenario, Scenario::Runs { .. }) {
        return run_scenario(args).await;
    }
    let before = redis_stats::read(&args.redis)?;
    let mut report = run_scenario(args).await?;
    let after = redis_stats::read(&args.redis)?;
    // In `runs` every event goes to exactly one connection: events received = events published
    // (warm-up included on both sides).
    let events = report
        .metrics
        .iter()
        .find(|(k, _)| k == "events_total")
        .and_then(|(_, v)| v.as_u64())
        .unwrap_or(0)
        .max(1) as f64;
    report
        .metric(
            "redis_commands_per_event",
            after.calls.saturating_sub(before.calls) as f64 / events,
        )
        .metric(
            "redis_cpu_us_per_event",
            (after.cpu_s - before.cpu_s).max(0.0) * 1e6 / events,
        );
    Ok(report)
}

async fn run_scenario(args: &BenchArgs) -> Result<Report, String> {
    match &args.scenario {
        Scenario::Runs {
            connections,
            inflight,
            rate,
            timing,
        } => {
            let load = scenario::Load {
                users: *connections,
                per_user: 1,
                inflight: *inflight,
                rate: *rate,
                timing: *timing,
            };
            scenario::drive(args, "runs", load).await
        }
        Scenario::Fanout {
            users,
            per_user,
            inflight,
            timing,
        } => {
            let load = scenario::Load {
                users: *users,
                per_user: *per_user,
                inflight: *inflight,
                rate: None,
                timing: *timing,
            };
            scenario::drive(args, "fanout", load).await
        }
        Scenario::Idle {
            connections,
            parallel,
            hold,
        } => idle::idle(args, *connections, args.server_pid, *parallel, *hold).await,
        Scenario::Startup { repeat, cmd } => scenario::startup(args, *repeat, cmd).await,
        Scenario::Llm {
            streams,
            tokens_per_s,
            tokens_per_run,
            model_listen,
            agent,
            timing,
        } => {
            let load = llm::LlmLoad {
                streams: *streams,
                tokens_per_s: *tokens_per_s,
                tokens_per_run: *tokens_per_run,
                model_listen: *model_listen,
                timing: *timing,
            };
            llm::run(args, agent, load).await
        }
        Scenario::Ds {
            url,
            query,
            streams,
            tailers,
            live,
            rate,
            size,
            timing,
        } => {
            let load = ds::DsLoad {
                streams: *streams,
                tailers: *tailers,
                live: *live,
                rate: *rate,
                size: *size,
                timing: *timing,
            };
            ds::run(args, ds_http::Base::parse(url, query)?, load).await
        }
    }
}

/// Runs one scenario and prints its report (table or `--json`); the `bench` command's body.
pub async fn main(args: BenchArgs) -> ExitCode {
    match run(&args).await {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                println!("{}", report.to_table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agentwire-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
