//! The critical-path check against the real executor and bridge.

use std::sync::Arc;
use std::time::Duration;

use agentwire_agent_registry::{
    Agent, AgentError, DemoSettings, InMemoryAgentRegistry, RunContext, RunExecutor, async_trait,
};
use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
use agentwire_bridge_factory::{BridgeFactory, RunLimits};
use agentwire_core::Configurable;
use agentwire_health_monitor::{CriticalPathCheck, HealthMonitor, HealthStatus};
use serde_json::Value;

fn check_with(registry: InMemoryAgentRegistry) -> (AgentWebSocketBridge, CriticalPathCheck) {
    let bridge = AgentWebSocketBridge::builder()
        .configure(BridgeConfig::default())
        .unwrap();
    let factory = BridgeFactory::new(Arc::new(bridge.clone()), RunLimits::default());
    let exec = RunExecutor::new(registry, factory, Duration::from_secs(5));
    (
        bridge.clone(),
        CriticalPathCheck::new(bridge, Arc::new(exec), Duration::from_millis(500)),
    )
}

#[tokio::test(start_paused = true)]
async fn passes_through_the_real_path_and_leaves_no_stream_behind() {
    let (bridge, check) = check_with(InMemoryAgentRegistry::with_builtins(DemoSettings::instant()));
    for _ in 0..3 {
        let detail = check.round_trip().await.unwrap();
        assert!(detail.contains("5 events in order"));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(bridge.stats().users, 0);
    assert_eq!(bridge.stats().connections, 0);
}

/// An `echo` that skips its tool call: the check must notice the wrong order.
struct BrokenEcho;
#[async_trait]
impl Agent for BrokenEcho {
    fn name(&self) -> &str {
        "echo"
    }
    async fn run(&self, ctx: &RunContext) -> Result<Value, AgentError> {
        ctx.think("skipping the tool", None).await?;
        ctx.think("and thinking twice", None).await?;
        ctx.think("and three times", None).await?;
        Ok(Value::Null)
    }
}

#[tokio::test(start_paused = true)]
async fn fails_when_events_are_missing_or_out_of_order() {
    let mut registry = InMemoryAgentRegistry::new();
    registry.register_agent(BrokenEcho);
    let (_bridge, check) = check_with(registry);
    let err = check.round_trip().await.unwrap_err();
    assert!(err.contains("expected tool_executing"), "{err}");

    let (_bridge, check) = check_with(InMemoryAgentRegistry::new());
    let err = check.round_trip().await.unwrap_err();
    assert!(err.contains("executor refused"), "{err}");

    let mut monitor = HealthMonitor::new(Duration::from_secs(1));
    monitor.register(Arc::new(check));
    assert_eq!(monitor.run_checks().await.status, HealthStatus::Unhealthy);
}
