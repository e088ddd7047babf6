//! The broker check: a real round trip to the event broker.

use std::sync::Arc;
use tokio::time::Instant;

use agentwire_bridge::Broker;
use async_trait::async_trait;

use crate::HealthCheck;

/// Pings the broker (for Redis: a `PING` on the command connection, and the pub/sub feed must be
/// connected). Critical: without the broker no event can be accepted or delivered.
pub struct BrokerCheck {
    broker: Arc<dyn Broker>,
}

impl std::fmt::Debug for BrokerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCheck")
            .field("broker", &self.broker.name())
            .finish()
    }
}

impl BrokerCheck {
    /// A check of `broker`.
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Self { broker }
    }
}

#[async_trait]
impl HealthCheck for BrokerCheck {
    fn name(&self) -> &str {
        "broker"
    }

    async fn check(&self) -> Result<String, String> {
        let started = Instant::now();
        self.broker.ping().await.map_err(|e| e.to_string())?;
        Ok(format!(
            "{} broker answered in {}µs",
            self.broker.name(),
            started.elapsed().as_micros()
        ))
    }
}
