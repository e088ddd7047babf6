//! `AgentwireConfig`: every setting, its default, and how it is loaded
//! (defaults → TOML file → `AGENTWIRE_*` env → flags).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use agentwire_agent_registry::DemoSettings;
use agentwire_bridge::HistoryConfig;
use agentwire_llm::OpenAiAgentConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::{Phase, StartupError};

/// How users authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `?user=<id>` is trusted. Loopback only unless `allow_insecure_dev`.
    #[default]
    Dev,
    /// HS256 JWTs signed with `auth.jwt_secret`; `sub` is the user id, `exp` is required.
    Jwt,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `dev` or `jwt`.
    pub mode: AuthMode,
    /// The HS256 secret (at least 32 bytes); required for `jwt`.
    pub jwt_secret: Option<String>,
    /// The identity provider's JWKS endpoint: tokens with a `kid` are verified with its RS256,
    /// ES256 or EdDSA keys.
    pub jwks_url: Option<String>,
    /// When set, a token's `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, a token's `aud` must contain it; when unset, `aud` is not checked.
    pub audience: Option<String>,
    /// The furthest ahead a token's `exp` may lie; a token valid for longer is refused.
    #[serde(with = "humantime_serde")]
    pub max_token_lifetime: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            jwt_secret: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            max_token_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest inbound WebSocket message, in bytes; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Largest HTTP request body, in bytes; larger answers 413.
    pub max_body_bytes: usize,
    /// Outgoing bytes queued per connection before it is closed as a slow consumer (4008).
    pub queue_bytes: usize,
    /// Live connections per user.
    pub max_connections_per_user: usize,
    /// Runs in progress per user.
    pub max_runs_per_user: usize,
    /// Streams held at once (users with history or connections).
    pub max_users: usize,
    /// Sustained inbound frames per second per connection.
    pub messages_per_second: u32,
    /// Inbound frames a connection may send in a burst above the sustained rate.
    pub burst: u32,
    /// Sustained HTTP API requests per second per user (`/v1/runs`, `/v1/events`,
    /// `/v1/stream`, `/agui/{agent}`, …); over it and the burst, 429 `rate_limited`.
    pub http_requests_per_second: u32,
    /// HTTP API requests a user may make in a burst above the sustained rate.
    pub http_burst: u32,
    /// Sustained `/v1/publish` events per second per target user; over it and the burst, 429.
    pub publish_per_second: u32,
    /// `/v1/publish` events a user's stream may take in a burst above the sustained rate.
    pub publish_burst: u32,
    /// Concurrent HTTP streams per user (`/v1/stream`, `/agui/{agent}`, live `/ds` reads);
    /// one more is answered 429 `too_many_streams`.
    pub max_http_streams_per_user: usize,
    /// Longest a run may take before it ends with `agent_error {code:"timeout"}`.
    #[serde(with = "humantime_serde")]
    pub run_timeout: Duration,
    /// Open TCP connections on this node, before any request is read; over it a connection is
    /// refused at once with 503. Lowered at startup to fit the open-file limit.
    pub max_connections: usize,
    /// Open TCP connections from one IP address; over it a connection is refused at once.
    pub max_connections_per_ip: usize,
    /// Longest a connection may take to send a whole request head, counted from when the
    /// server starts waiting for one (a fresh connection, or the idle time between keep-alive
    /// requests).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest a request body may take to arrive.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Longest a write to a client socket may make no progress (a client that stops reading
    /// with the kernel's buffers full); then the socket is closed. It holds for every response,
    /// an SSE stream's, a WebSocket's, and the bytes still unsent after a stream ended.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// The largest event, in bytes of its JSON envelope, from every way in: a run's content
    /// (`/ws`, `/v1/runs`, `/agui`), `/v1/publish`, and what agents emit. Larger is refused with
    /// `payload_too_large`.
    pub max_event_bytes: usize,
    /// The most bytes of events one `GET /v1/events` page holds.
    pub events_page_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            queue_bytes: 1024 * 1024,
            max_connections_per_user: 16,
            max_runs_per_user: 8,
            max_users: 100_000,
            messages_per_second: 20,
            burst: 40,
            http_requests_per_second: 20,
            http_burst: 40,
            publish_per_second: 500,
            publish_burst: 1000,
            max_http_streams_per_user: 8,
            run_timeout: Duration::from_secs(300),
            max_connections: 100_000,
            max_connections_per_ip: 1_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_event_bytes: agentwire_bridge_factory::DEFAULT_MAX_EVENT_BYTES,
            events_page_bytes: 1024 * 1024,
        }
    }
}

/// `[heartbeat]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// How often the server pings each WebSocket.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A connection with no inbound traffic (pong or frame) for this long is closed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(20),
            timeout: Duration::from_secs(60),
        }
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long runs in progress may go on after SIGTERM before they are cancelled.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// The most the whole shutdown may take before the process exits anyway.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[health]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// How often the checks run in the background.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Longest one check may take.
    #[serde(with = "humantime_serde")]
    pub check_timeout: Duration,
    /// A report younger than this answers `/health` and `/health/ready` without new checks.
    #[serde(with = "humantime_serde")]
    pub cache: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            check_timeout: Duration::from_secs(2),
            cache: Duration::from_secs(1),
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Bearer token `GET /metrics` requires; open when unset.
    pub token: Option<String>,
}

