use async_trait::async_trait;
use serde_json::{Value, json};

use crate::{Agent, AgentError, RunContext, Tool};

/// `echo`: one thought, one `echo` tool call, and the input back as the result — no pauses.
/// The critical-path check and the benchmarks use it.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoAgent;

#[async_trait]
impl Agent for EchoAgent {
    fn name(&self) -> &str {
        "echo"
    }

    fn description(&self) -> &str {
        "Echoes the input through the echo tool; no delays."
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        ctx.think("Echoing the input", Some(1)).await?;
        let text = ctx
            .call_tool("echo", json!({ "text": ctx.input() }))
            .await?;
        Ok(text)
    }
}

/// `echo` tool: returns `args.text`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoTool;

#[async_trait]
impl Tool for EchoTool {
    fn name(&self) -> &str {
        "echo"
    }

    fn description(&self) -> &str {
        "Returns its `text` argument."
    }

    async fn call(&self, args: Value) -> Result<Value, String> {
        match args.get("text") {
            Some(Value::String(s)) => Ok(Value::String(s.clone())),
            _ => Err("`text` must be a string".to_owned()),
        }
    }
}
