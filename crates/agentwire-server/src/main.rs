//! The `agentwire` binary: parse flags, set up logging, run the startup chain, serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agentwire_server::{AppState, Authenticator, serve, shutdown_signal, start};
use agentwire_startup::{AgentwireConfig, AuthMode, ConfigOverrides};
use clap::{Args, Parser, Subcommand, ValueEnum};

// Every event is a handful of short-lived allocations (the envelope, its frame, queue slots);
// mimalloc's thread-local free lists serve them without a shared lock, for a little more RSS
// per idle connection (the figures are in docs/benchmarks.md). Off with
// `--no-default-features`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "agentwire",
    version,
    about = "Live progress of AI agent runs, delivered over WebSocket."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (defaults: 127.0.0.1:8080, dev auth, in-memory broker).
    Serve(ServeArgs),
    /// Run every startup phase, print the report, and exit without serving.
    Check(ConfigArgs),
    /// Print an HS256 JWT for a user, signed with auth.jwt_secret.
    Token {
        /// The user id (the token's `sub`).
        user: String,
        /// How long the token is valid, e.g. 1h, 30m.
        #[arg(long, default_value = "1h", value_parser = humantime_duration)]
        ttl: Duration,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Talk to a running server from the terminal: each line you type starts a run, shown live.
    Chat(agentwire_chat::ChatArgs),
    /// Moved: the load generator is its own binary, `agentwire-bench`, so this one does not link
    /// it. Kept hidden only to say where it went.
    #[command(hide = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// TOML config file; AGENTWIRE_* env overrides it, flags override env.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on, IP:PORT (a host name such as localhost:8080 is resolved).
    #[arg(long, value_parser = listen_address)]
    listen: Option<SocketAddr>,
    /// User authentication: dev (?user=) or jwt.
    #[arg(long, value_enum)]
    auth: Option<AuthArg>,
    /// Event broker: memory (one node), or a Redis URL shared by every node, e.g.
    /// redis://127.0.0.1:6379.
    #[arg(long)]
    broker: Option<String>,
    /// Allow dev auth on a non-loopback address (never in production).
    #[arg(long)]
    allow_insecure_dev: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "pretty")]
    log_format: LogFormat,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Let the kernel back the heap with transparent huge pages (off by default: their faults
    /// stall delivery; see docs/configuration.md).
    #[arg(long)]
    huge_pages: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthArg {
    Dev,
    Jwt,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

/// `--listen`: an IP:PORT, or a host name resolved to its first address (IPv4 first).
fn listen_address(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let hint = "write IP:PORT, e.g. 127.0.0.1:8080";
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not an address to listen on ({e}); {hint}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{s:?} resolves to no address; {hint}"))
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    if s.trim().chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{s:?} has no unit; write e.g. {s}s, {s}m or {s}h"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 1h or 30m: {e}"))
}

impl ConfigArgs {
    fn load(&self) -> Result<AgentwireConfig, agentwire_startup::StartupError> {
        let overrides = ConfigOverrides {
            listen: self.listen,
            auth: self.auth.map(|a| match a {
                AuthArg::Dev => AuthMode::Dev,
                AuthArg::Jwt => AuthMode::Jwt,
            }),
            broker: self.broker.clone(),
            allow_insecure_dev: self.allow_insecure_dev,
        };
        AgentwireConfig::load(self.config.as_deref(), &overrides)
    }

    fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // Colour only on a terminal: escape codes in a log file are noise.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Json => builder.json().init(),
            LogFormat::Pretty => builder.init(),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let began = std::time::Instant::now();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(ServeArgs { config, huge_pages }) => {
            config.init_logging();
            if !huge_pages {
                keep_huge_pages_off();
            }
            run_serve(&config, began).await
        }
        Command::Check(args) => {
            args.init_logging();
            match startup(&args).await {
                Ok(ready) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(ready.report().as_ref()).unwrap_or_default()
                    );
                    match ready.check_model_endpoints().await {
                        Ok(lines) => lines.iter().for_each(|line| println!("{line}")),
                        Err(e) => return report(e),
                    }
                    println!(
                        "agentwire check: all phases passed in {:.1} ms",
                        ready.report().total_ms
                    );
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::Bench { args } => {
            eprintln!(
                "agentwire: the load generator is its own binary now: \
                 cargo run --release -p agentwire-bench -- {} (see docs/benchmarks.md)",
                args.join(" ")
            );
            ExitCode::from(2)
        }
        Command::Chat(args) => agentwire_chat::main(args).await,
        Command::Token { user, ttl, config } => match config.load() {
            Ok(c) => match Authenticator::from_config(&c).mint(&user, ttl) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("agentwire token: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("agentwire: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas, and
/// the kernel zeroes a whole 2 MiB page inside the fault that first touches it: a worker would
/// stall for that long while history grows. `--huge-pages` keeps them.
fn keep_huge_pages_off() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "could not turn transparent huge pages off");
    }
}

async fn startup(args: &ConfigArgs) -> Result<agentwire_startup::Ready, ExitCode> {
    let config = args.load().map_err(report)?;
    // The binary owns the process: it installs the global recorder `/metrics` renders, before
    // the first startup phase so the phase durations are recorded.
    agentwire_server::install_metrics_recorder();
    start(config, Vec::new()).await.map_err(report)
}

fn report(e: agentwire_startup::StartupError) -> ExitCode {
    eprintln!("agentwire: {e}");
    ExitCode::FAILURE
}

async fn run_serve(args: &ConfigArgs, began: std::time::Instant) -> ExitCode {
    let ready = match startup(args).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let config = ready.config().clone();
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "agentwire: startup failed in phase Finalize: listener: cannot bind {}: {e} (hint: pick a free address with --listen)",
                config.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if config.auth.mode == AuthMode::Dev {
        tracing::warn!(
            "dev auth: ?user=<id> is trusted without a password; use --auth jwt in production"
        );
    }
    tracing::info!(
        listen = %addr,
        startup_ms = format!("{:.2}", ready.report().total_ms),
        to_ready_ms = format!("{:.2}", began.elapsed().as_secs_f64() * 1000.0),
        "agentwire ready: open http://{addr}/"
    );
    let timeout = config.shutdown.timeout;
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        let _ = signalled_tx.send(());
    };
    let server = serve(listener, AppState::new(ready), shutdown);
    tokio::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        _ = async {
            let _ = signalled_rx.await;
            // One extra second past the drain budget for the listener to stop.
            tokio::time::sleep(timeout + Duration::from_secs(1)).await;
        } => {
            tracing::warn!("shutdown took longer than shutdown.timeout; exiting");
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => {
            tracing::info!("agentwire stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agentwire: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
