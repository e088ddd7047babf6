//! The `Agent` and `Tool` contracts and the `RunContext` an agent works through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::time::Instant;

use agentwire_bridge_factory::RunEmitter;
use agentwire_core::{TokenUsage, UserContext};
use async_trait::async_trait;
use serde_json::Value;

use crate::run_metrics::RunMetrics;
use crate::{AgentError, AgentRegistry, ToolInfo};

/// An agent: given a run's input, it reports its work through the [`RunContext`] and returns
/// the run's result.
///
/// # What an implementor must guarantee
/// - `run` reports progress only through `ctx` (thinking, tool calls, answer text). The executor
///   emits `agent_started` before and `agent_completed` / `agent_error` after — the agent must not.
/// - `run` is cancel-safe: the executor drops its future on cancellation or timeout; open tool
///   calls are then completed with `ok:false` automatically.
/// - A returned `Err` ends the run with `agent_error {code:"agent_failed"}`.
///
/// ```
/// use agentwire_agent_registry::{Agent, AgentError, RunContext, async_trait};
/// use serde_json::{Value, json};
///
/// struct Shout;
///
/// #[async_trait]
/// impl Agent for Shout {
///     fn name(&self) -> &str { "shout" }
///     async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
///         ctx.think("Raising my voice", Some(1)).await?;
///         let loud = ctx.input().to_uppercase();
///         ctx.say("m1", loud.clone()).await?;
///         Ok(json!(loud))
///     }
/// }
/// ```
///
/// Registering a type that is not an `Agent` fails to compile with
/// "`Shout` is not an agentwire Agent" and a note naming the methods to implement:
///
/// ```compile_fail
/// # use agentwire_agent_registry::InMemoryAgentRegistry;
/// struct Shout;
/// InMemoryAgentRegistry::new().register_agent(Shout);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an agentwire Agent",
    note = "implement `fn name(&self) -> &str` and `async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError>` with #[async_trait]"
)]
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// The name users ask for (`user_message.agent`).
    fn name(&self) -> &str;

    /// One line on what the agent does.
    fn description(&self) -> &str {
        ""
    }

    /// Does the work of one run.
    ///
    /// # Errors
    /// Any [`AgentError`]; the run then ends with `agent_error`.
    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError>;
}

/// A tool an agent can call through [`RunContext::call_tool`], which emits `tool_executing` and
/// `tool_completed` around it.
///
/// # What an implementor must guarantee
/// - `call` returns `Err` with a message a person can read on failure — never panics for bad
///   arguments. The message becomes `tool_completed.error`.
/// - `call` is cancel-safe (its future may be dropped when the run is cancelled).
///
/// ```
/// use agentwire_agent_registry::{AgentError, Tool, async_trait};
/// use serde_json::{Value, json};
///
/// struct Length;
///
/// #[async_trait]
/// impl Tool for Length {
///     fn name(&self) -> &str { "length" }
///     async fn call(&self, args: Value) -> Result<Value, String> {
///         let text = args["text"].as_str().ok_or("`text` must be a string")?;
///         Ok(json!(text.chars().count()))
///     }
/// }
/// ```
///
/// Registering a type that is not a `Tool` fails to compile with
/// "`Weather` is not an agentwire Tool" and a note naming the two methods to implement:
///
/// ```compile_fail
/// # use agentwire_agent_registry::InMemoryAgentRegistry;
/// struct Weather;
/// InMemoryAgentRegistry::new().register_tool(Weather);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an agentwire Tool",
    note = "implement `fn name(&self) -> &str` and `async fn call(&self, args: Value) -> Result<Value, String>` with #[async_trait]"
)]
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// The name agents call it by.
    fn name(&self) -> &str;

    /// One line on what the tool does.
    fn description(&self) -> &str {
        ""
    }

    /// The JSON Schema of the object `call` takes, as offered to language models (an OpenAI
    /// function's `parameters`). The default accepts any object; a tool a model should call
    /// well describes each field.
    fn parameters(&self) -> Value {
        serde_json::json!({"type": "object", "properties": {}, "additionalProperties": true})
    }

    /// Runs the tool.
    ///
    /// # Errors
    /// A readable message; the call completes with `ok:false` and that message.
    async fn call(&self, args: Value) -> Result<Value, String>;

    /// Runs the tool as one call of a run: what [`RunContext::call_tool`] calls. `call` gives the
    /// call's id, lets the tool report progress as `agent_thinking` while it works, and carries the
    /// run's cancellation. The default ignores it and runs [`Self::call`]; override it (and
    /// delegate `call` to it) when the tool has progress to show — MCP tools do.
    ///
    /// # Errors
    /// As [`Self::call`].
    async fn call_in_run(&self, args: Value, call: &ToolCall<'_>) -> Result<Value, String> {
        let _ = call;
        self.call(args).await
    }
}

/// One tool call of a run, as the tool sees it in [`Tool::call_in_run`].
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    emitter: &'a RunEmitter,
    call_id: &'a str,
    tool: &'a str,
}

impl<'a> ToolCall<'a> {
    /// The call's id (`tool_executing.call_id`).
    pub fn call_id(&self) -> &'a str {
        self.call_id
    }

    /// The tool's name as the agent called it.
    pub fn tool(&self) -> &'a str {
        self.tool
    }

    /// The run's cancellation: cancelled when the user cancels the run (the call's future is
    /// dropped right after, so a tool that must tell someone does it on drop).
    pub fn cancellation(&self) -> &'a tokio_util::sync::CancellationToken {
        self.emitter.cancellation()
    }

    /// Publishes `agent_thinking` for this call, e.g. a progress line of a long operation.
    ///
    /// # Errors
    /// When the event cannot be published (the run ended).
    pub async fn progress(&self, thought: impl Into<String>) -> Result<(), AgentError> {
        self.emitter.thinking(thought, None).await?;
        Ok(())
    }
}

