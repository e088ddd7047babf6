// Startup phases cannot be skipped: `build_bridge` exists only after `connect_broker`.
use agentwire_startup::{AgentwireConfig, Startup};

fn main() {
    let _ = Startup::new(AgentwireConfig::default()).unwrap().build_bridge();
}
