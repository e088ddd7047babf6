//! The `AgentRegistry` contract and the default in-memory registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentwire_bridge_factory::BridgeFactory;
use serde::Serialize;

use crate::{Agent, Tool};

/// A registered agent, as listed to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentInfo {
    /// The agent's name.
    pub name: String,
    /// What it does.
    pub description: String,
}

/// A registered tool, as offered to agents and language models.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolInfo {
    /// The tool's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its arguments ([`Tool::parameters`]).
    pub parameters: serde_json::Value,
}

impl ToolInfo {
    /// The listing of `tool`.
    pub fn of(tool: &dyn Tool) -> Self {
        Self {
            name: tool.name().to_owned(),
            description: tool.description().to_owned(),
            parameters: tool.parameters(),
        }
    }
}

/// Where the executor finds agents and tools.
///
/// # What an implementor must guarantee
/// - `set_websocket_manager` is called once, by [`RunExecutor::new`](crate::RunExecutor::new)
///   at startup (phase `Agents`), before any run, with the [`BridgeFactory`] the executor
///   publishes through. Keep it and return it from `websocket_manager` if your agents or tools
///   need it (to start or cancel runs themselves); the executor holds its own copy, so a
///   registry cannot leave it without one.
/// - `agent` and `tool` are cheap lookups that do not block; they may be called on every run.
///
/// A registry without `set_websocket_manager` does not compile (there is no default):
///
/// ```compile_fail
/// use std::sync::Arc;
/// use agentwire_agent_registry::{Agent, AgentInfo, AgentRegistry, Tool};
/// use agentwire_bridge_factory::BridgeFactory;
///
/// struct Forgetful;
/// impl AgentRegistry for Forgetful {
///     fn websocket_manager(&self) -> Option<&BridgeFactory> { None }
///     fn agent(&self, _: &str) -> Option<Arc<dyn Agent>> { None }
///     fn tool(&self, _: &str) -> Option<Arc<dyn Tool>> { None }
///     fn agents(&self) -> Vec<AgentInfo> { vec![] }
/// }
/// ```
///
/// The same registry with the method compiles:
///
/// ```
/// use std::sync::Arc;
/// use agentwire_agent_registry::{Agent, AgentInfo, AgentRegistry, Tool};
/// use agentwire_bridge_factory::BridgeFactory;
///
/// #[derive(Default)]
/// struct Minimal { manager: Option<BridgeFactory> }
/// impl AgentRegistry for Minimal {
///     fn set_websocket_manager(&mut self, manager: BridgeFactory) { self.manager = Some(manager) }
///     fn websocket_manager(&self) -> Option<&BridgeFactory> { self.manager.as_ref() }
///     fn agent(&self, _: &str) -> Option<Arc<dyn Agent>> { None }
///     fn tool(&self, _: &str) -> Option<Arc<dyn Tool>> { None }
///     fn agents(&self) -> Vec<AgentInfo> { vec![] }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an AgentRegistry",
    note = "implement set_websocket_manager, websocket_manager, agent, tool and agents (see InMemoryAgentRegistry)"
)]
pub trait AgentRegistry: Send + Sync + 'static {
    /// Receives the factory runs publish through (the executor's). Keep it; return it from
    /// `websocket_manager`.
    fn set_websocket_manager(&mut self, manager: BridgeFactory);

    /// The factory given to `set_websocket_manager`, if any.
    fn websocket_manager(&self) -> Option<&BridgeFactory>;

    /// The agent called `name`.
    fn agent(&self, name: &str) -> Option<Arc<dyn Agent>>;

    /// The tool called `name`.
    fn tool(&self, name: &str) -> Option<Arc<dyn Tool>>;

    /// Every agent, sorted by name.
    fn agents(&self) -> Vec<AgentInfo>;

    /// Every tool, sorted by name. The default lists none: a registry that can enumerate its
    /// tools should say so, since agents offer this list to language models.
    fn tools(&self) -> Vec<ToolInfo> {
        Vec::new()
    }
}

/// The default registry: agents and tools registered in code, held in memory.
#[derive(Default)]
pub struct InMemoryAgentRegistry {
    agents: BTreeMap<String, Arc<dyn Agent>>,
    tools: BTreeMap<String, Arc<dyn Tool>>,
    manager: Option<BridgeFactory>,
}

impl std::fmt::Debug for InMemoryAgentRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryAgentRegistry")
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .field("has_manager", &self.manager.is_some())
            .finish()
    }
}

impl InMemoryAgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the built-in `demo` and `echo` agents and their tools
    /// (`calculator`, `clock`, `echo`).
    pub fn with_builtins(demo: crate::DemoSettings) -> Self {
        let mut r = Self::new();
        crate::builtin::register(&mut r, demo);
        r
    }

    /// Adds (or replaces) an agent under its name. Takes the agent itself or an `Arc` of it.
    pub fn register_agent(&mut self, agent: impl Agent) -> &mut Self {
        self.agents.insert(agent.name().to_owned(), Arc::new(agent));
        self
    }

    /// Adds (or replaces) a tool under its name. Takes the tool itself or an `Arc` of it
    /// (`Arc<MyTool>` or `Arc<dyn Tool>`), e.g. a tool your application shares elsewhere.
    pub fn register_tool(&mut self, tool: impl Tool) -> &mut Self {
        self.tools.insert(tool.name().to_owned(), Arc::new(tool));
        self
    }
}

impl AgentRegistry for InMemoryAgentRegistry {
    fn set_websocket_manager(&mut self, manager: BridgeFactory) {
        self.manager = Some(manager);
    }

    fn websocket_manager(&self) -> Option<&BridgeFactory> {
        self.manager.as_ref()
    }

    fn agent(&self, name: &str) -> Option<Arc<dyn Agent>> {
        self.agents.get(name).cloned()
    }

    fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }

    fn agents(&self) -> Vec<AgentInfo> {
        self.agents
            .values()
            .map(|a| AgentInfo {
                name: a.name().to_owned(),
                description: a.description().to_owned(),
            })
            .collect()
    }

    fn tools(&self) -> Vec<ToolInfo> {
        self.tools
            .values()
            .map(|t| ToolInfo::of(t.as_ref()))
            .collect()
    }
}
