//! Agents defined in configuration (`[agents.<name>]` with a `kind`): built and checked in phase
//! `Agents`, their model endpoints registered as non-critical health checks in phase `Health`.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentwire_agent_registry::{Agent, AgentInfo, AgentRegistry, Tool, ToolInfo};
use agentwire_bridge_factory::BridgeFactory;
use agentwire_llm::{InMemoryThreadStore, OpenAiAgent, ThreadStore};
use agentwire_mcp::{MCP_PREFIX, McpServers};

use crate::{AgentDefinition, AgentwireConfig, Phase, Ready, StartupError};

/// The registry the executor uses: the caller's registry plus the configured agents, which win
/// over a coded agent of the same name.
pub(crate) struct WithConfiguredAgents<R> {
    pub(crate) inner: R,
    pub(crate) configured: BTreeMap<String, Arc<dyn Agent>>,
}

impl<R: AgentRegistry> AgentRegistry for WithConfiguredAgents<R> {
    fn set_websocket_manager(&mut self, manager: BridgeFactory) {
        self.inner.set_websocket_manager(manager);
    }

    fn websocket_manager(&self) -> Option<&BridgeFactory> {
        self.inner.websocket_manager()
    }

    fn agent(&self, name: &str) -> Option<Arc<dyn Agent>> {
        self.configured
            .get(name)
            .cloned()
            .or_else(|| self.inner.agent(name))
    }

    fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.inner.tool(name)
    }

    fn agents(&self) -> Vec<AgentInfo> {
        let mut all: BTreeMap<String, AgentInfo> = self
            .inner
            .agents()
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        for (name, agent) in &self.configured {
            all.insert(
                name.clone(),
                AgentInfo {
                    name: name.clone(),
                    description: agent.description().to_owned(),
                },
            );
        }
        all.into_values().collect()
    }

    fn tools(&self) -> Vec<ToolInfo> {
        self.inner.tools()
    }
}

/// Builds the configured agents, checking that each one's tools are registered in `registry`
/// (`mcp:<server>/<tool>` and `mcp:<server>/*` through `mcp`) and its key variable is set.
/// Threads are kept in Redis when the broker is Redis (so every node remembers them), in memory
/// otherwise.
pub(crate) fn build_agents(
    config: &AgentwireConfig,
    registry: &dyn AgentRegistry,
    mcp: &McpServers,
) -> Result<Vec<OpenAiAgent>, StartupError> {
    let mut agents = Vec::new();
    for (name, definition) in &config.agents.defined {
        let AgentDefinition::Openai(settings) = definition;
        let component = format!("agents.{name}");
        for selector in &settings.tools {
            check_tool_selector(selector, registry, mcp).map_err(|(cause, hint)| {
                StartupError::new(Phase::Agents, &component, cause, hint)
            })?;
        }
        let threads = thread_store(config, &component, settings.memory)?;
        let agent = OpenAiAgent::new(name.clone(), settings.clone(), threads).map_err(|cause| {
            StartupError::new(
                Phase::Agents,
                &component,
                cause,
                "set the variable api_key_env names, or fix the setting (docs/llm-agents.md)",
            )
        })?;
        agents.push(agent);
    }
    Ok(agents)
}

/// Where an agent's thread memory lives: in the broker's Redis when the broker is one Redis
/// server (every node remembers), in this process otherwise. A Redis Cluster broker keeps
/// threads in the process for now (docs/llm-agents.md), with a warning.
fn thread_store(
    config: &AgentwireConfig,
    component: &str,
    memory: agentwire_llm::MemoryConfig,
) -> Result<Arc<dyn ThreadStore>, StartupError> {
    if config.broker.starts_with("redis+cluster://") {
        tracing::warn!(
            agent = component,
            "thread memory stays in this process: the Redis thread store does not speak Redis Cluster yet"
        );
    } else if config.broker.starts_with("redis") {
        #[cfg(feature = "redis")]
        return agentwire_llm::RedisThreadStore::new(&config.broker, "agentwire", memory)
            .map(|store| Arc::new(store) as Arc<dyn ThreadStore>)
            .map_err(|cause| {
                StartupError::new(Phase::Agents, component, cause, "fix the broker URL")
            });
    }
    Ok(Arc::new(InMemoryThreadStore::new(memory)))
}

/// Whether an agent's `tools` entry names something: an MCP selector resolves through its server
/// (a server whose `*` lists no tool yet is fine: it may add some), any other name ending in `*`
/// matches at least one registered tool, a plain name is registered. `Err((cause, hint))`.
fn check_tool_selector(
    selector: &str,
    registry: &dyn AgentRegistry,
    mcp: &McpServers,
) -> Result<(), (String, String)> {
    if selector.starts_with(MCP_PREFIX) {
        return mcp
            .resolve(selector)
            .map(drop)
            .map_err(|e| (e.to_string(), e.hint().to_owned()));
    }
    let known = || {
        let names: Vec<String> = registry.tools().into_iter().map(|t| t.name).collect();
        format!("use registered tools: {}", names.join(", "))
    };
    let found = match selector.strip_suffix('*') {
        Some(prefix) => registry.tools().iter().any(|t| t.name.starts_with(prefix)),
        None => registry.tool(selector).is_some(),
    };
    if found {
        Ok(())
    } else {
        Err((format!("tool {selector:?} is not registered"), known()))
    }
}

impl Ready {
    /// Reaches each configured model server (`GET {base_url}/models`), as `agentwire check`
    /// does. Returns one line per agent.
    ///
    /// # Errors
    /// The first agent whose server cannot be used, with the cause (phase `Agents`).
    pub async fn check_model_endpoints(&self) -> Result<Vec<String>, StartupError> {
        let mut lines = Vec::new();
        for agent in self.llm_agents() {
            let config = agent.config();
            match agent.probe().await {
                Ok(n) => lines.push(format!(
                    "agent {}: {} answers ({n} model(s) listed)",
                    agent.name(),
                    config.base_url
                )),
                Err(e) => {
                    return Err(StartupError::new(
                        Phase::Agents,
                        format!("agents.{}", agent.name()),
                        format!("GET {}: {e}", config.url("models")),
                        "start the model server, or fix base_url / the key (docs/llm-agents.md)",
                    ));
                }
            }
        }
        Ok(lines)
    }
}
