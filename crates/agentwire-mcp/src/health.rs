//! `McpHealthCheck`: one MCP server as a `/health` check.

use agentwire_health_monitor::{HealthCheck, async_trait};

use crate::McpServer;

/// Checks one server with a real `ping` round trip; reports its tool count and restarts.
///
/// Not critical: a server that is down (and being restarted) makes the service `degraded`, not
/// unready, since runs that do not call its tools still work.
#[derive(Debug)]
pub struct McpHealthCheck {
    server: McpServer,
    name: String,
}

impl McpHealthCheck {
    /// The check of `server`, named `mcp:<server>`.
    pub fn new(server: McpServer) -> Self {
        let name = format!("mcp:{}", server.name());
        Self { server, name }
    }
}

#[async_trait]
impl HealthCheck for McpHealthCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<String, String> {
        self.server.ping().await?;
        Ok(format!(
            "{} tools, {} restarts",
            self.server.tools().len(),
            self.server.restarts()
        ))
    }
}