/// What an agent gets for one run: its input, its identity, and methods that publish the run's
/// events to its user.
pub struct RunContext {
    emitter: Arc<RunEmitter>,
    registry: Arc<dyn AgentRegistry>,
    input: String,
    next_call: AtomicU32,
    metrics: Arc<RunMetrics>,
    completion: std::sync::Mutex<Option<(String, TokenUsage)>>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("run", self.emitter.context())
            .finish_non_exhaustive()
    }
}

impl RunContext {
    pub(crate) fn new(
        emitter: Arc<RunEmitter>,
        registry: Arc<dyn AgentRegistry>,
        input: String,
        metrics: Arc<RunMetrics>,
    ) -> Self {
        Self {
            emitter,
            registry,
            input,
            next_call: AtomicU32::new(1),
            metrics,
            completion: std::sync::Mutex::new(None),
        }
    }

    /// The user's input.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The run's user, thread and run ids.
    pub fn user_context(&self) -> &UserContext {
        self.emitter.context()
    }

    /// The emitter, for agents that publish events directly.
    pub fn emitter(&self) -> &RunEmitter {
        &self.emitter
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.emitter.cancellation().is_cancelled()
    }

    /// Publishes `agent_thinking`.
    ///
    /// # Errors
    /// When the event cannot be published.
    pub async fn think(
        &self,
        thought: impl Into<String>,
        step: Option<u32>,
    ) -> Result<(), AgentError> {
        self.emitter.thinking(thought, step).await?;
        Ok(())
    }

    /// Publishes a piece of the answer (`agent_message_delta`).
    ///
    /// # Errors
    /// When the event cannot be published.
    pub async fn say(&self, message_id: &str, delta: impl Into<String>) -> Result<(), AgentError> {
        self.emitter.message_delta(message_id, delta).await?;
        Ok(())
    }

    /// The registered tool called `name`.
    pub fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.registry.tool(name)
    }

    /// Every registered tool with its description and parameter schema.
    pub fn tools(&self) -> Vec<ToolInfo> {
        self.registry.tools()
    }

    /// Records the model and token usage the run's `agent_completed` reports (`usage`, `model`).
    /// The last call before the agent returns wins.
    pub fn report_usage(&self, model: impl Into<String>, usage: TokenUsage) {
        let mut slot = self
            .completion
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some((model.into(), usage));
    }

    pub(crate) fn take_usage(&self) -> Option<(String, TokenUsage)> {
        self.completion
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Calls a registered tool: publishes `tool_executing`, runs it, publishes `tool_completed`
    /// with its result or error and the duration, and returns the result. The call gets the
    /// run's next id (`c_1`, `c_2`, …).
    ///
    /// # Errors
    /// [`AgentError::UnknownTool`] (nothing published), [`AgentError::Tool`] when the tool failed
    /// (its call completed with `ok:false`), or a publish error.
    pub async fn call_tool(&self, name: &str, args: Value) -> Result<Value, AgentError> {
        let tool = self.registered(name)?;
        let call_id = call_id(self.next_call.fetch_add(1, Ordering::Relaxed));
        self.run_call(&*tool, &call_id, name, args).await
    }

    /// [`Self::call_tool`] under a `call_id` the agent chose (e.g. a language model's own id).
    /// The id must be unique within the run: a reused id is out of grammar.
    ///
    /// # Errors
    /// As [`Self::call_tool`].
    pub async fn call_tool_as(
        &self,
        call_id: &str,
        name: &str,
        args: Value,
    ) -> Result<Value, AgentError> {
        let tool = self.registered(name)?;
        self.run_call(&*tool, call_id, name, args).await
    }

    fn registered(&self, name: &str) -> Result<Arc<dyn Tool>, AgentError> {
        self.registry
            .tool(name)
            .ok_or_else(|| AgentError::UnknownTool(name.to_owned()))
    }

    /// One call of `tool`: `tool_executing`, the call, `tool_completed`.
    async fn run_call(
        &self,
        tool: &dyn Tool,
        call_id: &str,
        name: &str,
        args: Value,
    ) -> Result<Value, AgentError> {
        self.emitter
            .tool_executing(call_id, name, args.clone())
            .await?;
        let started = Instant::now();
        let call = ToolCall {
            emitter: &self.emitter,
            call_id,
            tool: name,
        };
        let outcome = tool.call_in_run(args, &call).await;
        let elapsed = started.elapsed();
        let duration_ms = elapsed.as_millis() as u64;
        self.metrics
            .tool_duration(tool.name(), outcome.is_ok())
            .record(elapsed.as_secs_f64());
        self.emitter
            .tool_completed(call_id, name, outcome.clone(), duration_ms)
            .await?;
        outcome.map_err(|message| AgentError::Tool {
            tool: name.to_owned(),
            message,
        })
    }
}

/// `c_<n>`: the id of a run's `n`th tool call (written without the formatting machinery, which
/// cost more than the rest of the id on the per-call path).
fn call_id(n: u32) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    let mut id = String::with_capacity(2 + digits.len());
    id.push_str("c_");
    id.push_str(digits);
    id
}
