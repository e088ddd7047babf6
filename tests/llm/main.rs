//! LLM agents end to end (issue 22): a real agentwire server whose `assistant` agent talks to a
//! scripted OpenAI-compatible server inside the test (no network), driven over a real WebSocket.

mod answers;
mod failures;
mod memory;
mod redis_nodes;
mod scripted;
mod surfaces;
mod tools;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
use agentwire_llm::OpenAiAgentConfig;
use agentwire_startup::{AgentDefinition, AgentwireConfig};
use agentwire_test::{TestServer, WsClient};
use serde_json::{Value, json};

use scripted::{Ending, Reply, ScriptedModel, answer, answer_chunks, tool_calls};

/// A test config whose `assistant` agent uses `model`, adjusted by `tweak`.
fn config_with(
    model: &ScriptedModel,
    tweak: impl FnOnce(&mut OpenAiAgentConfig),
) -> AgentwireConfig {
    let mut config = agentwire_test::test_config();
    let mut agent = OpenAiAgentConfig::new(&model.base_url, "scripted");
    agent.description = Some("A scripted model".into());
    agent.system_prompt = Some("You are a test.".into());
    agent.tools = vec!["calculator".into(), "clock".into()];
    agent.retry_backoff = Duration::from_millis(10);
    agent.request_timeout = Duration::from_secs(10);
    tweak(&mut agent);
    config
        .agents
        .defined
        .insert("assistant".into(), AgentDefinition::Openai(agent));
    config
}

async fn server_for(model: &ScriptedModel) -> TestServer {
    TestServer::start_with(config_with(model, |_| {}), Vec::new()).await
}

/// Sends a message to `assistant` and returns the ack and the run's events.
async fn ask(
    ws: &mut WsClient,
    id: &str,
    content: &str,
    thread: Option<&str>,
) -> (Value, Vec<Value>) {
    let mut message =
        json!({"type": "user_message", "id": id, "agent": "assistant", "content": content});
    if let Some(thread) = thread {
        message["thread_id"] = json!(thread);
    }
    ws.send_json(message).await;
    ws.until_run_ends(id).await
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn last_data(events: &[Value]) -> &Value {
    &events.last().expect("events")["data"]
}

/// The messages of request `n`, by role and content (tool messages with their call id).
fn messages(model: &ScriptedModel, n: usize) -> Vec<Value> {
    model.requests()[n]["messages"].as_array().unwrap().clone()
}
