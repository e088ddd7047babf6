//! The MCP tool tests: stdio against the published server-everything, streamable HTTP against
//! an rmcp server in the test, and both through a real agentwire server.

mod http;
mod server;
mod stdio;
mod support;
