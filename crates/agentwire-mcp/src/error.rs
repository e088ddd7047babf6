//! The crate's error type.

/// What can go wrong with an MCP server or one of its tools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The server's configuration is wrong.
    #[error("MCP server {server}: {reason}")]
    Config {
        /// The server's name.
        server: String,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be started or reached, or `initialize` / `tools/list` failed.
    #[error("MCP server {server}: {reason}")]
    Connect {
        /// The server's name.
        server: String,
        /// Why.
        reason: String,
    },
    /// A tool selector (`mcp:<server>/<tool>` or `mcp:<server>/*`) names no server or tool.
    #[error("tool {selector:?}: {reason}")]
    Selector {
        /// The selector as written.
        selector: String,
        /// Why it does not resolve.
        reason: String,
    },
}

impl McpError {
    /// The server concerned, when there is one.
    pub fn server(&self) -> Option<&str> {
        match self {
            McpError::Config { server, .. } | McpError::Connect { server, .. } => Some(server),
            McpError::Selector { .. } => None,
        }
    }

    /// What went wrong, without the server's name.
    pub fn cause(&self) -> &str {
        match self {
            McpError::Config { reason, .. }
            | McpError::Connect { reason, .. }
            | McpError::Selector { reason, .. } => reason,
        }
    }

    /// What an operator can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            McpError::Config { .. } => {
                "fix [mcp.<name>] in the config: command = [\"program\", \"arg\"] or url = \"http://host/mcp\" (docs/mcp.md)"
            }
            McpError::Connect { .. } => {
                "check that the command exists and runs an MCP server on stdio (or that the url answers), or set optional = true to start without it"
            }
            McpError::Selector { .. } => {
                "use mcp:<server>/* or mcp:<server>/<tool> with a configured server and one of its tools"
            }
        }
    }
}
