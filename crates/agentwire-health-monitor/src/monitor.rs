//! `HealthMonitor`: runs the registered checks on demand and periodically.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures_util::future::join_all;
use parking_lot::RwLock;

use crate::{CheckReport, HealthCheck, HealthReport};

/// Holds the checks and the last report.
///
/// Checks run concurrently, each bounded by the monitor's timeout. [`Self::report`] reuses a
/// report younger than the given age, so many probes at once cost one round of checks.
pub struct HealthMonitor {
    checks: Vec<Arc<dyn HealthCheck>>,
    timeout: Duration,
    last: RwLock<Option<(Instant, Arc<HealthReport>)>>,
    round: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field(
                "checks",
                &self
                    .checks
                    .iter()
                    .map(|c| c.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HealthMonitor {
    /// A monitor with no checks; each check may take at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            checks: Vec::new(),
            timeout,
            last: RwLock::new(None),
            round: tokio::sync::Mutex::new(()),
        }
    }

    /// Adds a check.
    pub fn register(&mut self, check: Arc<dyn HealthCheck>) -> &mut Self {
        self.checks.push(check);
        self
    }

    /// The registered checks' names.
    pub fn check_names(&self) -> Vec<String> {
        self.checks.iter().map(|c| c.name().to_owned()).collect()
    }

    /// Runs every check now and stores the report.
    pub async fn run_checks(&self) -> Arc<HealthReport> {
        let timeout = self.timeout;
        let results = join_all(self.checks.iter().map(|c| async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(timeout, c.check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            let latency_ms = started.elapsed().as_millis() as u64;
            if let Err(e) = &outcome {
                tracing::warn!(check = c.name(), critical = c.critical(), error = %e, "health check failed");
            }
            let (detail, error) = match outcome {
                Ok(d) => (Some(d), None),
                Err(e) => (None, Some(e)),
            };
            CheckReport {
                name: c.name().to_owned(),
                critical: c.critical(),
                ok: error.is_none(),
                latency_ms,
                detail,
                error,
            }
        }))
        .await;
        let report = Arc::new(HealthReport::from_checks(results));
        *self.last.write() = Some((Instant::now(), report.clone()));
        report
    }

    /// The last report if younger than `max_age`, otherwise a fresh one. Concurrent callers
    /// share one round of checks.
    pub async fn report(&self, max_age: Duration) -> Arc<HealthReport> {
        if let Some(r) = self.fresh(max_age) {
            return r;
        }
        let _round = self.round.lock().await;
        if let Some(r) = self.fresh(max_age) {
            return r;
        }
        self.run_checks().await
    }

    fn fresh(&self, max_age: Duration) -> Option<Arc<HealthReport>> {
        self.last
            .read()
            .as_ref()
            .filter(|(at, _)| at.elapsed() <= max_age)
            .map(|(_, r)| r.clone())
    }

    /// The last report, if any round ran.
    pub fn last_report(&self) -> Option<Arc<HealthReport>> {
        self.last.read().as_ref().map(|(_, r)| r.clone())
    }

    /// Runs the checks every `interval`, forever. Spawn it once.
    pub async fn run_periodic(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _round = self.round.lock().await;
            self.run_checks().await;
        }
    }
}
