//! The phased startup as a typestate chain.

use std::sync::Arc;
use tokio::time::Instant;

use agentwire_agent_registry::{Agent, AgentRegistry, RunExecutor};
use agentwire_bridge::{
    AgentWebSocketBridge, BridgeConfig, Broker, MemoryBroker, UnconfiguredBridge,
};
use agentwire_bridge_factory::{BridgeFactory, RunLimits};
use agentwire_core::Configurable;
use agentwire_health_monitor::{BrokerCheck, CriticalPathCheck, HealthCheck, HealthMonitor};
use agentwire_llm::{ModelEndpointCheck, OpenAiAgent};
use agentwire_mcp::{McpServers, WithMcpTools};
use serde::Serialize;

use crate::{AgentwireConfig, Phase, StartupError};

/// How long one phase took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTiming {
    /// The phase.
    pub phase: Phase,
    /// Milliseconds it took.
    pub ms: f64,
}

/// The timings of every phase; shown in `/health` and logged.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct StartupReport {
    /// Each phase, in order.
    pub phases: Vec<PhaseTiming>,
    /// From the start of `Config` to the end of `Finalize`.
    pub total_ms: f64,
}

/// A startup in state `S`. Each phase is a method of exactly one state that consumes the startup
/// and returns the next state, so phases cannot be skipped or reordered — that is a compile
/// error, not a runtime surprise:
///
/// ```text
/// Startup::new(config)?              // Startup<ConfigLoaded>
///     .connect_broker().await?       // Startup<BrokerReady>
///     .build_bridge()?               // Startup<BridgeConfigured>
///     .register_agents(registry).await? // Startup<AgentsWired>
///     .register_health_checks(extra) // Startup<HealthRegistered>
///     .finalize().await?             // Ready: critical path proven
/// ```
///
/// ```
/// use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
/// use agentwire_startup::{AgentwireConfig, Startup};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), agentwire_startup::StartupError> {
/// let ready = Startup::new(AgentwireConfig::default())?
///     .connect_broker().await?
///     .build_bridge()?
///     .register_agents(InMemoryAgentRegistry::with_builtins(DemoSettings::instant())).await?
///     .register_health_checks(Vec::new())
///     .finalize().await?;
/// assert_eq!(ready.report().phases.len(), 6);
/// # Ok(()) }
/// ```
///
/// Skipping a phase does not compile:
///
/// ```compile_fail
/// use agentwire_startup::{AgentwireConfig, Startup};
/// let s = Startup::new(AgentwireConfig::default()).unwrap().build_bridge();
/// ```
#[derive(Debug)]
pub struct Startup<S> {
    state: S,
    report: StartupReport,
    began: Instant,
    phase_began: Instant,
}

/// State after `Config`.
#[derive(Debug)]
pub struct ConfigLoaded {
    config: AgentwireConfig,
}

/// State after `Broker`: the broker, built with the live sink of the bridge it will serve.
pub struct BrokerReady {
    config: AgentwireConfig,
    broker: Arc<dyn Broker>,
    bridge: UnconfiguredBridge,
}

impl std::fmt::Debug for BrokerReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerReady")
            .field("broker", &self.broker.name())
            .finish_non_exhaustive()
    }
}

/// State after `Bridge`.
#[derive(Debug)]
pub struct BridgeConfigured {
    config: AgentwireConfig,
    bridge: AgentWebSocketBridge,
}

/// State after `Agents`.
pub struct AgentsWired {
    config: AgentwireConfig,
    bridge: AgentWebSocketBridge,
    executor: RunExecutor,
    /// One per connected MCP server, registered in phase `Health`.
    mcp_checks: Vec<Arc<dyn HealthCheck>>,
    llm_agents: Vec<OpenAiAgent>,
}

impl std::fmt::Debug for AgentsWired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentsWired")
            .field("executor", &self.executor)
            .field("mcp_checks", &self.mcp_checks.len())
            .field("llm_agents", &self.llm_agents.len())
            .finish_non_exhaustive()
    }
}

/// State after `Health`.
#[derive(Debug)]
pub struct HealthRegistered {
    config: AgentwireConfig,
    bridge: AgentWebSocketBridge,
    executor: RunExecutor,
    monitor: HealthMonitor,
    critical_path: Arc<CriticalPathCheck>,
    llm_agents: Vec<OpenAiAgent>,
}

/// Everything a server needs, with the critical path proven.
#[derive(Debug, Clone)]
pub struct Ready {
    config: Arc<AgentwireConfig>,
    bridge: AgentWebSocketBridge,
    executor: RunExecutor,
    monitor: Arc<HealthMonitor>,
    report: Arc<StartupReport>,
    llm_agents: Arc<[OpenAiAgent]>,
}