/// `[redis]`: settings of the Redis broker (ignored by the memory broker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Replicas that must acknowledge an append (`WAIT`) before it counts as stored; 0 = none.
    pub wait_replicas: u32,
    /// How long an append waits for them before it fails.
    #[serde(with = "humantime_serde")]
    pub wait_timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
        }
    }
}

/// `[agents]`: the built-in `demo` agent's pacing, and agents defined in configuration
/// (`[agents.<name>]` with a `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AgentsConfig {
    /// Pacing of the built-in `demo` agent.
    pub demo: DemoSettings,
    /// `[agents.<name>]`: agents defined in configuration, by name.
    #[serde(flatten)]
    pub defined: BTreeMap<String, AgentDefinition>,
}

/// One `[agents.<name>]` table; `kind` names the implementation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum AgentDefinition {
    /// `kind = "openai"`: any OpenAI-compatible Chat Completions server (docs/llm-agents.md).
    Openai(OpenAiAgentConfig),
}

/// Every setting of agentwire. See `docs/configuration.md` for the table of keys, env names and
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentwireConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `memory`, `redis://…`, or `redis+cluster://host:port,host:port`.
    pub broker: String,
    /// API key for `POST /v1/publish`; the route is disabled without one.
    pub api_key: Option<String>,
    /// Allow dev auth on a non-loopback address (never in production).
    pub allow_insecure_dev: bool,
    /// Web origins (`https://app.example.com`) whose pages may call this server from a
    /// browser, besides its own origin (and loopback origins with dev auth).
    pub allowed_origins: Vec<String>,
    /// User authentication.
    pub auth: AuthConfig,
    /// History kept per user.
    pub history: HistoryConfig,
    /// Limits.
    pub limits: LimitsConfig,
    /// WebSocket liveness.
    pub heartbeat: HeartbeatConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// Health checks.
    pub health: HealthConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Built-in agents.
    pub agents: AgentsConfig,
    /// MCP servers whose tools agents may call (`[mcp.<name>]`, docs/mcp.md).
    pub mcp: agentwire_mcp::McpConfig,
    /// The Durable Streams protocol under `/ds` (docs/durable-streams.md).
    pub durable_streams: agentwire_durable_streams::DurableStreamsConfig,
    /// The Redis broker.
    pub redis: RedisSettings,
}

impl Default for AgentwireConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            broker: "memory".to_owned(),
            api_key: None,
            allow_insecure_dev: false,
            allowed_origins: Vec::new(),
            auth: AuthConfig::default(),
            history: HistoryConfig::default(),
            limits: LimitsConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            shutdown: ShutdownConfig::default(),
            health: HealthConfig::default(),
            metrics: MetricsConfig::default(),
            agents: AgentsConfig::default(),
            mcp: agentwire_mcp::McpConfig::default(),
            durable_streams: Default::default(),
            redis: RedisSettings::default(),
        }
    }
}

/// The top-level keys; env variables `AGENTWIRE_<KEY>` outside these are not config (e.g.
/// `AGENTWIRE_REQUIRE_REDIS` for the test suite) and are ignored.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "broker",
    "api_key",
    "allow_insecure_dev",
    "allowed_origins",
    "auth",
    "history",
    "limits",
    "heartbeat",
    "shutdown",
    "health",
    "metrics",
    "agents",
    "mcp",
    "durable_streams",
    "redis",
];

/// Settings given on the command line; they override file and env.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOverrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--auth`
    pub auth: Option<AuthMode>,
    /// `--broker`
    pub broker: Option<String>,
    /// `--allow-insecure-dev`
    pub allow_insecure_dev: bool,
}

impl AgentwireConfig {
    /// Loads defaults, then `file` (TOML), then `AGENTWIRE_*` env (nested keys joined by `__`),
    /// then `overrides`, and validates the result.
    ///
    /// # Errors
    /// A [`StartupError`] in phase `Config` naming the file or key that is wrong.
    pub fn load(file: Option<&Path>, overrides: &ConfigOverrides) -> Result<Self, StartupError> {
        let mut figment = Figment::from(Serialized::defaults(AgentwireConfig::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(StartupError::new(
                    Phase::Config,
                    "config file",
                    format!("{} does not exist or is not a file", path.display()),
                    "pass an existing TOML file to --config, or leave --config out to use defaults",
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed("AGENTWIRE_")
                .split("__")
                // Keys are still upper case here (figment lowercases them later).
                .filter(|k| {
                    let first = k
                        .as_str()
                        .split('.')
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    TOP_LEVEL_KEYS.contains(&first.as_str())
                }),
        );
        if let Some(listen) = overrides.listen {
            figment = figment.merge(Serialized::default("listen", listen));
        }
        if let Some(auth) = overrides.auth {
            figment = figment.merge(Serialized::default("auth.mode", auth));
        }
        if let Some(broker) = &overrides.broker {
            figment = figment.merge(Serialized::default("broker", broker));
        }
        if overrides.allow_insecure_dev {
            figment = figment.merge(Serialized::default("allow_insecure_dev", true));
        }
        let config: AgentwireConfig = figment.extract().map_err(|e| {
            let (key, cause) = e
                .into_iter()
                .next()
                .map(|e| crate::config_error::describe(&e))
                .unwrap_or_else(|| ("configuration".into(), String::new()));
            StartupError::new(
                Phase::Config,
                key,
                cause,
                "see docs/configuration.md for every key, its type and its default",
            )
        })?;
        config.validate()?;
        Ok(config)
    }
}
