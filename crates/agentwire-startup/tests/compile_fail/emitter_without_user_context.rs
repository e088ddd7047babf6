// A RunEmitter can only be made by the factory, from a UserContext.
use std::sync::Arc;

use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig};
use agentwire_bridge_factory::{BridgeFactory, RunLimits};
use agentwire_core::Configurable;

fn main() {
    let bridge = AgentWebSocketBridge::builder().configure(BridgeConfig::default()).unwrap();
    let factory = BridgeFactory::new(Arc::new(bridge), RunLimits::default());
    let _emitter = factory.begin_run("demo");
}