impl<S> Startup<S> {
    fn next<T>(mut self, phase: Phase, state: T) -> Startup<T> {
        let ms = self.phase_began.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            phase = phase.as_str(),
            ms = format!("{ms:.2}"),
            "startup phase done"
        );
        metrics::gauge!("agentwire_startup_phase_duration_seconds", "phase" => phase.as_str())
            .set(ms / 1000.0);
        self.report.phases.push(PhaseTiming { phase, ms });
        Startup {
            state,
            report: self.report,
            began: self.began,
            phase_began: Instant::now(),
        }
    }
}

impl Startup<ConfigLoaded> {
    /// Phase `Config` with an already-loaded config: validates it.
    ///
    /// # Errors
    /// An invalid setting.
    pub fn new(config: AgentwireConfig) -> Result<Self, StartupError> {
        let began = Instant::now();
        config.validate()?;
        let s = Startup {
            state: (),
            report: StartupReport::default(),
            began,
            phase_began: began,
        };
        Ok(s.next(Phase::Config, ConfigLoaded { config }))
    }

    /// The configuration.
    pub fn config(&self) -> &AgentwireConfig {
        &self.state.config
    }

    /// Phase `Broker`: connects the event broker named by `broker` and proves it with a round
    /// trip.
    ///
    /// # Errors
    /// An unknown or unreachable broker.
    pub async fn connect_broker(self) -> Result<Startup<BrokerReady>, StartupError> {
        let config = self.state.config;
        let bridge = AgentWebSocketBridge::builder();
        let live = bridge.live_sink();
        let broker: Arc<dyn Broker> = match config.broker.as_str() {
            "memory" => Arc::new(MemoryBroker::new(
                config.history.clone(),
                config.limits.max_users,
                live,
            )),
            url if crate::broker::is_redis_url(url) => {
                crate::broker::connect_redis(url, &config, live).await?
            }
            other => {
                return Err(StartupError::new(
                    Phase::Broker,
                    "broker",
                    format!("unknown broker {other:?}"),
                    "use \"memory\", a redis:// URL or redis+cluster://host:port,host:port",
                ));
            }
        };
        // A real round trip, so a broken broker stops startup here rather than at the first run.
        broker.ping().await.map_err(|e| {
            StartupError::new(
                Phase::Broker,
                broker.name(),
                e.to_string(),
                "check that the broker is reachable",
            )
        })?;
        Ok(Startup {
            state: (),
            report: self.report,
            began: self.began,
            phase_began: self.phase_began,
        }
        .next(
            Phase::Broker,
            BrokerReady {
                config,
                broker,
                bridge,
            },
        ))
    }
}

impl Startup<BrokerReady> {
    /// The broker connected in phase `Broker`.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.state.broker
    }

    /// Phase `Bridge`: creates the bridge and configures it.
    ///
    /// # Errors
    /// A bridge setting out of range.
    pub fn build_bridge(self) -> Result<Startup<BridgeConfigured>, StartupError> {
        let BrokerReady {
            config,
            broker,
            bridge,
        } = self.state;
        let bridge = bridge
            .broker(broker)
            .configure(BridgeConfig {
                history: config.history.clone(),
                max_connections_per_user: config.limits.max_connections_per_user,
                max_users: config.limits.max_users,
                max_event_bytes: config.limits.max_event_bytes,
            })
            .map_err(|e| {
                StartupError::new(
                    Phase::Bridge,
                    "AgentWebSocketBridge",
                    e.to_string(),
                    "fix the setting in your config",
                )
            })?;
        let s = Startup {
            state: (),
            report: self.report,
            began: self.began,
            phase_began: self.phase_began,
        };
        Ok(s.next(Phase::Bridge, BridgeConfigured { config, bridge }))
    }
}

impl Startup<BridgeConfigured> {
    /// The configured bridge.
    pub fn bridge(&self) -> &AgentWebSocketBridge {
        &self.state.bridge
    }

