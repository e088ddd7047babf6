//! `McpServers`: every configured server, tool selectors, and the registry layer that serves
//! their tools.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentwire_agent_registry::{Agent, AgentInfo, AgentRegistry, Tool, ToolInfo};
use agentwire_bridge_factory::BridgeFactory;
use agentwire_health_monitor::HealthCheck;

use crate::{McpConfig, McpError, McpHealthCheck, McpServer, McpTool};

/// The prefix of every MCP tool name: `mcp:<server>/<tool>`.
pub const MCP_PREFIX: &str = "mcp:";

/// The connected MCP servers, by name.
#[derive(Debug, Clone, Default)]
pub struct McpServers {
    servers: BTreeMap<String, McpServer>,
}

impl McpServers {
    /// No servers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects every server of `config` at once. A server marked `optional` that fails is
    /// logged as a warning and left out.
    ///
    /// # Errors
    /// The first required server that failed (by name), with the cause.
    pub async fn connect_all(config: &McpConfig) -> Result<Self, McpError> {
        let attempts = config.iter().map(|(name, server)| async move {
            (
                name,
                server.optional,
                McpServer::connect(name, server.clone()).await,
            )
        });
        let mut servers = Self::new();
        for (name, optional, outcome) in futures_util::future::join_all(attempts).await {
            match outcome {
                Ok(server) => servers.insert(server),
                Err(e) if optional => {
                    tracing::warn!(server = %name, error = %e, "optional MCP server skipped");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(servers)
    }

    /// Adds (or replaces) a server under its name.
    pub fn insert(&mut self, server: McpServer) {
        self.servers.insert(server.name().to_owned(), server);
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&McpServer> {
        self.servers.get(name)
    }

    /// Every server, by name.
    pub fn iter(&self) -> impl Iterator<Item = &McpServer> {
        self.servers.values()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The tool called `name` (`mcp:<server>/<tool>`), as the server lists it now.
    pub fn tool(&self, name: &str) -> Option<McpTool> {
        let (server, tool) = split(name)?;
        self.servers.get(server)?.tool(tool)
    }

    /// The tools a selector from an agent's `tools` list names: `mcp:<server>/*` is every tool
    /// the server lists now, `mcp:<server>/<tool>` one.
    ///
    /// # Errors
    /// [`McpError::Selector`] when the selector is malformed or names no server or tool.
    pub fn resolve(&self, selector: &str) -> Result<Vec<McpTool>, McpError> {
        let bad = |reason: String| McpError::Selector {
            selector: selector.to_owned(),
            reason,
        };
        let (server_name, tool) = split(selector).ok_or_else(|| {
            bad("an MCP tool is written mcp:<server>/<tool> or mcp:<server>/*".into())
        })?;
        let server = self.servers.get(server_name).ok_or_else(|| {
            bad(format!(
                "no MCP server {server_name:?} is connected (configured and connected: {})",
                self.servers.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if tool == "*" {
            return Ok(server.tools());
        }
        server.tool(tool).map(|t| vec![t]).ok_or_else(|| {
            bad(format!(
                "MCP server {server_name:?} has no tool {tool:?} (it has: {})",
                server
                    .tools()
                    .iter()
                    .map(|t| t.spec().remote_name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// One non-critical health check per server (`mcp:<server>`).
    pub fn health_checks(&self) -> Vec<Arc<dyn HealthCheck>> {
        self.servers
            .values()
            .map(|s| Arc::new(McpHealthCheck::new(s.clone())) as Arc<dyn HealthCheck>)
            .collect()
    }
}

/// `mcp:<server>/<tool>` → (`server`, `tool`).
fn split(name: &str) -> Option<(&str, &str)> {
    let (server, tool) = name.strip_prefix(MCP_PREFIX)?.split_once('/')?;
    (!server.is_empty() && !tool.is_empty()).then_some((server, tool))
}

/// A registry whose tools are those of `inner` plus every tool of the MCP servers, under
/// `mcp:<server>/<tool>`; agents and the websocket manager are `inner`'s. Tools are looked up
/// on each call, so a refreshed tool list (`list_changed`) applies to the next call.
#[derive(Debug)]
pub struct WithMcpTools<R> {
    inner: R,
    servers: McpServers,
}

impl<R: AgentRegistry> WithMcpTools<R> {
    /// `inner` with the tools of `servers`.
    pub fn new(inner: R, servers: McpServers) -> Self {
        Self { inner, servers }
    }

    /// The servers.
    pub fn servers(&self) -> &McpServers {
        &self.servers
    }
}

impl<R: AgentRegistry> AgentRegistry for WithMcpTools<R> {
    fn set_websocket_manager(&mut self, manager: BridgeFactory) {
        self.inner.set_websocket_manager(manager);
    }

    fn websocket_manager(&self) -> Option<&BridgeFactory> {
        self.inner.websocket_manager()
    }

    fn agent(&self, name: &str) -> Option<Arc<dyn Agent>> {
        self.inner.agent(name)
    }

    fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
        if name.starts_with(MCP_PREFIX)
            && let Some(tool) = self.servers.tool(name)
        {
            return Some(Arc::new(tool));
        }
        self.inner.tool(name)
    }

    fn agents(&self) -> Vec<AgentInfo> {
        self.inner.agents()
    }

    /// `inner`'s tools and every tool the servers list now, with its input schema, by name.
    fn tools(&self) -> Vec<ToolInfo> {
        let mut all = self.inner.tools();
        all.extend(
            self.servers
                .iter()
                .flat_map(McpServer::tools)
                .map(|tool| ToolInfo::of(&tool)),
        );
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_split_into_server_and_tool() {
        assert_eq!(split("mcp:files/read_file"), Some(("files", "read_file")));
        assert_eq!(split("mcp:files/*"), Some(("files", "*")));
        assert_eq!(split("mcp:files"), None);
        assert_eq!(split("mcp:/x"), None);
        assert_eq!(split("calculator"), None);
    }

    #[test]
    fn unknown_servers_are_named_in_the_error() {
        let e = McpServers::new().resolve("mcp:files/*").unwrap_err();
        assert!(e.to_string().contains("no MCP server \"files\""), "{e}");
        let e = McpServers::new().resolve("files/*").unwrap_err();
        assert!(e.to_string().contains("mcp:<server>/<tool>"), "{e}");
    }
}
