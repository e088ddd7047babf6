//! `OpenAiAgent`: the agent loop — stream a model turn, publish its text and reasoning, run the
//! tools it calls, send their results back, until the model answers.

use std::collections::HashSet;
use std::sync::Arc;

use agentwire_agent_registry::{Agent, AgentError, RunContext, async_trait};
use agentwire_core::TokenUsage;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::client::ChatClient;
use crate::functions::ToolMenu;
use crate::threads::{ThreadKey, ThreadStore};
use crate::turn::{Piece, TurnBuilder, TurnEnd};
use crate::wire::{ChatMessage, ChatRequest, StreamOptions, ToolCall};
use crate::{ApiKey, LlmError, OpenAiAgentConfig};

/// An agent backed by any OpenAI-compatible Chat Completions server (OpenAI, vLLM, llama.cpp,
/// Ollama, LM Studio, OpenRouter, Groq, …).
///
/// Per run: it loads the thread's earlier turns, then streams model turns: content becomes
/// `agent_message_delta`, reasoning `agent_thinking`, each tool call `tool_executing` →
/// `tool_completed` (under the model's own call id) with the result sent back as a `tool`
/// message, up to `max_steps` turns. It reports the model and token usage on `agent_completed`
/// and appends the finished turn to the thread. Failures end the run with the codes of
/// [`LlmError::code`]. Cancelling the run drops the HTTP request, which closes the connection.
#[derive(Clone)]
pub struct OpenAiAgent {
    name: String,
    description: String,
    client: ChatClient,
    threads: Arc<dyn ThreadStore>,
}

impl std::fmt::Debug for OpenAiAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiAgent")
            .field("name", &self.name)
            .field("model", &self.client.config().model)
            .field("base_url", &self.client.config().base_url)
            .finish_non_exhaustive()
    }
}

impl OpenAiAgent {
    /// An agent called `name`, reading its key from the variable `config.api_key_env` names.
    ///
    /// # Errors
    /// An invalid setting or a named key variable that is not set (the message names the
    /// variable, never a key).
    pub fn new(
        name: impl Into<String>,
        config: OpenAiAgentConfig,
        threads: Arc<dyn ThreadStore>,
    ) -> Result<Self, String> {
        config.validate()?;
        let key = ApiKey::from_env(&config)?;
        let name = name.into();
        let description = config
            .description
            .clone()
            .unwrap_or_else(|| format!("{} via {}", config.model, config.base_url));
        let client = ChatClient::new(Arc::new(config), key)?;
        Ok(Self {
            name,
            description,
            client,
            threads,
        })
    }

    /// The agent's settings.
    pub fn config(&self) -> &OpenAiAgentConfig {
        self.client.config()
    }

    /// `GET {base_url}/models`: whether the model server answers (with the key). Returns how
    /// many models it lists.
    ///
    /// # Errors
    /// Why the server cannot be used, as an [`LlmError`].
    pub async fn probe(&self) -> Result<usize, LlmError> {
        self.client.list_models().await
    }

    /// Streams one model turn, publishing its text and reasoning as they arrive.
    async fn stream_turn(
        &self,
        ctx: &RunContext,
        messages: &[ChatMessage],
        tools: &[Value],
        step: u32,
        usage: &mut TokenUsage,
        model: &mut String,
    ) -> Result<TurnEnd, AgentError> {
        let config = self.config();
        let request = ChatRequest {
            model: &config.model,
            messages,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            tools,
            temperature: config.temperature,
            max_tokens: config.max_tokens,
        };
        let mut stream = self.client.stream(&request).await?;
        let mut turn = TurnBuilder::default();
        let message_id = format!("m_{step}");
        while let Some(chunk) = stream.next().await? {
            for piece in turn.absorb(chunk) {
                match piece {
                    Piece::Text(text) => ctx.say(&message_id, text).await?,
                    Piece::Reasoning(thought) => ctx.think(thought, Some(step)).await?,
                }
            }
        }
        if let Some(u) = turn.usage() {
            usage.prompt_tokens += u.prompt_tokens;
            usage.completion_tokens += u.completion_tokens;
        }
        if let Some(m) = turn.model() {
            *model = m.to_owned();
        }
        Ok(turn.finish(stream.chunks())?)
    }

