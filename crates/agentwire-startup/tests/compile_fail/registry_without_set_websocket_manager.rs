// A registry that forgets `set_websocket_manager` does not compile.
use std::sync::Arc;

use agentwire_agent_registry::{Agent, AgentInfo, AgentRegistry, Tool};
use agentwire_bridge_factory::BridgeFactory;

struct Forgetful;

impl AgentRegistry for Forgetful {
    fn websocket_manager(&self) -> Option<&BridgeFactory> {
        None
    }
    fn agent(&self, _name: &str) -> Option<Arc<dyn Agent>> {
        None
    }
    fn tool(&self, _name: &str) -> Option<Arc<dyn Tool>> {
        None
    }
    fn agents(&self) -> Vec<AgentInfo> {
        Vec::new()
    }
}

fn main() {}
