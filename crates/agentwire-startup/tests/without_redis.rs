//! A build without the `redis` feature refuses a Redis broker at startup, naming the feature.
//! Runs only in that build: `cargo test -p agentwire-startup --no-default-features` (.ci/run).
#![cfg(not(feature = "redis"))]

use agentwire_startup::{AgentwireConfig, Startup};

#[tokio::test]
async fn a_redis_broker_without_the_feature_is_a_clear_startup_error() {
    let config = AgentwireConfig {
        broker: "redis://127.0.0.1:6379".into(),
        ..AgentwireConfig::default()
    };
    let error = Startup::new(config)
        .expect("the config is valid")
        .connect_broker()
        .await
        .expect_err("no Redis in this build");
    let message = error.to_string();
    assert!(message.contains("phase Broker"), "{message}");
    assert!(message.contains("`redis` cargo feature"), "{message}");
}
