//! The MCP tool tests: stdio against the published server-everything, streamable HTTP against
//! an rmcp server in the test, both through a real agentwire server, and the LLM agent driving
//! MCP tools (with the scripted model server of tests/llm).

mod http;
mod llm;
// The scripted OpenAI-compatible server of the LLM tests, shared rather than copied.
#[allow(dead_code)]
#[path = "../../../../tests/llm/scripted.rs"]
mod scripted;
mod server;
mod stdio;
mod support;