    /// Phase `Agents`: connects every MCP server of `[mcp]` and adds its tools to the registry
    /// (as `mcp:<server>/<tool>`), builds the agents defined in configuration
    /// (`[agents.<name>]` with a `kind`) next to the registry's own, then builds the executor
    /// over the registry and a [`BridgeFactory`] over the bridge; the executor hands the
    /// registry the factory as its websocket manager.
    ///
    /// # Errors
    /// A required MCP server failed to connect; a configured agent names a tool the registry
    /// lacks, or a key variable that is not set; the registry has no `echo` agent (the
    /// critical-path check runs it).
    pub async fn register_agents<R: AgentRegistry>(
        self,
        registry: R,
    ) -> Result<Startup<AgentsWired>, StartupError> {
        let BridgeConfigured { config, bridge } = self.state;
        let mcp = McpServers::connect_all(&config.mcp).await.map_err(|e| {
            StartupError::new(
                Phase::Agents,
                format!("mcp.{}", e.server().unwrap_or_default()),
                e.cause(),
                e.hint(),
            )
        })?;
        let mcp_checks = mcp.health_checks();
        let registry = WithMcpTools::new(registry, mcp);
        let factory = BridgeFactory::new(
            Arc::new(bridge.clone()),
            RunLimits {
                max_runs_per_user: config.limits.max_runs_per_user,
            },
        );
        let llm_agents = crate::llm::build_agents(&config, &registry, registry.servers())?;
        let registry = crate::llm::WithConfiguredAgents {
            inner: registry,
            configured: llm_agents
                .iter()
                .map(|a| (a.name().to_owned(), Arc::new(a.clone()) as Arc<dyn Agent>))
                .collect(),
        };
        // The executor hands the registry the factory (`set_websocket_manager`) and keeps it.
        let executor = RunExecutor::new(registry, factory, config.limits.run_timeout);
        if executor.registry().agent("echo").is_none() {
            return Err(StartupError::new(
                Phase::Agents,
                std::any::type_name::<R>(),
                "the registry has no `echo` agent",
                "register agentwire_agent_registry::EchoAgent and EchoTool: the critical-path check runs it",
            ));
        }
        let s = Startup {
            state: (),
            report: self.report,
            began: self.began,
            phase_began: self.phase_began,
        };
        Ok(s.next(
            Phase::Agents,
            AgentsWired {
                config,
                bridge,
                executor,
                mcp_checks,
                llm_agents,
            },
        ))
    }
}

impl Startup<AgentsWired> {
    /// The executor.
    pub fn executor(&self) -> &RunExecutor {
        &self.state.executor
    }

    /// Phase `Health`: registers the critical-path check and `extra` checks.
    pub fn register_health_checks(
        self,
        extra: Vec<Arc<dyn HealthCheck>>,
    ) -> Startup<HealthRegistered> {
        let AgentsWired {
            config,
            bridge,
            executor,
            mcp_checks,
            llm_agents,
        } = self.state;
        let mut monitor = HealthMonitor::new(config.health.check_timeout);
        let critical_path = Arc::new(CriticalPathCheck::new(
            bridge.clone(),
            Arc::new(executor.clone()),
            config.health.check_timeout,
        ));
        monitor.register(critical_path.clone());
        monitor.register(Arc::new(BrokerCheck::new(bridge.broker().clone())));
        for agent in &llm_agents {
            monitor.register(Arc::new(ModelEndpointCheck::new(agent.clone())));
        }
        for check in mcp_checks.into_iter().chain(extra) {
            monitor.register(check);
        }
        let s = Startup {
            state: (),
            report: self.report,
            began: self.began,
            phase_began: self.phase_began,
        };
        s.next(
            Phase::Health,
            HealthRegistered {
                config,
                bridge,
                executor,
                monitor,
                critical_path,
                llm_agents,
            },
        )
    }
}

impl Startup<HealthRegistered> {
    /// Phase `Finalize`: runs a synthetic run through registry → executor → bridge → a loopback
    /// connection and requires its five events in order.
    ///
    /// # Errors
    /// The round trip failed; the error says at which step.
    pub async fn finalize(self) -> Result<Ready, StartupError> {
        let HealthRegistered {
            config,
            bridge,
            executor,
            monitor,
            critical_path,
            llm_agents,
        } = self.state;
        critical_path.round_trip().await.map_err(|cause| {
            StartupError::new(
                Phase::Finalize,
                "critical_path",
                cause,
                "the echo agent, the executor or the bridge is broken; run `agentwire check` with RUST_LOG=debug",
            )
        })?;
        let s = Startup {
            state: (),
            report: self.report,
            began: self.began,
            phase_began: self.phase_began,
        };
        let mut done = s.next(Phase::Finalize, ());
        done.report.total_ms = done.began.elapsed().as_secs_f64() * 1000.0;
        Ok(Ready {
            config: Arc::new(config),
            bridge,
            executor,
            monitor: Arc::new(monitor),
            report: Arc::new(done.report),
            llm_agents: llm_agents.into(),
        })
    }
}

impl Ready {
    /// The configuration.
    pub fn config(&self) -> &Arc<AgentwireConfig> {
        &self.config
    }

    /// The bridge.
    pub fn bridge(&self) -> &AgentWebSocketBridge {
        &self.bridge
    }

    /// The executor.
    pub fn executor(&self) -> &RunExecutor {
        &self.executor
    }

    /// The health monitor.
    pub fn monitor(&self) -> &Arc<HealthMonitor> {
        &self.monitor
    }

    /// The agents defined in configuration (`[agents.<name>]`).
    pub fn llm_agents(&self) -> &[OpenAiAgent] {
        &self.llm_agents
    }

    /// The startup timings.
    pub fn report(&self) -> &Arc<StartupReport> {
        &self.report
    }
}
