//! The compile-time guarantees, each proven by a program that must not compile
//! (`tests/compile_fail/*.rs`, expected errors checked in as `.stderr`), next to the startup
//! chain in the right order, which must compile and run.
//!
//! The `.stderr` files are produced by the toolchain pinned in `rust-toolchain.toml`; refresh them
//! with `TRYBUILD=overwrite cargo test -p agentwire-startup --test compile_pass` after a toolchain
//! bump.

use agentwire_agent_registry::{DemoSettings, InMemoryAgentRegistry};
use agentwire_startup::{AgentwireConfig, Startup};

#[test]
fn compile_time_guarantees() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}

#[tokio::test]
async fn the_full_chain_in_order_compiles_and_runs() {
    let ready = Startup::new(AgentwireConfig::default())
        .unwrap()
        .connect_broker()
        .await
        .unwrap()
        .build_bridge()
        .unwrap()
        .register_agents(InMemoryAgentRegistry::with_builtins(DemoSettings::instant()))
        .await
        .unwrap()
        .register_health_checks(Vec::new())
        .finalize()
        .await
        .unwrap();
    let phases: Vec<_> = ready
        .report()
        .phases
        .iter()
        .map(|p| p.phase.as_str())
        .collect();
    assert_eq!(
        phases,
        ["Config", "Broker", "Bridge", "Agents", "Health", "Finalize"]
    );
}
