//! Phase `Broker`'s Redis side: which URLs name Redis, and connecting to it (the `redis`
//! feature) or refusing it by name (without the feature).

use std::sync::Arc;

use agentwire_bridge::Broker;

use crate::{AgentwireConfig, Phase, StartupError};

/// Whether `url` names a Redis broker (one server or a cluster).
pub(crate) fn is_redis_url(url: &str) -> bool {
    ["redis://", "rediss://", "redis+unix://", "redis+cluster://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

/// The Redis broker at `url` (the `redis` feature).
#[cfg(feature = "redis")]
pub(crate) async fn connect_redis(
    url: &str,
    config: &AgentwireConfig,
    live: Arc<dyn agentwire_bridge::LiveSink>,
) -> Result<Arc<dyn Broker>, StartupError> {
    let options = agentwire_redis::RedisOptions::new(config.history.clone())
        .wait_replicas(config.redis.wait_replicas)
        .wait_timeout(config.redis.wait_timeout);
    let broker = agentwire_redis::RedisBroker::connect_with(url, options, live)
        .await
        .map_err(|e| {
            StartupError::new(
                Phase::Broker,
                "redis",
                e.to_string(),
                "start Redis or fix the broker URL (check with `redis-cli -u <url> ping`)",
            )
        })?;
    Ok(broker)
}

/// Without the `redis` feature a Redis URL is refused, naming the feature.
#[cfg(not(feature = "redis"))]
pub(crate) async fn connect_redis(
    _url: &str,
    _config: &AgentwireConfig,
    _live: Arc<dyn agentwire_bridge::LiveSink>,
) -> Result<Arc<dyn Broker>, StartupError> {
    Err(redis_not_built())
}

/// The error for a `redis://` broker in a build without the `redis` feature.
#[cfg(not(feature = "redis"))]
pub(crate) fn redis_not_built() -> StartupError {
    StartupError::new(
        Phase::Broker,
        "redis",
        "this build has no Redis broker: agentwire-startup was built without its `redis` cargo feature",
        "enable the `redis` feature (agentwire-server enables it by default) or use broker = \"memory\"",
    )
}
