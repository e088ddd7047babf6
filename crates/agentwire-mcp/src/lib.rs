//! Model Context Protocol servers as agentwire tools.
//!
//! Use it to give agents the tools of MCP servers — your files, databases and APIs — by
//! configuration. Each `[mcp.<name>]` server (a stdio command or a streamable HTTP URL, see
//! [`McpServerConfig`]) is connected through the official Rust SDK (`rmcp`): `initialize`, then
//! `tools/list`, and every tool it lists becomes an agentwire [`Tool`](agentwire_agent_registry::Tool)
//! called `mcp:<name>/<tool>` ([`McpTool`]). Any agent calls it like a built-in tool, through
//! `RunContext::call_tool`, so the user sees `tool_executing` / `tool_completed` for every MCP
//! call, and the server's progress notifications as `agent_thinking` lines of that call.
//!
//! [`McpServers::connect_all`] connects a whole `[mcp]` table; [`WithMcpTools`] layers the tools
//! over any [`AgentRegistry`](agentwire_agent_registry::AgentRegistry); [`McpServers::resolve`]
//! turns an agent's `mcp:<server>/*` or `mcp:<server>/<tool>` into tools; [`McpHealthCheck`]
//! shows each server in `/health`. `agentwire-startup` does all of this in phase `Agents`.
//!
//! ```no_run
//! use agentwire_agent_registry::Tool;
//! use agentwire_mcp::{McpServer, McpServerConfig};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = McpServerConfig::stdio(["npx", "-y", "@modelcontextprotocol/server-everything"]);
//! let server = McpServer::connect("everything", config).await?;
//! let echo = server.tool("echo").expect("server-everything has echo");
//! assert_eq!(echo.name(), "mcp:everything/echo");
//! let result = echo.call(json!({"message": "hi"})).await?;
//! assert_eq!(result["text"], "Echo: hi");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod health;
mod server;
mod servers;
mod tool;

pub use config::{McpConfig, McpServerConfig};
pub use error::McpError;
pub use health::McpHealthCheck;
pub use server::{McpServer, McpToolSpec};
pub use servers::{MCP_PREFIX, McpServers, WithMcpTools};
pub use tool::{McpTool, describe_result};
