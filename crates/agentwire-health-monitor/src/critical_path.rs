//! The critical-path check: a synthetic run through executor → bridge → a loopback connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use agentwire_bridge::{AgentWebSocketBridge, ConnectionQueue};
use agentwire_core::{RunId, RunLauncher, StreamEvent, UserContext, UserId};
use async_trait::async_trait;

use crate::HealthCheck;

/// The events an `echo` run must deliver, in this order.
pub const EXPECTED_EVENTS: [&str; 5] = [
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
];

/// Proves chat works end to end: starts a real `echo` run for a synthetic user (`__health_<random>`)
/// (random per probe, so nodes sharing a broker never collide) through the [`RunLauncher`] (registry → executor → emitter), receives it through the bridge
/// on a loopback connection, and checks that the five lifecycle events arrive in order with
/// consecutive seqs. The synthetic stream is removed afterwards.
pub struct CriticalPathCheck {
    bridge: AgentWebSocketBridge,
    launcher: Arc<dyn RunLauncher>,
    timeout: Duration,
}

impl std::fmt::Debug for CriticalPathCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriticalPathCheck")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl CriticalPathCheck {
    /// A check through `bridge` and `launcher`, failing after `timeout`.
    pub fn new(
        bridge: AgentWebSocketBridge,
        launcher: Arc<dyn RunLauncher>,
        timeout: Duration,
    ) -> Self {
        Self {
            bridge,
            launcher,
            timeout,
        }
    }

    /// Runs the round trip once.
    ///
    /// # Errors
    /// Which step failed: attach, launch, a missing or misordered event, or the timeout.
    pub async fn round_trip(&self) -> Result<String, String> {
        // Random, not a counter: nodes sharing a broker must never probe the same stream.
        let user = UserId::new(format!("__health_{}", &RunId::generate().as_str()[2..]))
            .map_err(|e| e.to_string())?;
        let result = self.probe(&user).await;
        // A probe cut short by a timeout leaves its stream to the idle sweeper.
        self.bridge.remove_stream(&user).await;
        result
    }

    async fn probe(&self, user: &UserId) -> Result<String, String> {
        let started = Instant::now();
        let inbox = Arc::new(ConnectionQueue::new(1 << 20));
        let attached = self
            .bridge
            .attach(user, inbox.clone(), None)
            .await
            .map_err(|e| format!("bridge refused the loopback connection: {e}"))?;
        let result = self.receive(user, &inbox).await;
        self.bridge.detach(user, attached.connection_id).await;
        result.map(|()| {
            format!(
                "synthetic run delivered 5 events in order in {}µs",
                started.elapsed().as_micros()
            )
        })
    }

    async fn receive(&self, user: &UserId, inbox: &ConnectionQueue) -> Result<(), String> {
        let ctx = UserContext::new_run(user.clone(), None, Some("health".into()));
        let run_id = ctx.run_id.clone();
        self.launcher
            .launch(ctx, "echo", "critical-path probe".into())
            .map_err(|e| format!("executor refused the synthetic run: {e}"))?;

        let mut seen: Vec<StreamEvent> = Vec::with_capacity(5);
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        while seen.len() < EXPECTED_EVENTS.len() {
            let batch = tokio::time::timeout_at(deadline, inbox.next_batch(&mut frames, 16)).await;
            if batch.is_err() {
                return Err(format!(
                    "only {} of 5 events arrived within {:?} (got {:?})",
                    seen.len(),
                    self.timeout,
                    seen.iter()
                        .map(|e| e.event.kind.type_name())
                        .collect::<Vec<_>>()
                ));
            }
            for f in frames.drain(..) {
                let e: StreamEvent = serde_json::from_str(f.as_str())
                    .map_err(|e| format!("an event frame did not parse: {e}"))?;
                seen.push(e);
            }
        }
        for (i, (event, expected)) in seen.iter().zip(EXPECTED_EVENTS).enumerate() {
            let got = event.event.kind.type_name();
            if got != expected || event.seq != i as u64 + 1 || event.event.run_id != run_id {
                return Err(format!(
                    "event {} was {got} (seq {}, run {}), expected {expected} (seq {}, run {run_id})",
                    i + 1,
                    event.seq,
                    event.event.run_id,
                    i + 1
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl HealthCheck for CriticalPathCheck {
    fn name(&self) -> &str {
        "critical_path"
    }

    async fn check(&self) -> Result<String, String> {
        self.round_trip().await
    }
}
