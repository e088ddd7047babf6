//! LLM agents for agentwire: any OpenAI-compatible Chat Completions server (OpenAI, vLLM,
//! llama.cpp, Ollama, LM Studio, OpenRouter, Groq, …), streamed token by token, with tool calls
//! and thread memory.
//!
//! Use it when an agent should be a model rather than Rust code: [`OpenAiAgent`] is an
//! [`Agent`](agentwire_agent_registry::Agent) built from an [`OpenAiAgentConfig`] (the
//! `[agents.<name>]` table with `kind = "openai"` in agentwire's config; `agentwire-startup`
//! registers those for you). Implement [`ThreadStore`] to keep thread memory somewhere else than
//! in this process ([`InMemoryThreadStore`]) or Redis ([`RedisThreadStore`]).
//!
//! How a run maps to events, the error codes and the configuration are in `docs/llm-agents.md`.
//!
//! ```
//! use std::sync::Arc;
//! use agentwire_agent_registry::{Agent, DemoSettings, InMemoryAgentRegistry};
//! use agentwire_llm::{InMemoryThreadStore, OpenAiAgent, OpenAiAgentConfig};
//!
//! let mut config = OpenAiAgentConfig::new("http://127.0.0.1:11434/v1", "qwen2.5:7b");
//! config.tools = vec!["calculator".into()];
//! config.system_prompt = Some("You are a helpful assistant.".into());
//! let threads = Arc::new(InMemoryThreadStore::new(config.memory));
//! let agent = OpenAiAgent::new("assistant", config, threads)?;
//! assert_eq!(agent.name(), "assistant");
//!
//! let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::default());
//! registry.register_agent(agent);
//! # Ok::<(), String>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod client;
mod config;
mod error;
mod functions;
mod health;
#[cfg(feature = "redis")]
mod redis_threads;
mod threads;
mod turn;
mod wire;

pub use agent::OpenAiAgent;
pub use config::{ApiKey, MemoryConfig, OpenAiAgentConfig};
pub use error::LlmError;
pub use health::ModelEndpointCheck;
#[cfg(feature = "redis")]
pub use redis_threads::RedisThreadStore;
pub use threads::{InMemoryThreadStore, ThreadKey, ThreadStore, Turn};
pub use wire::{ChatMessage, FunctionCall, ToolCall};