    /// Runs one turn's tool calls, at most `parallel_tools` at once; returns the `tool` messages
    /// in the calls' order.
    async fn run_tools(
        &self,
        ctx: &RunContext,
        menu: &ToolMenu,
        calls: &[ToolCall],
        used_ids: &mut HashSet<String>,
    ) -> Result<Vec<ChatMessage>, AgentError> {
        // The wire call_id is the model's id; a missing or repeated one (some local servers
        // number calls per turn) gets a suffix, since a run's call ids must be unique.
        let wire_ids: Vec<String> = calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                let base = if call.id.is_empty() { "call" } else { &call.id };
                let mut id = base.to_owned();
                let mut n = i;
                while !used_ids.insert(id.clone()) {
                    n += 1;
                    id = format!("{base}_{n}");
                }
                id
            })
            .collect();
        // Futures do nothing until polled: `buffered` starts at most `parallel_tools` at once.
        let pending: Vec<_> = calls
            .iter()
            .zip(&wire_ids)
            .map(|(call, wire_id)| self.run_tool(ctx, menu, call, wire_id))
            .collect();
        let results: Vec<Result<String, AgentError>> = futures_util::stream::iter(pending)
            .buffered(self.config().parallel_tools.max(1))
            .collect()
            .await;
        calls
            .iter()
            .zip(results)
            .map(|(call, content)| {
                Ok(ChatMessage::Tool {
                    tool_call_id: call.id.clone(),
                    content: content?,
                })
            })
            .collect()
    }

    /// One tool call: the text the model gets back (the result as JSON, or the error). Only a
    /// failure to publish is an `Err`. Events name the agentwire tool behind the function.
    async fn run_tool(
        &self,
        ctx: &RunContext,
        menu: &ToolMenu,
        call: &ToolCall,
        wire_id: &str,
    ) -> Result<String, AgentError> {
        let function = call.function.name.as_str();
        let tool = menu.tool(function).filter(|t| ctx.tool(t).is_some());
        let name = tool.unwrap_or(function);
        let raw = call.function.arguments.trim();
        // Models send "" for a call without arguments.
        let parsed = if raw.is_empty() {
            Ok(json!({}))
        } else {
            serde_json::from_str::<Value>(raw)
        };
        let refusal = if tool.is_none() {
            Some(format!(
                "unknown tool {function:?}; the tools you can call are: {}",
                menu.function_names().join(", ")
            ))
        } else {
            parsed
                .as_ref()
                .err()
                .map(|e| format!("the arguments are not valid JSON ({e}); send a JSON object"))
        };
        if let Some(message) = refusal {
            let args = parsed.unwrap_or_else(|_| Value::String(raw.to_owned()));
            let emitter = ctx.emitter();
            emitter.tool_executing(wire_id, name, args).await?;
            emitter
                .tool_completed(wire_id, name, Err(message.clone()), 0)
                .await?;
            return Ok(format!("error: {message}"));
        }
        let args = parsed.unwrap_or_default();
        match ctx.call_tool_as(wire_id, name, args).await {
            Ok(result) => Ok(result.to_string()),
            Err(AgentError::Tool { message, .. }) => Ok(format!("error: {message}")),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Agent for OpenAiAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        let config = self.config();
        let run = ctx.user_context();
        let key = ThreadKey {
            agent: self.name.clone(),
            user: run.user_id.clone(),
            thread: run.thread_id.clone(),
        };
        let history = self.threads.load(&key).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "thread memory unavailable; the run starts without it");
            Vec::new()
        });
        let mut messages: Vec<ChatMessage> = Vec::new();
        if let Some(prompt) = &config.system_prompt {
            messages.push(ChatMessage::System {
                content: prompt.clone(),
            });
        }
        messages.extend(history.into_iter().flatten());
        let turn_start = messages.len();
        messages.push(ChatMessage::User {
            content: ctx.input().to_owned(),
        });
        // Resolved once per run: `*` selectors see the tools registered now.
        let menu = ToolMenu::resolve(&config.tools, ctx);
        let mut usage = TokenUsage::default();
        let mut model = config.model.clone();
        let mut used_ids = HashSet::new();
        for step in 1..=config.max_steps {
            let end = self
                .stream_turn(
                    ctx,
                    &messages,
                    menu.definitions(),
                    step,
                    &mut usage,
                    &mut model,
                )
                .await?;
            match end {
                TurnEnd::Answer(text) => {
                    messages.push(ChatMessage::Assistant {
                        content: Some(text.clone()),
                        tool_calls: Vec::new(),
                    });
                    let turn = messages.split_off(turn_start);
                    if let Err(e) = self.threads.append(&key, turn).await {
                        tracing::warn!(error = %e, "the turn could not be remembered");
                    }
                    ctx.report_usage(model, usage);
                    return Ok(Value::String(text));
                }
                TurnEnd::ToolCalls { text, calls } => {
                    let results = self.run_tools(ctx, &menu, &calls, &mut used_ids).await?;
                    messages.push(ChatMessage::Assistant {
                        content: text,
                        tool_calls: calls,
                    });
                    messages.extend(results);
                }
            }
        }
        Err(LlmError::MaxSteps(config.max_steps).into())
    }
}
