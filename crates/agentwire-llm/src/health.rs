//! `ModelEndpointCheck`: `/health` lists each model server as a non-critical check.

use agentwire_health_monitor::{HealthCheck, async_trait};

use crate::OpenAiAgent;

/// Checks that an agent's model server answers `GET {base_url}/models` (with its key). It is
/// not critical: a model outage makes the service `degraded`, not unready, since every other
/// agent still works.
#[derive(Debug, Clone)]
pub struct ModelEndpointCheck {
    name: String,
    agent: OpenAiAgent,
}

impl ModelEndpointCheck {
    /// The check of `agent`'s endpoint, named `model:<agent>`.
    pub fn new(agent: OpenAiAgent) -> Self {
        use agentwire_agent_registry::Agent;
        Self {
            name: format!("model:{}", agent.name()),
            agent,
        }
    }
}

#[async_trait]
impl HealthCheck for ModelEndpointCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<String, String> {
        let config = self.agent.config();
        match self.agent.probe().await {
            Ok(n) => Ok(format!(
                "{} answers ({n} model(s) listed), model {}",
                config.base_url, config.model
            )),
            Err(e) => Err(format!("{}: {e}", config.base_url)),
        }
    }
}
