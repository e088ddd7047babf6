//! The `HealthCheck` contract and the report types.

use async_trait::async_trait;
use serde::Serialize;

/// One thing the service needs in order to work, checked for real.
///
/// # What an implementor must guarantee
/// - `check` exercises the dependency (a round trip, a query), not merely that an object
///   exists: a check that cannot fail is worse than none.
/// - `check` returns within a few seconds; the monitor cancels it after its timeout and counts
///   it as failed.
/// - `critical` is constant. A failing critical check makes the service unready (`/health/ready`
///   503); a failing non-critical one only makes it `degraded`.
///
/// ```
/// use agentwire_health_monitor::{HealthCheck, async_trait};
///
/// struct DiskSpace;
///
/// #[async_trait]
/// impl HealthCheck for DiskSpace {
///     fn name(&self) -> &str { "disk" }
///     fn critical(&self) -> bool { false }
///     async fn check(&self) -> Result<String, String> {
///         let free_mb = 512; // measure it for real
///         if free_mb > 100 { Ok(format!("{free_mb} MiB free")) } else { Err("disk almost full".into()) }
///     }
/// }
/// ```
///
/// Registering a type that is not a check fails to compile with "`Database` is not a
/// HealthCheck" and a note naming the methods to implement:
///
/// ```compile_fail
/// # use std::{sync::Arc, time::Duration};
/// # use agentwire_health_monitor::HealthMonitor;
/// struct Database;
/// HealthMonitor::new(Duration::from_secs(1)).register(Arc::new(Database));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a HealthCheck",
    note = "implement `fn name(&self) -> &str` and `async fn check(&self) -> Result<String, String>` with #[async_trait]"
)]
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// A short, stable name (shown in `/health` and metrics).
    fn name(&self) -> &str;

    /// Whether a failure makes the service unready. Default: true.
    fn critical(&self) -> bool {
        true
    }

    /// Checks once.
    ///
    /// # Errors
    /// What failed, in words an operator can act on.
    async fn check(&self) -> Result<String, String>;
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Every check passed.
    Healthy,
    /// Only non-critical checks failed.
    Degraded,
    /// A critical check failed.
    Unhealthy,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// Whether it is critical.
    pub critical: bool,
    /// Whether it passed.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: u64,
    /// What it found, when it passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What failed, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// All checks at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// `"Critical communication paths: All validated"` when healthy, otherwise what fails.
    pub summary: String,
    /// Each check.
    pub checks: Vec<CheckReport>,
    /// When the checks ran (Unix milliseconds).
    pub checked_at: u64,
}

impl HealthReport {
    /// Builds the report of these check outcomes.
    pub fn from_checks(checks: Vec<CheckReport>) -> Self {
        let failing_critical: Vec<&str> = checks
            .iter()
            .filter(|c| c.critical && !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        let failing_other = checks.iter().any(|c| !c.critical && !c.ok);
        let (status, summary) = if !failing_critical.is_empty() {
            (
                HealthStatus::Unhealthy,
                format!(
                    "Critical communication paths: failing: {}",
                    failing_critical.join(", ")
                ),
            )
        } else if failing_other {
            (
                HealthStatus::Degraded,
                "Critical communication paths: All validated; some non-critical checks fail"
                    .to_owned(),
            )
        } else {
            (
                HealthStatus::Healthy,
                "Critical communication paths: All validated".to_owned(),
            )
        };
        Self {
            status,
            summary,
            checks,
            checked_at: agentwire_core::unix_millis(),
        }
    }

    /// Whether every critical check passed.
    pub fn is_ready(&self) -> bool {
        self.status != HealthStatus::Unhealthy
    }
}
