//! Run one agent of a registry for real, without a server.

use std::sync::Arc;
use std::time::Duration;

use agentwire_agent_registry::{AgentRegistry, RunExecutor};
use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
use agentwire_bridge_factory::{BridgeFactory, RunLimits};
use agentwire_core::{Configurable, StreamEvent, UserContext, UserId};

use crate::{LoopbackSink, check_events};

/// How long [`run_agent`] lets a run take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `agent` from `registry` once with `input`, through the real path — the registry's
/// `set_websocket_manager`, the [`RunExecutor`], an [`AgentWebSocketBridge`] and a
/// [`LoopbackSink`] connection — and returns the run's events after checking them with
/// [`check_events`] (consecutive seqs, run grammar, exactly one terminal event).
///
/// Use it to test your own [`Agent`](agentwire_agent_registry::Agent),
/// [`Tool`](agentwire_agent_registry::Tool) or [`AgentRegistry`] in a plain `#[tokio::test]`.
///
/// ```
/// use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
/// use agentwire_test::run_agent;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), String> {
/// let registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
/// let events = run_agent(registry, "echo", "hi").await?;
/// let types: Vec<_> = events.iter().map(|e| e.event.kind.type_name()).collect();
/// assert_eq!(types, ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// What went wrong: the agent is unknown, or the events broke the grammar.
pub async fn run_agent<R: AgentRegistry>(
    registry: R,
    agent: &str,
    input: &str,
) -> Result<Vec<StreamEvent>, String> {
    let bridge = AgentWebSocketBridge::builder()
        .configure(BridgeConfig::default())
        .map_err(|e| e.to_string())?;
    let factory = BridgeFactory::new(Arc::new(bridge.clone()), RunLimits::default());
    let executor = RunExecutor::new(registry, factory, RUN_TIMEOUT);
    let user = UserId::new("test_user").map_err(|e| e.to_string())?;
    let (sink, mut inbox) = LoopbackSink::pair();
    bridge
        .attach(&user, sink, None)
        .await
        .map_err(|e| e.to_string())?;
    let ctx = UserContext::new_run(user, None, None);
    let run_id = ctx.run_id.clone();
    executor
        .start(ctx, agent, input.to_owned())
        .map_err(|e| e.to_string())?;
    let events = inbox.run_events(&run_id).await;
    check_events(&events)?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentwire_agent_registry::{
        Agent, AgentError, AgentInfo, AgentRegistry, DemoSettings, InMemoryAgentRegistry,
        RunContext, Tool,
    };
    use agentwire_bridge_factory::BridgeFactory;
    use async_trait::async_trait;
    use serde_json::{Value, json};

    use super::run_agent;

    struct Failing;

    #[async_trait]
    impl Tool for Failing {
        fn name(&self) -> &str {
            "fail"
        }
        async fn call(&self, _args: Value) -> Result<Value, String> {
            Err("always fails".into())
        }
    }

    struct UsesFailing;

    #[async_trait]
    impl Agent for UsesFailing {
        fn name(&self) -> &str {
            "uses_failing"
        }
        async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
            let _ = ctx.call_tool("fail", json!({})).await;
            Ok(json!("recovered"))
        }
    }

    #[tokio::test]
    async fn a_failing_tool_completes_with_ok_false() {
        let mut registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
        registry.register_agent(UsesFailing).register_tool(Failing);
        let events = run_agent(registry, "uses_failing", "").await.unwrap();
        let completed = serde_json::to_value(&events[2].event.kind).unwrap();
        assert_eq!(completed["type"], "tool_completed");
        assert_eq!(completed["data"]["ok"], false);
        assert_eq!(completed["data"]["error"], "always fails");
        assert_eq!(
            events.last().unwrap().event.kind.type_name(),
            "agent_completed"
        );
    }

    #[tokio::test]
    async fn an_unknown_agent_is_an_error() {
        let registry = InMemoryAgentRegistry::with_builtins(DemoSettings::instant());
        let err = run_agent(registry, "nope", "").await.unwrap_err();
        assert!(err.contains("no agent named"), "{err}");
    }

    /// A registry that does not keep the manager it is handed.
    struct Forgetful(InMemoryAgentRegistry);

    impl AgentRegistry for Forgetful {
        fn set_websocket_manager(&mut self, _manager: BridgeFactory) {}
        fn websocket_manager(&self) -> Option<&BridgeFactory> {
            None
        }
        fn agent(&self, name: &str) -> Option<Arc<dyn Agent>> {
            self.0.agent(name)
        }
        fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
            self.0.tool(name)
        }
        fn agents(&self) -> Vec<AgentInfo> {
            self.0.agents()
        }
    }

    #[tokio::test]
    async fn a_registry_that_drops_its_manager_still_runs_its_agents() {
        // The executor holds the factory itself: there is no "manager not set" at run time.
        let registry = Forgetful(InMemoryAgentRegistry::with_builtins(DemoSettings::instant()));
        let events = run_agent(registry, "echo", "hi").await.unwrap();
        assert_eq!(events.len(), 5);
    }
}
