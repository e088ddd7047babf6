//! Run with: cargo run --example custom_registry
//!
//! A custom `AgentRegistry` whose agents are described in a file (`examples/agents.toml`, or the
//! path in `AGENTS_FILE`): name, description, which tools, canned steps. The file is loaded and
//! validated at startup, then the registry goes through agentwire's whole startup, which calls
//! `set_websocket_manager` and proves the critical path by running the built-in `echo` agent.
//!
//! What it shows:
//! - implementing all of `AgentRegistry`: `set_websocket_manager` stores the `BridgeFactory`,
//!   `websocket_manager` returns it;
//! - agents defined by data, tools defined in code (the built-ins here);
//! - keeping the built-in `echo` agent and tool, which startup's critical-path check runs.
//!
//! Try it: `agentwire chat --user ada --agent greeter`, then type `Ada`.
//!
//! With `AGENTWIRE_EXAMPLE_SMOKE=1` it serves on port 0, runs `greeter` and `adder` over a real
//! WebSocket, checks the events, prints `smoke ok: custom_registry` and exits.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentwire_agent_registry::{
    Agent, AgentError, AgentInfo, AgentRegistry, CalculatorTool, ClockTool, EchoAgent, EchoTool,
    RunContext, Tool, async_trait,
};
use agentwire_bridge_factory::BridgeFactory;
use agentwire_server::{AppState, serve, shutdown_signal, start_with_registry};
use agentwire_startup::AgentwireConfig;
use serde::Deserialize;
use serde_json::{Value, json};

/// The file's shape.
#[derive(Debug, Deserialize)]
struct AgentsFile {
    agents: Vec<AgentSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tools: Vec<String>,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Step {
    Think {
        think: String,
    },
    Tool {
        tool: String,
        #[serde(default)]
        args: Value,
    },
    Say {
        say: String,
    },
}

/// An agent that plays its canned steps.
struct FileAgent(AgentSpec);

#[async_trait]
impl Agent for FileAgent {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn description(&self) -> &str {
        &self.0.description
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        let fill = |text: &str| text.replace("{input}", ctx.input());
        let mut result = Value::Null;
        for (i, step) in self.0.steps.iter().enumerate() {
            match step {
                Step::Think { think } => ctx.think(fill(think), Some(i as u32 + 1)).await?,
                // The executor wraps the call in tool_executing / tool_completed.
                Step::Tool { tool, args } => {
                    let args = match args {
                        Value::Object(map) => map
                            .iter()
                            .map(|(k, v)| {
                                (k.clone(), v.as_str().map_or(v.clone(), |s| json!(fill(s))))
                            })
                            .collect(),
                        other => other.clone(),
                    };
                    result = ctx.call_tool(tool, args).await?;
                }
                Step::Say { say } => {
                    let text = fill(say);
                    for word in text.split_inclusive(' ') {
                        ctx.say("m_1", word).await?;
                    }
                    result = json!(text);
                }
            }
        }
        Ok(result)
    }
}

/// Agents from a file, tools from code.
#[derive(Default)]
struct FileRegistry {
    agents: BTreeMap<String, Arc<dyn Agent>>,
    tools: BTreeMap<String, Arc<dyn Tool>>,
    manager: Option<BridgeFactory>,
}

impl FileRegistry {
    /// Parses and validates the file: every tool an agent names exists and is in its `tools`.
    fn from_toml(text: &str) -> Result<Self, String> {
        let file: AgentsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut registry = Self::default();
        // Tools are code; the critical path needs the `echo` agent and tool.
        let tools: [Arc<dyn Tool>; 3] = [
            Arc::new(EchoTool),
            Arc::new(ClockTool),
            Arc::new(CalculatorTool),
        ];
        for tool in tools {
            registry.tools.insert(tool.name().to_owned(), tool);
        }
        registry.agents.insert("echo".into(), Arc::new(EchoAgent));
        for spec in file.agents {
            for step in &spec.steps {
                if let Step::Tool { tool, .. } = step {
                    // MCP tools (`mcp:<server>/<tool>`) come from the `[mcp.*]` servers startup
                    // connects after this file is read; they are looked up when called.
                    let known = registry.tools.contains_key(tool) || tool.starts_with("mcp:");
                    if !spec.tools.contains(tool) || !known {
                        return Err(format!(
                            "agent {:?} calls tool {tool:?}, which is not in its `tools` or not registered",
                            spec.name
                        ));
                    }
                }
            }
            registry
                .agents
                .insert(spec.name.clone(), Arc::new(FileAgent(spec)));
        }
        Ok(registry)
    }
}

impl AgentRegistry for FileRegistry {
    // Startup calls this once (phase `Agents`) before any run: keep the factory...
    fn set_websocket_manager(&mut self, manager: BridgeFactory) {
        self.manager = Some(manager);
    }

    // ...and hand it back: the executor publishes every run through it.
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
        let info = |a: &Arc<dyn Agent>| AgentInfo {
            name: a.name().into(),
            description: a.description().into(),
        };
        self.agents.values().map(info).collect()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::var_os("AGENTWIRE_EXAMPLE_SMOKE").is_some();
    let path = std::env::var("AGENTS_FILE")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/agents.toml").into());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let registry = FileRegistry::from_toml(&text).map_err(|e| format!("{path}: {e}"))?;
    let names: Vec<String> = registry.agents().into_iter().map(|a| a.name).collect();
    println!("loaded agents from {path}: {}", names.join(", "));

    // Defaults plus AGENTWIRE_* env, e.g. AGENTWIRE_MCP__FILES__COMMAND for MCP tools.
    let config = AgentwireConfig::load(None, &Default::default())?;
    let ready = start_with_registry(config, registry, Vec::new()).await?;
    let state = AppState::new(ready);

    if !smoke {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
        println!("ask the `greeter` or `adder` agent at ws://127.0.0.1:8080/ws?user=ada");
        serve(listener, state, shutdown_signal()).await?;
        return Ok(());
    }

    // A file that names a tool it did not declare is refused with a readable error.
    let bad = "[[agents]]\nname = \"x\"\nsteps = [{ tool = \"clock\" }]\n";
    let err = FileRegistry::from_toml(bad).err().unwrap_or_default();
    assert!(err.contains("not in its `tools`"), "{err}");

    let server = agentwire_test::TestServer::serve(state).await;
    let mut ada = server.connect("ada").await;
    let (_, events) = ada.run("c1", "greeter", "Ada").await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        &types[..6],
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "tool_executing",
            "tool_completed"
        ]
    );
    assert_eq!(events[5]["data"]["result"], "Hello, Ada!");
    assert_eq!(
        events.last().unwrap()["data"]["result"],
        "Hello, Ada! Lovely to meet you."
    );

    let (_, events) = ada.run("c2", "adder", "what is two plus two?").await;
    assert_eq!(events.last().unwrap()["type"], "agent_completed");
    assert_eq!(events.last().unwrap()["data"]["result"], 4);
    ada.close().await;
    server.stop().await;
    println!("smoke ok: custom_registry");
    Ok(())
}
