// An unconfigured bridge cannot be handed on as the event sink runs publish to.
use std::sync::Arc;

use agentwire_bridge::AgentWebSocketBridge;
use agentwire_bridge_factory::{BridgeFactory, RunLimits};

fn main() {
    let unconfigured = AgentWebSocketBridge::builder();
    let _factory = BridgeFactory::new(Arc::new(unconfigured), RunLimits::default());
}
